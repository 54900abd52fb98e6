"""The steps several tasks share, each written once: reads at a location (``object_stores``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from airflow_checkpoint_sync.object_stores import read_catalog, read_object
from airflow_checkpoint_sync.object_stores.base import ObjectStore

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import BinaryIO

    from airflow_checkpoint_sync.rules.replication import StoredObject


class MemoryStore(ObjectStore):
    """A location held in a dict: ``name -> (content, fingerprint)``; counts its reads."""

    scheme = "mem"

    def __init__(self, objects: dict[str, tuple[bytes, str | None]] | None = None, error: Exception | None = None):
        super().__init__("mem_conn", "bucket", "prefix")
        self.objects = dict(objects or {})
        self.error = error
        self.reads: list[str] = []

    @property
    def endpoint(self) -> str:
        return "mem"

    def list(self) -> list[StoredObject]:
        raise NotImplementedError

    def read(self, name: str) -> tuple[bytes, str | None]:
        self.reads.append(name)
        if self.error is not None:
            raise self.error
        if name not in self.objects:
            raise FileNotFoundError(name)
        return self.objects[name]

    def chunks(self, name: str) -> Iterator[bytes]:
        raise NotImplementedError

    def write(self, name: str, stream: BinaryIO, size: int, copied_from: str | None, md5: str | None = None) -> None:
        raise NotImplementedError

    def delete(self, names: Iterable[str]) -> None:
        raise NotImplementedError


# -- reads at a location ---------------------------------------------------------------------------------------------
def test_a_missing_object_is_an_answer_not_an_error() -> None:
    store = MemoryStore({"owner.json": (b"{}", "fp")})
    assert read_object(store, "owner.json") == b"{}"
    assert read_object(store, "nothing.json") is None


def test_the_catalog_comes_with_its_fingerprint_and_none_where_nothing_was_synced() -> None:
    assert read_catalog(MemoryStore({"checkpoints.feldera": (b"[]", "etag-1")})) == (b"[]", "etag-1")
    assert read_catalog(MemoryStore()) is None


@pytest.mark.parametrize("read", [lambda s: read_object(s, "owner.json"), read_catalog])
def test_a_store_error_goes_through_for_the_caller_to_word(read: Any) -> None:
    with pytest.raises(PermissionError, match="denied"):
        read(MemoryStore(error=PermissionError("denied")))
