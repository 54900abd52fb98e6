"""Object stores a checkpoint location can be replicated between (S3-compatible, GCS, Azure Blob), through the
Airflow hook of each store's provider, and the one read of an object or a catalog at a location. The provider SDKs
load only when a store is built, at task run time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_checkpoint_sync.exceptions import FelderaConfigError
from airflow_checkpoint_sync.rules.bucket_layout import CATALOG
from airflow_checkpoint_sync.rules.locations import LOOPBACK, split_location

if TYPE_CHECKING:
    from airflow_checkpoint_sync.object_stores.base import ObjectStore

#: Connection types a replication can read from and write to.
STORE_TYPES = ("aws", "google_cloud_platform", "wasb")


def store_for(
    conn_id: str, location: str, parameter: str, accepted: tuple[str, ...], location_parameter: str | None = None
) -> ObjectStore:
    """The store behind ``conn_id`` at ``location`` (``bucket-or-container[/prefix]``); errors name ``parameter``
    (the connection) and ``location_parameter`` (the location; by default ``parameter`` without ``_conn_id``)."""
    from airflow.sdk import BaseHook

    container, prefix = split_location(location, location_parameter or parameter.replace("_conn_id", ""))
    try:
        conn_type = BaseHook.get_connection(conn_id).conn_type
    except Exception as exc:
        raise FelderaConfigError(f"{parameter} {conn_id!r}: {exc}") from None
    if conn_type not in accepted:
        raise FelderaConfigError(
            f"{parameter} {conn_id!r} has type {conn_type!r}; expected one of {', '.join(accepted)}"
        )
    if conn_type == "aws":
        from airflow_checkpoint_sync.object_stores.s3 import S3Store

        return S3Store(conn_id, container, prefix)
    if conn_type == "google_cloud_platform":
        from airflow_checkpoint_sync.object_stores.gcs import GCSStore

        return GCSStore(conn_id, container, prefix)
    from airflow_checkpoint_sync.object_stores.azure import AzureBlobStore

    return AzureBlobStore(conn_id, container, prefix)


def read_object(store: ObjectStore, name: str) -> bytes | None:
    """The content of object ``name`` at ``store``'s location, or None when there is none: a missing object is an
    answer (nobody owns the location yet, nothing was synced there, it was deleted since a listing), not an error.
    The store's own errors go through: each caller says what a failed read means to it."""
    found = _read(store, name)
    return None if found is None else found[0]


def read_catalog(store: ObjectStore) -> tuple[bytes, str | None] | None:
    """Feldera's catalog at ``store``'s location (a single host's, at the root of the prefix) and its fingerprint,
    which tells whether a listing saw this very catalog; None where no push has finished. Errors as in
    :func:`read_object`."""
    return _read(store, CATALOG)


def _read(store: ObjectStore, name: str) -> tuple[bytes, str | None] | None:
    try:
        return store.read(name)
    except FileNotFoundError:
        return None


def endpoint_addresses(url: str) -> frozenset[str] | None:
    """The ``address:port`` pairs the host of endpoint ``url`` resolves to (every loopback address as
    ``loopback``), or None when it does not resolve: the evidence two differently named endpoints are one server."""
    import ipaddress
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url if "://" in url else f"https://{url}")
    try:
        port = parts.port or (80 if parts.scheme.lower() == "http" else 443)
        found = socket.getaddrinfo(parts.hostname or "", port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        return None
    addresses = set()
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        addresses.add(f"{LOOPBACK if address.is_loopback else address}:{port}")
    return frozenset(addresses) or None


#: S3 error codes that no retry changes: the bucket is not there, or the credentials are refused.
_S3_FINAL = {
    "NoSuchBucket": "the bucket does not exist",
    "InvalidBucketName": "the bucket name is not valid",
    "SignatureDoesNotMatch": "the secret key is refused",
    "InvalidAccessKeyId": "the access key is unknown",
    "AccessDenied": "access is denied",
    "AllAccessDisabled": "access is denied",
    "AccountProblem": "the account cannot be used",
    "ExpiredToken": "the credentials have expired",
    "InvalidToken": "the session token is refused",
    "InvalidSecurity": "the credentials are refused",
    "AuthorizationHeaderMalformed": "the request's region or credentials are wrong",
    "PermanentRedirect": "the bucket is in another region than the connection's endpoint",
    "403": "access is denied",
    "Forbidden": "access is denied",
}
#: Azure error codes of the same kind.
_AZURE_FINAL = {
    "AuthenticationFailed": "the credentials are refused",
    "AuthorizationFailure": "access is denied",
    "AuthorizationPermissionMismatch": "access is denied",
    "InsufficientAccountPermissions": "access is denied",
    "AccountIsDisabled": "the account is disabled",
    "InvalidAuthenticationInfo": "the credentials are refused",
    "ContainerNotFound": "the container does not exist",
    "ContainerBeingDeleted": "the container is being deleted",
    "InvalidResourceName": "the container name is not valid",
}
#: The SDKs' own exception types for missing or unusable credentials (no request was answered).
_CREDENTIAL_ERRORS = {
    "NoCredentialsError": "no credentials were found",
    "PartialCredentialsError": "the credentials are incomplete",
    "ClientAuthenticationError": "the credentials are refused",
    "DefaultCredentialsError": "no credentials were found",
    "RefreshError": "the credentials could not be refreshed",
}


def final_store_error(exc: BaseException) -> str | None:
    """Why a store's error is final (a retry meets it again: a bucket or container that does not exist, refused
    credentials, denied access), or None for one that may pass (a timeout, a 5xx, a dropped connection, throttling).

    One classification for botocore's, Azure's and Google's errors, by their codes and types: every
    :func:`store_step` caller follows it.
    """
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore's ClientError
        error = response.get("Error") or {}
        code = str(error.get("Code", ""))
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        if code in _S3_FINAL:
            return _S3_FINAL[code]
        if status == 403:
            return "access is denied"
        return None
    azure_code = getattr(exc, "error_code", None)
    if azure_code is not None and str(azure_code) in _AZURE_FINAL:
        return _AZURE_FINAL[str(azure_code)]
    for kind in type(exc).__mro__:
        if kind.__name__ in _CREDENTIAL_ERRORS:
            return _CREDENTIAL_ERRORS[kind.__name__]
    status_code = getattr(exc, "status_code", None)  # Azure's HttpResponseError
    if status_code == 403:
        return "access is denied"
    google_code = getattr(exc, "code", None)  # google.api_core's GoogleAPICallError
    if type(exc).__module__.startswith("google.") and isinstance(google_code, int):
        if google_code in (401, 403):
            return "the credentials are refused" if google_code == 401 else "access is denied"
        if google_code == 404 and "bucket" in str(exc).lower():
            return "the bucket does not exist"
    return None
