"""Azure Blob Storage through the Microsoft Azure provider's WasbHook."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, BinaryIO

from airflow_checkpoint_sync.object_stores import direct_http
from airflow_checkpoint_sync.object_stores.base import (
    SINGLE_REQUEST_MAX,
    ObjectStore,
    body_md5,
    content_md5_header,
    copy_mark,
)
from airflow_checkpoint_sync.rules.replication import CONTENT_MD5, SOURCE_FINGERPRINT, StoredObject

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from airflow_checkpoint_sync.object_stores.azure_direct import DirectAzureBlob

#: Block size and parallel blocks per upload: what one streamed copy may hold in memory, about 8 MB.
BLOCK_SIZE = 4 * 1024 * 1024
BLOCKS_IN_FLIGHT = 2
# Azure metadata names must be C# identifiers: no '-'.
_META = SOURCE_FINGERPRINT.replace("-", "_")
_META_MD5 = CONTENT_MD5.replace("-", "_")


class AzureBlobStore(ObjectStore):
    """A container/prefix reached through a ``wasb`` connection."""

    scheme = "wasb"

    def __init__(self, conn_id: str, container: str, prefix: str) -> None:
        super().__init__(conn_id, container, prefix)
        from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

        self._hook = WasbHook(wasb_conn_id=conn_id)
        self._container: Any = None
        self._direct: direct_http.LazyPath[DirectAzureBlob] = direct_http.LazyPath(self._make_direct, str(self))

    @property
    def container_client(self) -> Any:
        if self._container is None:
            service = self._hook.get_conn()
            service._config.max_block_size = BLOCK_SIZE  # the SDK's knob for how much a block upload buffers
            service._config.max_single_put_size = BLOCK_SIZE
            self._container = service.get_container_client(self.container)
        return self._container

    @property
    def endpoint(self) -> str:
        return str(self.container_client.primary_endpoint).rsplit("/", 1)[0]

    def list(self) -> list[StoredObject]:
        prefix = self.key("") if self.prefix else ""
        listed = self.direct.list(prefix) if self.direct else None
        if listed is not None:
            return [
                StoredObject(
                    name=self.name(blob["name"]),
                    size=blob["size"],
                    fingerprint=blob["etag"],
                    copied_from=blob["metadata"].get(_META),
                    md5=blob["content_md5"],
                    copied_md5=blob["metadata"].get(_META_MD5),
                )
                for blob in listed
            ]
        blobs = self.container_client.list_blobs(name_starts_with=prefix or None, include=["metadata"])
        return [self._described(blob) for blob in blobs]

    def _described(self, blob: Any) -> StoredObject:
        content_md5 = blob.content_settings.content_md5 if blob.content_settings else None
        return StoredObject(
            name=self.name(blob.name),
            size=int(blob.size or 0),
            fingerprint=str(blob.etag).strip('"') if blob.etag else None,
            copied_from=(blob.metadata or {}).get(_META),
            md5=bytes(content_md5).hex() if content_md5 else None,
            copied_md5=(blob.metadata or {}).get(_META_MD5),
        )

    def read(self, name: str) -> tuple[bytes, str | None]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            downloader = self.container_client.download_blob(self.key(name))
        except ResourceNotFoundError:
            raise FileNotFoundError(f"{self}/{name}") from None
        return downloader.readall(), str(downloader.properties.etag).strip('"')

    def chunks(self, name: str) -> Iterator[bytes]:
        yield from self.container_client.download_blob(self.key(name)).chunks()

    @property
    def direct(self) -> DirectAzureBlob | None:
        """The direct path for listings and small uploads (``azure_direct``), where it can stand in for the SDK."""
        return self._direct.get()

    def _make_direct(self) -> DirectAzureBlob | None:
        from airflow_checkpoint_sync.object_stores.azure_direct import DirectAzureBlob

        return DirectAzureBlob.for_container(self.container_client)

    def write(self, name: str, stream: BinaryIO, size: int, copied_from: str | None, md5: str | None = None) -> None:
        if size <= SINGLE_REQUEST_MAX:
            # Read whole, a byte more than expected showing a source that grew (the copy then fails); the SDK, where
            # it takes over, uploads it in blocks of BLOCK_SIZE as it would the stream.
            body = stream.read(size + 1)
            written = body_md5(body, md5)
            metadata = copy_mark(copied_from, written, sep="_")
            if not (self.direct and self.direct.put(self.key(name), body, metadata, content_md5_header(body, written))):
                # The service computes a single Put Blob's MD5 itself; the copy is checked after it against the
                # source's, as every copy is.
                self.container_client.upload_blob(
                    self.key(name), body, overwrite=True, metadata=metadata, max_concurrency=BLOCKS_IN_FLIGHT
                )
            return
        metadata = copy_mark(copied_from, md5, sep="_")
        self.container_client.upload_blob(
            self.key(name),
            stream,
            length=size,
            overwrite=True,
            metadata=metadata,
            max_concurrency=BLOCKS_IN_FLIGHT,
        )

    def record_content(self, name: str, copied_from: str | None, md5: str) -> None:
        # A blob committed from blocks has no Content-MD5 of its own: the mark's MD5 is then what verify_content
        # compares a read with; setting metadata rewrites no data.
        self.container_client.get_blob_client(self.key(name)).set_blob_metadata(copy_mark(copied_from, md5, sep="_"))

    def delete(self, names: Iterable[str]) -> None:
        for name in names:
            self.container_client.delete_blob(self.key(name))
