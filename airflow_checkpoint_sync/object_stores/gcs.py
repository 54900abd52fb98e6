"""Google Cloud Storage through the Google provider's GCSHook (native API, not the S3 interface)."""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING, Any, BinaryIO

from airflow_checkpoint_sync.object_stores.base import CHUNK, ObjectStore, copy_mark
from airflow_checkpoint_sync.rules.replication import CONTENT_MD5, SOURCE_FINGERPRINT, StoredObject

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

#: Resumable-upload chunk (a multiple of 256 KiB): what one streamed copy holds in memory.
UPLOAD_CHUNK = 8 * 1024 * 1024
#: Reads of one object before giving up when each finds it replaced between its metadata and its content.
READ_TRIES = 3


class GCSStore(ObjectStore):
    """A bucket/prefix reached through a ``google_cloud_platform`` connection."""

    scheme = "gs"

    def __init__(self, conn_id: str, container: str, prefix: str) -> None:
        super().__init__(conn_id, container, prefix)
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        self._hook = GCSHook(gcp_conn_id=conn_id)
        self._bucket: Any = None

    @property
    def endpoint(self) -> str:
        # Bucket names are global in GCS; the emulator stands in for it when the client is pointed there.
        return os.environ.get("STORAGE_EMULATOR_HOST") or "https://storage.googleapis.com"

    @property
    def bucket(self) -> Any:
        if self._bucket is None:
            self._bucket = self._hook.get_conn().bucket(self.container)
        return self._bucket

    def list(self) -> list[StoredObject]:
        blobs = self.bucket.client.list_blobs(self.bucket, prefix=self.key("") if self.prefix else None)
        return [self._described(blob) for blob in blobs]

    def _described(self, blob: Any) -> StoredObject:
        md5 = base64.b64decode(blob.md5_hash).hex() if blob.md5_hash else None
        return StoredObject(
            name=self.name(blob.name),
            size=int(blob.size or 0),
            fingerprint=md5 or blob.etag,
            copied_from=(blob.metadata or {}).get(SOURCE_FINGERPRINT),
            md5=md5,
            copied_md5=(blob.metadata or {}).get(CONTENT_MD5),
        )

    def read(self, name: str) -> tuple[bytes, str | None]:
        from google.api_core.exceptions import NotFound, PreconditionFailed

        for _ in range(READ_TRIES):
            blob = self.bucket.get_blob(self.key(name))
            if blob is None:
                raise FileNotFoundError(f"{self}/{name}")
            try:
                # The content of the generation whose fingerprint is reported, even if the object is replaced.
                body = blob.download_as_bytes(if_generation_match=blob.generation)
            except NotFound:
                raise FileNotFoundError(f"{self}/{name}") from None
            except PreconditionFailed:
                continue  # replaced between the two requests: read the new one
            return body, self._described(blob).fingerprint
        raise RuntimeError(f"{self}/{name} was replaced during each of {READ_TRIES} reads; run again later")

    def chunks(self, name: str) -> Iterator[bytes]:
        with self.bucket.blob(self.key(name)).open("rb", chunk_size=CHUNK) as reader:
            while chunk := reader.read(CHUNK):
                yield chunk

    def write(self, name: str, stream: BinaryIO, size: int, copied_from: str | None, md5: str | None = None) -> None:
        blob = self.bucket.blob(self.key(name), chunk_size=UPLOAD_CHUNK)
        blob.metadata = copy_mark(copied_from, md5)
        blob.upload_from_file(stream, size=size, rewind=False)

    def record_content(self, name: str, copied_from: str | None, md5: str) -> None:
        blob = self.bucket.blob(self.key(name))
        blob.metadata = copy_mark(copied_from, md5)
        blob.patch()

    def delete(self, names: Iterable[str]) -> None:
        for name in names:
            self.bucket.blob(self.key(name)).delete()
