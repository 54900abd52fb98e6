"""S3 and S3-compatible stores (MinIO, GCS's S3 interface, ...) through the Amazon provider's S3Hook."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, BinaryIO

from airflow_checkpoint_sync.object_stores.base import CHUNK, ObjectStore
from airflow_checkpoint_sync.replication import SOURCE_FINGERPRINT, StoredObject

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

#: Multipart part size and parallel parts per upload: what one streamed copy may hold in memory, about 16 MB.
PART_SIZE = 8 * 1024 * 1024
PARTS_IN_FLIGHT = 2


class S3Store(ObjectStore):
    """A bucket/prefix reached through an ``aws`` connection (its ``endpoint_url`` extra for S3-compatible stores)."""

    scheme = "s3"

    def __init__(self, conn_id: str, container: str, prefix: str) -> None:
        super().__init__(conn_id, container, prefix)
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        self._hook = S3Hook(aws_conn_id=conn_id)
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._hook.get_conn()
        return self._client

    @property
    def endpoint(self) -> str:
        return str(self.client.meta.endpoint_url)

    def _endpoint(self) -> tuple[str | None, str]:
        return self.client.meta.endpoint_url, self.conn_id

    def list(
        self, *, copy_marks: bool = False, marks_for: Callable[[StoredObject], bool] | None = None
    ) -> list[StoredObject]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.container, Prefix=self.key("") if self.prefix else ""
        )
        listed = [self._described(item, None) for page in pages for item in page.get("Contents", [])]
        if not copy_marks:
            return listed

        # Only a HEAD shows an object's metadata, where a replica keeps its source's fingerprint.
        def marked(obj: StoredObject) -> StoredObject:
            if marks_for is not None and not marks_for(obj):
                return obj
            return dataclasses.replace(obj, copied_from=self._copy_mark(self.key(obj.name)))

        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(marked, listed))

    def _copy_mark(self, key: str) -> str | None:
        metadata = self.client.head_object(Bucket=self.container, Key=key).get("Metadata") or {}
        mark: str | None = metadata.get(SOURCE_FINGERPRINT)
        return mark

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
        body = self.client.get_object(Bucket=self.container, Key=self.key(name))["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def write(self, name: str, stream: BinaryIO, size: int, copied_from: str | None) -> None:
        from boto3.s3.transfer import TransferConfig

        self.client.upload_fileobj(
            stream,
            self.container,
            self.key(name),
            ExtraArgs={"Metadata": {SOURCE_FINGERPRINT: copied_from or ""}},
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
            ExtraArgs={"Metadata": {SOURCE_FINGERPRINT: obj.fingerprint or ""}, "MetadataDirective": "REPLACE"},
        )
        return True
