"""Azure Blob single-request uploads (Put Blob), authorised with the container client's account key or SAS and
sent over one urllib3 pool.

See ``direct_http`` for why and under which rule. The request is the one the Azure SDK sends for a block blob small
enough for one request, in the service version the client speaks; a Shared Key signature follows the documented
scheme the SDK's ``SharedKeyCredentialPolicy`` implements. Not used with any other credential (Microsoft Entra ID
tokens, managed identities: their token flows stay the SDK's) or behind a proxy.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from airflow_checkpoint_sync.object_stores import direct_http

if TYPE_CHECKING:
    from collections.abc import Mapping

#: The headers a Shared Key signature covers by position, before the ``x-ms-`` headers.
_SIGNED_STANDARD_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)


class DirectAzureBlob(direct_http.DirectPath):
    """Put Blob requests into one container without the SDK's per-request cost.

    :param container_url: the container's URL without a query.
    :param api_version: the ``x-ms-version`` the container client speaks.
    :param account_name: with ``account_key``, Shared Key authorisation.
    :param account_key: the account key (base64), or None with ``sas``.
    :param sas: a SAS query string, or None with an account key.
    :param pool_size: connections kept open.
    """

    def __init__(
        self,
        container_url: str,
        api_version: str,
        *,
        account_name: str | None = None,
        account_key: str | None = None,
        sas: str | None = None,
        pool_size: int = 16,
    ) -> None:
        # The Azure SDK's own defaults: 20 s to connect, 60 s per read.
        super().__init__(container_url, verify=True, pool_size=pool_size, timeouts=(20.0, 60.0))
        self.container_url = container_url.rstrip("/")
        self.api_version = api_version
        self.account_name = account_name
        self._key = base64.b64decode(account_key) if account_key else None
        self._sas = sas
        if sas:
            from airflow.sdk.log import mask_secret

            # It travels in every URL this path sends, which urllib3 logs at debug level.
            mask_secret(sas)

    @classmethod
    def for_container(cls, container_client: Any) -> DirectAzureBlob | None:
        """The direct path for what ``container_client`` reaches, or None where it would differ."""
        parts = urlsplit(container_client.url)
        container_url = f"{parts.scheme}://{parts.netloc}{parts.path}"
        if direct_http.proxied(container_url):
            return None
        credential = container_client.credential
        version = container_client.api_version
        if credential is None and "sig=" in parts.query:  # a SAS in the account URL
            return cls(container_url, version, sas=parts.query)
        signature = getattr(credential, "signature", None)  # an AzureSasCredential
        if isinstance(signature, str) and "sig=" in signature:
            return cls(container_url, version, sas=signature.lstrip("?"))
        name, key = getattr(credential, "account_name", None), getattr(credential, "account_key", None)
        if isinstance(name, str) and isinstance(key, str):
            return cls(container_url, version, account_name=name, account_key=key)
        return None

    def _authorised(
        self, method: str, url: str, headers: dict[str, str], query: Mapping[str, str] | None = None
    ) -> str:
        """The URL to send, ``query`` added, with ``headers`` completed by the date, the version and the
        authorisation."""
        headers["x-ms-date"] = formatdate(usegmt=True)
        headers["x-ms-version"] = self.api_version
        query = query or {}
        parameters = urlencode(sorted(query.items()))
        if self._key is None:
            return f"{url}?{'&'.join(filter(None, [parameters, self._sas]))}"
        lower = {name.lower(): value for name, value in headers.items()}
        standard = "".join(f"{lower.get(name, '')}\n" for name in _SIGNED_STANDARD_HEADERS)
        canonical_headers = "".join(f"{name}:{lower[name]}\n" for name in sorted(lower) if name.startswith("x-ms-"))
        resource = f"/{self.account_name}{urlsplit(url).path}"  # as sent, percent-encoded, as the SDK signs it
        resource += "".join(f"\n{name.lower()}:{value}" for name, value in sorted(query.items()))
        to_sign = f"{method}\n{standard}{canonical_headers}{resource}"
        signature = base64.b64encode(hmac.new(self._key, to_sign.encode(), hashlib.sha256).digest()).decode()
        headers["Authorization"] = f"SharedKey {self.account_name}:{signature}"
        return f"{url}?{parameters}" if parameters else url

    def list(self, prefix: str, page_size: int = 5000) -> list[dict[str, Any]] | None:
        """Every blob under ``prefix`` with its metadata, as ``{"name", "size", "etag", "content_md5" (hex or None),
        "metadata"}`` (List Blobs, ``page_size`` a page), or None when the SDK should list instead."""
        found: list[dict[str, Any]] = []
        marker = None
        while self.enabled:
            query = {"restype": "container", "comp": "list", "include": "metadata", "maxresults": str(page_size)}
            if prefix:
                query["prefix"] = prefix
            if marker:
                query["marker"] = marker
            headers: dict[str, str] = {}
            url = self._authorised("GET", self.container_url, headers, query)
            response = self.send("GET", url, headers, 200)
            if response is None:
                return None
            page, marker = _listed(response.data)
            found += page
            if not marker:
                return found
        return None

    def put(self, blob_name: str, body: bytes, metadata: Mapping[str, str], content_md5: str | None = None) -> bool:
        """Store ``body`` as a block blob with ``metadata`` and ``content_md5`` (base64; by default the body's),
        which the service checks the body against; False when the SDK should make this request instead."""
        if not (self.enabled and direct_http.sendable(blob_name)):
            return False
        headers = {
            "Content-Length": str(len(body)),
            "Content-MD5": content_md5 or base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode(),
            "x-ms-blob-type": "BlockBlob",
            **{f"x-ms-meta-{name}": value for name, value in metadata.items()},
        }
        if not body:
            headers["Content-Length"] = ""  # what a Shared Key signature covers for an empty body
        url = self._authorised("PUT", f"{self.container_url}/{quote(blob_name, safe='/~')}", headers)
        headers["Content-Length"] = str(len(body))
        return self.send("PUT", url, headers, 201, body) is not None


def _listed(document: bytes) -> tuple[list[dict[str, Any]], str | None]:
    """One List Blobs page: its blobs, and the marker of the next page (None at the end)."""
    import xml.etree.ElementTree as ElementTree

    root = ElementTree.fromstring(document)
    blobs = []
    for blob in root.iter("Blob"):
        name_element = blob.find("Name")
        name = (name_element.text or "") if name_element is not None else ""
        if name_element is not None and name_element.get("Encoded") == "true":
            name = unquote(name)  # a name with characters XML cannot hold
        properties = {child.tag: child.text for child in _children(blob, "Properties")}
        metadata = {child.tag: child.text or "" for child in _children(blob, "Metadata")}
        md5 = properties.get("Content-MD5")
        blobs.append({
            "name": name,
            "size": int(properties.get("Content-Length") or 0),
            "etag": (properties.get("Etag") or "").strip('"') or None,
            "content_md5": base64.b64decode(md5).hex() if md5 else None,
            "metadata": metadata,
        })  # fmt: skip
    return blobs, root.findtext("NextMarker") or None


def _children(element: Any, tag: str) -> list[Any]:
    found = element.find(tag)
    return [] if found is None else list(found)
