"""S3 object GETs and single-request PUTs, signed by botocore's own SigV4 signer and sent over one urllib3 pool.

See ``direct_http`` for why and under which rule. What must be right stays botocore's: the credentials (refreshed
when they expire), the endpoint and addressing it resolves for the bucket, and SigV4 itself. Not used with another
signature version, a proxy, an S3 Express bucket, or no credentials.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote_plus, urlencode

from airflow_checkpoint_sync.object_stores import direct_http

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

#: A probe key for the URL botocore builds; only the part before it is kept.
_PROBE_KEY = "feldera-probe"


class DirectS3(direct_http.DirectPath):
    """GETs and PUTs of one bucket's objects without the boto3 client's per-request cost.

    :param base_url: the bucket's URL, ending in ``/``, as botocore addresses it (path or virtual-hosted style).
    :param region: the region requests are signed for.
    :param credentials: botocore credentials (refreshable ones are refreshed when they expire).
    :param verify: TLS verification: True, False, or the path of a CA bundle.
    :param pool_size: connections kept open.
    :param timeouts: ``(connect, read)`` seconds.
    """

    def __init__(
        self,
        base_url: str,
        region: str,
        credentials: Any,
        *,
        verify: bool | str,
        pool_size: int,
        timeouts: tuple[float, float],
    ) -> None:
        super().__init__(base_url, verify=verify, pool_size=pool_size, timeouts=timeouts)
        self.base_url = base_url
        self.region = region
        self._credentials = credentials

    @classmethod
    def for_client(cls, client: Any, bucket: str, credentials: Any, verify: bool | str | None) -> DirectS3 | None:
        """The direct path for ``bucket`` through what ``client`` resolved, or None where it would differ."""
        config = client.meta.config
        if credentials is None or bucket.endswith("--x-s3"):
            return None
        if config.signature_version not in (None, "s3v4", "v4") or config.proxies:
            return None
        url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": _PROBE_KEY}, ExpiresIn=60)
        address = url.split("?", 1)[0]
        if not address.endswith("/" + _PROBE_KEY) or direct_http.proxied(address):
            return None
        return cls(
            address[: -len(_PROBE_KEY)],
            client.meta.region_name or "us-east-1",
            credentials,
            # botocore's own default: the bundle AWS_CA_BUNDLE names, else certifi's.
            verify=(os.environ.get("AWS_CA_BUNDLE") or True) if verify is None else verify,
            pool_size=config.max_pool_connections,
            timeouts=(float(config.connect_timeout), float(config.read_timeout)),
        )

    def url(self, key: str) -> str:
        return self.base_url + quote(key, safe="/~")

    def _signed(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> dict[str, str]:
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
        S3SigV4Auth(self._credentials.get_frozen_credentials(), "s3", self.region).add_auth(request)
        return dict(request.headers.items())

    def get(self, key: str, chunk_size: int) -> Iterator[bytes] | None:
        """The object's content in chunks, or None when the boto3 client should make this request instead."""
        if not (self.enabled and direct_http.sendable(key)):
            return None
        url = self.url(key)
        response = self.send("GET", url, self._signed("GET", url, {}, None), 200, stream=True)
        return None if response is None else direct_http.streamed(response, chunk_size)

    def put(self, key: str, body: bytes, metadata: Mapping[str, str], content_md5: str | None = None) -> bool:
        """Store ``body`` with ``metadata`` and ``content_md5`` (base64; by default the body's), which S3 checks the
        body against; False when the boto3 client should make this request."""
        if not (self.enabled and direct_http.sendable(key)):
            return False
        url = self.url(key)
        headers = {
            "Content-MD5": content_md5 or base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode(),
            "Content-Length": str(len(body)),
            **{f"x-amz-meta-{name}": value for name, value in metadata.items()},
        }
        return self.send("PUT", url, self._signed("PUT", url, headers, body), 200, body) is not None

    def list(self, prefix: str, page_size: int = 1000) -> list[dict[str, Any]] | None:
        """Every object under ``prefix`` as ``{"Key", "Size", "ETag"}`` (ListObjectsV2, ``page_size`` a page), or
        None when the boto3 client should list instead."""
        found: list[dict[str, Any]] = []
        token = None
        while self.enabled:
            query = {"list-type": "2", "prefix": prefix, "encoding-type": "url", "max-keys": str(page_size)}
            if token:
                query["continuation-token"] = token
            url = f"{self.base_url}?{urlencode(sorted(query.items()))}"
            response = self.send("GET", url, self._signed("GET", url, {}, None), 200)
            if response is None:
                return None
            page, token = _listed(response.data)
            found += page
            if token is None:
                return found
        return None


def _listed(document: bytes) -> tuple[list[dict[str, Any]], str | None]:
    """One ListObjectsV2 page (``encoding-type=url``): its objects, and the token of the next page if truncated."""
    import xml.etree.ElementTree as ElementTree

    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]  # with or without S3's namespace

    root = ElementTree.fromstring(document)
    objects, truncated, token = [], False, None
    for element in root:
        name = local(element.tag)
        if name == "Contents":
            fields = {local(child.tag): child.text or "" for child in element}
            objects.append(
                {"Key": unquote_plus(fields["Key"]), "Size": int(fields["Size"]), "ETag": fields.get("ETag")}
            )
        elif name == "IsTruncated":
            truncated = (element.text or "").strip().lower() == "true"
        elif name == "NextContinuationToken":
            token = element.text
    return objects, (token if truncated else None)
