"""S3 and S3-compatible stores (MinIO, GCS's S3 interface, ...) through the Amazon provider's S3Hook."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, BinaryIO

from airflow_checkpoint_sync.object_stores import direct_http
from airflow_checkpoint_sync.object_stores.base import (
    CHUNK,
    SINGLE_REQUEST_MAX,
    ObjectStore,
    body_md5,
    content_md5_header,
    copy_mark,
)
from airflow_checkpoint_sync.rules.replication import CONTENT_MD5, SOURCE_FINGERPRINT, StoredObject

if TYPE_CHECKING:
    import builtins
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from airflow_checkpoint_sync.object_stores.s3_direct import DirectS3

#: Multipart part size and parallel parts per upload of an object over SINGLE_REQUEST_MAX: what one streamed copy
#: may hold in memory, about 16 MB.
PART_SIZE = 8 * 1024 * 1024
PARTS_IN_FLIGHT = 2
#: Connections the client keeps (botocore's default is 10): every copy at a time (up to 32) with its parts in
#: flight, and the listing's requests, each get one instead of opening and closing one per request.
POOL_CONNECTIONS = 32 * PARTS_IN_FLIGHT + 8


class S3Store(ObjectStore):
    """A bucket/prefix reached through an ``aws`` connection (its ``endpoint_url`` extra for S3-compatible stores)."""

    scheme = "s3"

    def __init__(self, conn_id: str, container: str, prefix: str) -> None:
        super().__init__(conn_id, container, prefix)
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        self._hook = S3Hook(aws_conn_id=conn_id)
        self._client: Any = None
        self._direct: direct_http.LazyPath[DirectS3] = direct_http.LazyPath(self._make_direct, str(self))

    @property
    def client(self) -> Any:
        if self._client is None:
            from botocore.config import Config

            # The connection's own botocore config wins where it says something, the pool size included.
            config = Config(max_pool_connections=POOL_CONNECTIONS).merge(self._hook.config)
            self._client = self._hook.get_client_type(config=config)
        return self._client

    @property
    def direct(self) -> DirectS3 | None:
        """The direct path for object GETs, listings and small PUTs (``s3_direct``), where it can stand in for the
        client."""
        return self._direct.get()

    def _make_direct(self) -> DirectS3 | None:
        from airflow_checkpoint_sync.object_stores.s3_direct import DirectS3

        credentials = self._hook.get_session().get_credentials()
        return DirectS3.for_client(self.client, self.container, credentials, self._hook.verify)

    @property
    def endpoint(self) -> str:
        return str(self.client.meta.endpoint_url)

    def _endpoint(self) -> tuple[str | None, str]:
        return self.client.meta.endpoint_url, self.conn_id

    def list(self) -> list[StoredObject]:
        prefix = self.key("") if self.prefix else ""
        items = self.direct.list(prefix) if self.direct else None
        if items is None:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.container, Prefix=prefix)
            items = [item for page in pages for item in page.get("Contents", [])]
        return [self._described(item, None) for item in items]

    def with_copy_marks(
        self, objects: Sequence[StoredObject], marks_for: Callable[[StoredObject], bool] | None = None
    ) -> builtins.list[StoredObject]:
        # Only a HEAD shows an object's metadata, where a replica keeps its source's fingerprint.
        def marked(obj: StoredObject) -> StoredObject:
            if marks_for is not None and not marks_for(obj):
                return obj
            copied_from, copied_md5 = self._copy_mark(self.key(obj.name))
            return dataclasses.replace(obj, copied_from=copied_from, copied_md5=copied_md5)

        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(marked, objects))

    def _copy_mark(self, key: str) -> tuple[str | None, str | None]:
        metadata = self.client.head_object(Bucket=self.container, Key=key).get("Metadata") or {}
        return metadata.get(SOURCE_FINGERPRINT), metadata.get(CONTENT_MD5)

    def _described(self, item: dict[str, Any], copied_from: str | None) -> StoredObject:
        etag = str(item.get("ETag", "")).strip('"') or None
        return StoredObject(
            name=self.name(item["Key"]),
            size=int(item["Size"]),
            fingerprint=etag,
            copied_from=copied_from,
            # A multipart upload's ETag is not the content's MD5 (it has a '-').
            md5=etag if etag and "-" not in etag else None,
        )

    def read(self, name: str) -> tuple[bytes, str | None]:
        try:
            response = self.client.get_object(Bucket=self.container, Key=self.key(name))
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(f"{self}/{name}") from None
        return response["Body"].read(), str(response.get("ETag", "")).strip('"') or None

    def chunks(self, name: str) -> Iterator[bytes]:
        streamed = self.direct.get(self.key(name), CHUNK) if self.direct else None
        if streamed is not None:
            yield from streamed
            return
        body = self.client.get_object(Bucket=self.container, Key=self.key(name))["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def write(self, name: str, stream: BinaryIO, size: int, copied_from: str | None, md5: str | None = None) -> None:
        if size <= SINGLE_REQUEST_MAX:
            # In one request, without the transfer manager (whose threads and futures cost more than the request for
            # a small object); one more byte than expected shows a source that grew (the copy then fails).
            body = stream.read(size + 1)
            written = body_md5(body, md5)
            metadata = copy_mark(copied_from, written)
            content_md5 = content_md5_header(body, written)
            if not (self.direct and self.direct.put(self.key(name), body, metadata, content_md5)):
                self.client.put_object(
                    Bucket=self.container, Key=self.key(name), Body=body, Metadata=metadata, ContentMD5=content_md5
                )
            return
        from boto3.s3.transfer import TransferConfig

        # A streamed copy whose source has no MD5 records none: its multipart ETag is no MD5 to compare with.
        metadata = copy_mark(copied_from, md5)
        self.client.upload_fileobj(
            stream,
            self.container,
            self.key(name),
            ExtraArgs={"Metadata": metadata},
            Config=TransferConfig(
                multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE, max_concurrency=PARTS_IN_FLIGHT
            ),
        )

    def delete(self, names: Iterable[str]) -> None:
        keys = [{"Key": self.key(n)} for n in names]
        for start in range(0, len(keys), 1000):
            self.client.delete_objects(Bucket=self.container, Delete={"Objects": keys[start : start + 1000]})

    def copy_within(self, source: ObjectStore, obj: StoredObject) -> bool:
        # Server-side only through one connection to one endpoint: the same credentials can read and write.
        if not isinstance(source, S3Store) or source._endpoint() != self._endpoint():
            return False
        self.client.copy(
            {"Bucket": source.container, "Key": source.key(obj.name)},
            self.container,
            self.key(obj.name),
            ExtraArgs={"Metadata": copy_mark(obj.fingerprint, obj.md5), "MetadataDirective": "REPLACE"},
        )
        return True
