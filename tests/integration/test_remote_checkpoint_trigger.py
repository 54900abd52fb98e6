"""RemoteCheckpointTrigger in an asyncio loop over real HTTP to the sandbox.

Airflow's asset state store answers only inside a 3.3 triggerer (it talks to the triggerer's supervisor), so here
the trigger gets a dict-backed store with the same two calls (``aget``, ``aset``). tests/e2e runs the watcher in a
real triggerer, with Airflow's own store, across a SIGKILL of the triggerer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import pytest

from airflow_checkpoint_sync.exceptions import FelderaWatchError
from airflow_checkpoint_sync.rules.status import uuid7_time
from airflow_checkpoint_sync.triggers import remote_checkpoints
from airflow_checkpoint_sync.triggers.remote_checkpoints import WATERMARK_KEY, RemoteCheckpointTrigger

if TYPE_CHECKING:
    from feldera_setup import Feldera

KEY = WATERMARK_KEY.format(pipeline_name="prod")


class DictStateStore:
    """The two calls of Airflow's AssetStateStoreAccessors the trigger makes, over a dict."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        assert value is not None
        self.values[key] = value


def watcher(store: DictStateStore | None) -> RemoteCheckpointTrigger:
    trigger = RemoteCheckpointTrigger(pipeline_name="prod", poll_interval=0.2)
    trigger.asset_state_store = store  # type: ignore[assignment]  # what the triggerer injects
    return trigger


async def watch(trigger: RemoteCheckpointTrigger, events: list[dict[str, Any]]) -> None:
    async for event in trigger.run():
        events.append(event.payload)


async def until(condition: Any, timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


@pytest.fixture(autouse=True)
def quick_watermarks(monkeypatch: pytest.MonkeyPatch) -> None:
    # The wait before storing a watermark only matters for a real triggerer's hand-over of events.
    monkeypatch.setattr(remote_checkpoints, "PERSIST_AFTER_S", 0.1)


def test_serialize_round_trip() -> None:
    trigger = RemoteCheckpointTrigger(pipeline_name="p", feldera_conn_id="c", poll_interval=5)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_checkpoint_sync.triggers.remote_checkpoints.RemoteCheckpointTrigger"
    assert kwargs == {"pipeline_name": "p", "feldera_conn_id": "c", "poll_interval": 5.0}
    assert RemoteCheckpointTrigger(**kwargs).serialize() == (classpath, kwargs)


@pytest.mark.parametrize(
    ("kwargs", "refusal"),
    [
        ({"pipeline_name": "not a name"}, r"pipeline_name='not a name' is not valid: a Feldera pipeline name"),
        ({"pipeline_name": "prod", "poll_interval": 0}, r"poll_interval=0 is not valid: a positive number"),
        ({"pipeline_name": "prod", "poll_interval": "10"}, r"poll_interval='10' is not valid"),
        ({"pipeline_name": "prod", "feldera_conn_id": ""}, r"feldera_conn_id='' is not valid"),
    ],
)
def test_bad_arguments_are_refused_when_the_dag_is_parsed(kwargs: dict[str, Any], refusal: str) -> None:
    with pytest.raises(Exception, match=refusal):
        RemoteCheckpointTrigger(**kwargs)


@pytest.mark.asyncio
async def test_one_event_per_new_checkpoint_and_a_restart_goes_on_from_the_stored_watermark(
    feldera: Feldera,
) -> None:
    feldera.running_pipeline("prod", records=2)
    existing = await asyncio.to_thread(feldera.sync_now, "prod")
    store, events = DictStateStore(), []
    first = asyncio.create_task(watch(watcher(store), events))
    # What is in the bucket when the watch starts is its starting point, not news.
    await until(lambda: store.values.get(KEY) == existing)
    one = await asyncio.to_thread(feldera.sync_now, "prod", 1)
    two = await asyncio.to_thread(feldera.sync_now, "prod", 1)
    await until(lambda: len(events) == 2 and store.values[KEY] == two)
    first.cancel()  # the triggerer goes down
    down = await asyncio.to_thread(feldera.sync_now, "prod", 1)
    again: list[dict[str, Any]] = []
    second = asyncio.create_task(watch(watcher(store), again))
    await until(lambda: len(again) == 1)
    await asyncio.sleep(0.6)  # more listings: nothing is fired twice
    second.cancel()
    assert [e["checkpoint_uuid"] for e in events] == [one, two]
    assert [e["checkpoint_uuid"] for e in again] == [down]
    event = again[0]
    assert event["pipeline_name"] == "prod"
    assert event["checkpoint_time"] == uuid7_time(down).isoformat()


@pytest.mark.asyncio
async def test_a_watch_of_a_pipeline_that_does_not_exist_fails_clearly_and_starts_again_once_it_does(
    feldera: Feldera, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[dict[str, Any]] = []
    with (
        caplog.at_level(logging.WARNING, logger=remote_checkpoints.__name__),
        pytest.raises(FelderaWatchError) as failed,
    ):
        await asyncio.wait_for(watch(watcher(DictStateStore()), events), timeout=10)
    assert "watching the synced checkpoints of 'prod' through 'feldera_default' cannot work" in str(failed.value)
    assert "HTTP 404 UnknownPipelineName" in str(failed.value)
    assert [r.levelname for r in caplog.records if "cannot work" in r.message] == ["ERROR"]
    # What the triggerer does with a failed watcher: it starts it again, and once the pipeline exists it watches.
    feldera.running_pipeline("prod", records=1)
    task = asyncio.create_task(watch(watcher(DictStateStore()), events))
    await asyncio.sleep(0.6)  # its first listing (no checkpoint yet) is the starting point
    made = await asyncio.to_thread(feldera.sync_now, "prod")
    await until(lambda: len(events) == 1)
    task.cancel()
    assert events[0]["checkpoint_uuid"] == made


@pytest.mark.asyncio
async def test_the_watch_outlives_a_stopped_pipeline_and_goes_on_when_it_can_list(
    feldera: Feldera, caplog: pytest.LogCaptureFixture
) -> None:
    feldera.create("prod")  # exists, not deployed: Feldera answers 503 until it runs
    events: list[dict[str, Any]] = []
    with caplog.at_level(logging.WARNING, logger=remote_checkpoints.__name__):
        task = asyncio.create_task(watch(watcher(DictStateStore()), events))

        def warnings() -> list[logging.LogRecord]:
            return [r for r in caplog.records if "Listing the synced checkpoints of 'prod' failed" in r.message]

        # Each listing is retried by the hook first (a 503 may pass); then it is a failure, warned of once.
        await until(lambda: warnings(), timeout=60)
        await asyncio.sleep(1.0)
        assert not task.done() and len(warnings()) == 1
        feldera.start("prod")
        await asyncio.sleep(0.6)
        made = await asyncio.to_thread(feldera.sync_now, "prod")
        await until(lambda: len(events) == 1)
        task.cancel()
    assert events[0]["checkpoint_uuid"] == made


@pytest.mark.asyncio
async def test_without_a_state_store_the_watch_still_fires_for_new_checkpoints(feldera: Feldera) -> None:
    feldera.running_pipeline("prod", records=1)
    events: list[dict[str, Any]] = []
    task = asyncio.create_task(watch(watcher(None), events))
    await asyncio.sleep(0.6)
    made = await asyncio.to_thread(feldera.sync_now, "prod", 1)
    await until(lambda: len(events) == 1)
    task.cancel()
    assert events[0]["checkpoint_uuid"] == made
