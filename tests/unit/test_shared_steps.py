"""The steps several tasks share, each written once: reads at a location (``object_stores``), the base operator's
steps (one store per location per task, the bucket's owner, the sync configuration), and no operator module
importing another's."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from stub_hook import StubHook

import airflow_checkpoint_sync
from airflow_checkpoint_sync.exceptions import FelderaApiError
from airflow_checkpoint_sync.object_stores import read_catalog, read_object
from airflow_checkpoint_sync.object_stores.base import ObjectStore
from airflow_checkpoint_sync.operators.configure import ConfigureCheckpointSyncOperator
from airflow_checkpoint_sync.operators.restore import RestoreCheckpointOperator

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


# -- the base operator's steps ---------------------------------------------------------------------------------------
UUID = "0199a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b"
ENTERPRISE = {"edition": "Enterprise", "version": "0.337.0"}
STOPPED = {"id": "0199a3c4-aaaa-7bbb-8ccc-000000000001", "deployment_status": "Stopped", "runtime_config": {}}


@pytest.fixture
def stores(monkeypatch: pytest.MonkeyPatch) -> dict[str, MemoryStore]:
    """An ``aws`` connection ``s3_dr``, and the stores built through it, by location (each counted once built)."""
    monkeypatch.setenv("AIRFLOW_CONN_S3_DR", json.dumps({"conn_type": "aws", "login": "k", "password": "s"}))
    built: dict[str, MemoryStore] = {}
    contents = {
        "b/p1": {"checkpoints.feldera": (json.dumps([{"uuid": UUID}]).encode(), "etag")},
        "b/other": {"owner.json": (b'{"pipeline_name": "pipeline-0199a3c4-ffff"}', "etag")},
    }

    def store_for(conn_id: str, location: str, *args: Any) -> MemoryStore:
        assert location not in built, f"a second store for {location}"
        built[location] = MemoryStore(contents.get(location))
        return built[location]

    monkeypatch.setattr("airflow_checkpoint_sync.object_stores.store_for", store_for)
    return built


def test_a_restore_builds_one_store_per_location_and_reads_each_thing_once(stores: dict[str, MemoryStore]) -> None:
    op = RestoreCheckpointOperator(
        task_id="r",
        pipeline_name="p",
        bucket="b/p2",
        read_bucket="b/p1",
        bucket_conn_id="s3_dr",
        checkpoint=UUID,
        wait_for_completion=False,
    )
    op._hook = hook = StubHook(
        {"GET /v0/config": ENTERPRISE, "GET ": STOPPED, "PATCH ": None, "POST /start": "Pipeline is starting"}
    )
    assert op.execute({"ti": None})["status"] == "starting"  # type: ignore[arg-type]
    assert list(stores) == ["b/p2", "b/p1"]
    assert stores["b/p2"].reads == ["owner.json", "checkpoints.feldera"]  # the owner, then its catalog: one store
    assert stores["b/p1"].reads == ["checkpoints.feldera"]
    assert hook.mutations() == ["PATCH ", "POST /start"]


def test_a_bucket_another_pipeline_owns_is_refused_before_anything_is_written(stores: dict[str, MemoryStore]) -> None:
    op = ConfigureCheckpointSyncOperator(task_id="c", pipeline_name="p", bucket="b/other", bucket_conn_id="s3_dr")
    op._hook = hook = StubHook({"GET /v0/config": ENTERPRISE, "GET ": STOPPED})
    with pytest.raises(AirflowFailException, match=r"belongs to another pipeline \(pipeline-0199a3c4-ffff"):
        op.execute({})  # type: ignore[arg-type]
    assert hook.mutations() == []
    assert list(stores) == ["b/other"]


def test_a_configuration_already_in_place_is_not_written_again(stores: dict[str, MemoryStore]) -> None:
    def configure(pipeline: dict[str, Any]) -> tuple[bool, StubHook]:
        op = ConfigureCheckpointSyncOperator(task_id="c", pipeline_name="p", bucket="b/p2", push_interval=60)
        op._hook = hook = StubHook({"GET /v0/config": ENTERPRISE, "GET ": pipeline, "PATCH ": None})
        return op.execute({})["changed"], hook  # type: ignore[arg-type]

    changed, first = configure(STOPPED)
    assert changed is True and first.mutations() == ["PATCH "]
    changed, again = configure({**STOPPED, "runtime_config": first.bodies["PATCH "]["runtime_config"]})
    assert changed is False and again.mutations() == []
    assert stores == {}  # without bucket_conn_id the owner is Feldera's to check: no store is built


def test_a_restore_stops_and_clears_through_the_shared_steps_each_waiting_for_its_status() -> None:
    running = {**STOPPED, "deployment_status": "Running", "storage_status": "InUse"}
    stopped = {**running, "deployment_status": "Stopped"}
    op = RestoreCheckpointOperator(
        task_id="r",
        pipeline_name="p",
        bucket="b/p2",
        stop_if_running=True,
        clear_storage=True,
        wait_for_completion=False,
        poll_interval=0.01,
    )
    op._hook = hook = StubHook(
        {
            "GET /v0/config": ENTERPRISE,
            # the preflight read, the wait for Stopped, the storage read, the wait for Cleared
            "GET ": [running, stopped, stopped, {**stopped, "storage_status": "Cleared"}],
            "POST /stop": None,
            "PATCH ": None,
            "POST /clear": None,
            "POST /start": "Pipeline is starting",
        }
    )
    assert op.execute({"ti": None})["status"] == "starting"  # type: ignore[arg-type]
    assert hook.mutations() == ["POST /stop", "PATCH ", "POST /clear", "POST /start"]


def test_a_failed_stop_of_another_pipeline_names_it_and_the_step() -> None:
    op = ConfigureCheckpointSyncOperator(task_id="c", pipeline_name="p", bucket="b/p2")
    op._hook = StubHook({"POST /v0/pipelines/scratch/stop": FelderaApiError("boom", status=500)})
    with pytest.raises(AirflowException, match="removing the scratch pipeline on pipeline 'scratch' failed"):
        op.stop_and_wait(
            force=True,
            poll_interval=0.01,
            end_time=0.0,
            pipeline_name="scratch",
            action="removing the scratch pipeline",
        )


def test_a_clear_that_does_not_finish_by_its_deadline_fails() -> None:
    op = ConfigureCheckpointSyncOperator(task_id="c", pipeline_name="p", bucket="b/p2")
    op._hook = StubHook({"POST /clear": None, "GET ": {**STOPPED, "storage_status": "Clearing"}})
    with pytest.raises(AirflowException, match="Cleared"):
        op.clear_and_wait(poll_interval=0.01, end_time=0.0)


# -- layers ----------------------------------------------------------------------------------------------------------
OPERATORS = "airflow_checkpoint_sync.operators"


def test_no_operator_module_imports_another_operator_module() -> None:
    """A step two operators share lives in the base class, task_support or object_stores (ARCHITECTURE.md 3)."""
    package = Path(airflow_checkpoint_sync.__file__).parent
    sideways = []
    for path in sorted([*package.glob("operators/*.py"), *package.glob("sensors/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            module = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
            if module.startswith(OPERATORS) and module != f"{OPERATORS}.base":
                sideways.append(f"{path.name} imports {module}")
    assert sideways == []
