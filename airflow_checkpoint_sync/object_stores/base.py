"""The small interface every object store offers a replication, and a streaming reader that checks what it read."""

from __future__ import annotations

import base64
import builtins
import hashlib
import io
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, BinaryIO

from airflow_checkpoint_sync.rules.locations import endpoint_identity
from airflow_checkpoint_sync.rules.replication import CONTENT_MD5, SOURCE_FINGERPRINT

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from airflow_checkpoint_sync.rules.locations import EndpointIdentity
    from airflow_checkpoint_sync.rules.replication import StoredObject

#: Bytes per read while streaming an object; with the stores' part sizes this bounds a copy's memory.
CHUNK = 1024 * 1024
#: An object up to this size is read whole and written in one request: as much memory per copy as a streamed
#: upload's parts in flight, and one request instead of a multipart upload's four or more.
SINGLE_REQUEST_MAX = 16 * 1024 * 1024


def copy_mark(copied_from: str | None, written_md5: str | None, *, sep: str = "-") -> dict[str, str]:
    """The metadata of a copy: the source's fingerprint ('' when it has none) and, when known, the MD5 (hex) of the
    content written; ``sep`` is '_' for Azure, whose metadata names must be C# identifiers."""
    mark = {SOURCE_FINGERPRINT.replace("-", sep): copied_from or ""}
    if written_md5:
        mark[CONTENT_MD5.replace("-", sep)] = written_md5
    return mark


def body_md5(body: bytes, md5: str | None) -> str:
    """The MD5 (hex) of an upload of ``body`` in one request: ``md5``, the source's, when given (the store then
    refuses a body that is not that content), else the body's own."""
    return md5 or hashlib.md5(body, usedforsecurity=False).hexdigest()


def content_md5_header(body: bytes, md5: str | None) -> str:
    """The ``Content-MD5`` of an upload of ``body`` (base64): of ``md5`` (hex) when the source gave one, so that the
    store checks the body against the source's own checksum (and nothing hashes it twice), else of the body."""
    digest = bytes.fromhex(md5) if md5 else hashlib.md5(body, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode()


class ObjectStore(ABC):
    """One ``container[/prefix]`` in one store; object names are relative to the prefix.

    :param conn_id: the Airflow connection of the store.
    :param container: the bucket (S3, GCS) or container (Azure).
    :param prefix: the path inside it, without slashes at either end ('' for the whole container).
    """

    scheme = ""

    def __init__(self, conn_id: str, container: str, prefix: str) -> None:
        self.conn_id = conn_id
        self.container = container
        self.prefix = prefix

    def __str__(self) -> str:
        return f"{self.scheme}://{self.container}/{self.prefix}".rstrip("/")

    @property
    @abstractmethod
    def endpoint(self) -> str:
        """The service the container lives in (an S3 endpoint URL, an Azure account URL, GCS), lower case: with
        the container and prefix it names a location whatever connection reaches it."""

    def identity(self) -> EndpointIdentity:
        """What store :attr:`endpoint` reaches, however the connection spells it (see
        :func:`~airflow_checkpoint_sync.rules.locations.endpoint_identity`)."""
        return endpoint_identity(self.endpoint, self.container)

    def location(self) -> tuple[str, str, str, str]:
        """``(service, where, container, prefix)`` of :meth:`identity`: what two locations are compared by."""
        identity = self.identity()
        return identity.service, identity.where, self.container, self.prefix

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def name(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    @abstractmethod
    def list(self) -> list[StoredObject]:
        """Every object under the prefix, with size and fingerprint, and the source fingerprint a copy recorded
        where the listing shows it (see :meth:`with_copy_marks`)."""

    def with_copy_marks(
        self, objects: Sequence[StoredObject], marks_for: Callable[[StoredObject], bool] | None = None
    ) -> builtins.list[StoredObject]:
        """``objects`` (from :meth:`list`) with the copy mark each copy recorded (source fingerprint and written
        content's MD5): only those ``marks_for`` picks (all without it) on stores that need a request per object
        for it; the others' listings carry it."""
        return builtins.list(objects)

    def record_content(self, name: str, copied_from: str | None, md5: str) -> None:
        """Add the MD5 of the content a streamed copy wrote to its copy mark, once known (after the upload), where
        the store can change metadata without rewriting the object; a no-op elsewhere (S3, where such a copy is a
        multipart upload whose content the store has no MD5 of to compare anyway)."""
        return

    @abstractmethod
    def read(self, name: str) -> tuple[bytes, str | None]:
        """A small object's content and its fingerprint (the catalog), or FileNotFoundError."""

    @abstractmethod
    def chunks(self, name: str) -> Iterator[bytes]:
        """The object's content, streamed."""

    @abstractmethod
    def write(self, name: str, stream: BinaryIO, size: int, copied_from: str | None, md5: str | None = None) -> None:
        """Store ``size`` bytes read from ``stream`` (never whole more than :data:`SINGLE_REQUEST_MAX` in memory),
        with the copy mark: ``copied_from`` and the written content's MD5 (``md5``, or the body's for an upload in
        one request; for a stream without ``md5`` see :meth:`record_content`). ``md5`` (hex), the content's MD5 when
        the source knows it, goes with an upload in one request, so that the store refuses a body that is not that
        content."""

    @abstractmethod
    def delete(self, names: Iterable[str]) -> None:
        """Delete these objects."""

    def copy_within(self, source: ObjectStore, obj: StoredObject) -> bool:
        """Copy ``obj`` from ``source`` server-side if both are on the same service; False when it cannot."""
        return False


class VerifyingReader(io.RawIOBase):
    """A read-only stream over chunks that counts the bytes and their MD5 as they pass."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""
        self.size = 0
        #: Whether the whole source was read (its chunks ran out).
        self.finished = False
        self._md5 = hashlib.md5(usedforsecurity=False)

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        # Not seekable, but a position is known: GCS's resumable upload asks for it before and after each chunk.
        return self.size

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                self.finished = True
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._md5.update(self._pending[:n])
        self._pending = self._pending[n:]
        self.size += n
        return n

    @property
    def md5_hex(self) -> str:
        return self._md5.hexdigest()
