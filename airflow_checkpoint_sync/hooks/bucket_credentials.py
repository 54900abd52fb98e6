"""Bucket credentials for Feldera's sync config, from an Airflow connection.

Feldera syncs through rclone's S3 backend, so every connection maps to the S3 fields of its sync config
(``access_key``, ``secret_key``, ``endpoint``, ``region``, ``provider``):

============================  =======================================================================================
connection type               maps to
============================  =======================================================================================
``aws``                       the connection's keys, ``region_name``, the S3 endpoint URL (``service_config.s3
                              .endpoint_url`` or ``endpoint_url``); provider ``AWS``, or the S3-compatible provider
                              the endpoint belongs to (extra ``rclone_provider`` overrides)
``google_cloud_platform``     HMAC key id and secret from the extras ``hmac_access_id`` and ``hmac_secret``; endpoint
                              ``https://storage.googleapis.com``; provider ``GCS``
``wasb``                      nothing: Feldera cannot sync to Azure Blob Storage (an error)
no connection                 no keys: Feldera uses its own environment credentials (IAM role, workload identity)
============================  =======================================================================================

Keys written into a runtime config are readable by any Feldera user allowed to read the pipeline; the keyless route
(no connection) avoids that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_checkpoint_sync.exceptions import BucketCredentialsError

if TYPE_CHECKING:
    from collections.abc import Mapping

GCS_ENDPOINT = "https://storage.googleapis.com"
KEYLESS_HINT = (
    "leave bucket_conn_id unset so Feldera uses its own environment credentials (an IAM role or workload identity "
    "on its pods)"
)


@dataclass(frozen=True)
class BucketCredentials:
    """The S3 fields of a sync config that come from a connection (None: not set)."""

    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    endpoint: str | None = None
    region: str | None = None
    provider: str | None = None

    def sync_fields(self) -> dict[str, Any]:
        """The fields to put into a SyncConfig, leaving out the unset ones."""
        values = {
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "endpoint": self.endpoint,
            "region": self.region,
            "provider": self.provider,
        }
        return {k: v for k, v in values.items() if v is not None}


def bucket_credentials(conn_id: str | None) -> BucketCredentials:
    """Resolve ``conn_id`` (or no connection) to Feldera sync credentials; see the module docstring for the table."""
    if not conn_id:
        return BucketCredentials()
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    conn_type = (conn.conn_type or "").replace("-", "_")
    if conn_type == "aws":
        return _from_aws(conn_id, conn)
    if conn_type in ("google_cloud_platform", "gcpbigquery", "gcp"):
        return _from_google(conn_id, conn.extra_dejson)
    if conn_type == "wasb":
        raise BucketCredentialsError(
            f"bucket_conn_id '{conn_id}' is an Azure Blob Storage (wasb) connection, but Feldera syncs checkpoints "
            "to S3-compatible stores only (AWS S3, GCS through its S3 interface, MinIO, ...). Use an aws or "
            "google_cloud_platform connection; Azure can still hold copies of the checkpoints."
        )
    raise BucketCredentialsError(
        f"bucket_conn_id '{conn_id}' has connection type '{conn.conn_type}'; accepted: aws, google_cloud_platform, "
        "or no connection at all (Feldera's own credentials)"
    )


def _from_aws(conn_id: str, conn: Any) -> BucketCredentials:
    # The Amazon provider is imported only now, when an aws connection is actually resolved.
    from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper

    if bool(conn.login) != bool(conn.password):
        # The Amazon wrapper would quietly ignore half a key pair and fall back to no keys at all.
        half = "an access key but no secret" if conn.login else "a secret but no access key"
        raise BucketCredentialsError(
            f"bucket_conn_id '{conn_id}' has {half}; set both (login and password), or neither to use Feldera's own "
            "credentials"
        )
    wrapper = AwsConnectionWrapper(conn)
    if wrapper.role_arn:
        raise BucketCredentialsError(
            f"bucket_conn_id '{conn_id}' assumes the role {wrapper.role_arn}, whose temporary credentials expire and "
            f"cannot be written into Feldera's sync config (it has no session token field). Use static keys, or "
            f"{KEYLESS_HINT}."
        )
    if wrapper.aws_session_token:
        raise BucketCredentialsError(
            f"bucket_conn_id '{conn_id}' holds temporary credentials (a session token), which Feldera's sync config "
            f"cannot express. Use static keys, or {KEYLESS_HINT}."
        )
    endpoint = wrapper.get_service_endpoint_url("s3") or None
    provider = wrapper.extra_config.get("rclone_provider") or _provider_for(endpoint)
    key, secret = wrapper.aws_access_key_id, wrapper.aws_secret_access_key
    _mask(secret)
    return BucketCredentials(
        access_key=key or None,
        secret_key=secret or None,
        endpoint=endpoint,
        region=wrapper.region_name or None,
        provider=provider,
    )


def _from_google(conn_id: str, extra: Mapping[str, Any]) -> BucketCredentials:
    def get(name: str) -> Any:
        return extra.get(name) or extra.get(f"extra__google_cloud_platform__{name}")

    access_id, secret = get("hmac_access_id"), get("hmac_secret")
    if not access_id or not secret:
        missing = [n for n, v in (("hmac_access_id", access_id), ("hmac_secret", secret)) if not v]
        raise BucketCredentialsError(
            f"bucket_conn_id '{conn_id}' has no GCS HMAC key: set the extras {', '.join(missing)} (an HMAC key of a "
            "service account with access to the bucket; Feldera reaches GCS through its S3 interface, which does not "
            f"take OAuth credentials), or {KEYLESS_HINT}."
        )
    _mask(str(secret))
    return BucketCredentials(
        access_key=str(access_id), secret_key=str(secret), endpoint=GCS_ENDPOINT, region=None, provider="GCS"
    )


def _provider_for(endpoint: str | None) -> str:
    """rclone's provider name for an S3 endpoint: AWS without one, a known service's name, else Other."""
    if not endpoint:
        return "AWS"
    host = (urlsplit(endpoint).hostname or "").lower()
    known = {
        "storage.googleapis.com": "GCS",
        "r2.cloudflarestorage.com": "Cloudflare",
        "digitaloceanspaces.com": "DigitalOcean",
        "wasabisys.com": "Wasabi",
        "amazonaws.com": "AWS",
    }
    for suffix, provider in known.items():
        if host == suffix or host.endswith("." + suffix):
            return provider
    return "Minio" if "minio" in host else "Other"


def _mask(secret: str | None) -> None:
    """Keep a derived secret out of task logs (connection passwords are masked already; extras may not be)."""
    if secret:
        from airflow.sdk.log import mask_secret

        mask_secret(secret)
