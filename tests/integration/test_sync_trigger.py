"""CheckpointSyncTrigger on its own, in an asyncio loop, over real HTTP to the sandbox."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_checkpoint_sync.exceptions import FelderaTriggerEventError
from airflow_checkpoint_sync.task_support import validate_event
from airflow_checkpoint_sync.triggers.checkpoint import CheckpointSyncTrigger

if TYPE_CHECKING:
    from feldera_setup import Feldera

CLASSPATH = "airflow_checkpoint_sync.triggers.checkpoint.CheckpointSyncTrigger"


def start_sync(feldera: Feldera, name: str = "prod") -> dict[str, Any]:
    feldera.running_pipeline(name, records=3)
    feldera.http.post(f"/pipelines/{name}/checkpoint")
    time.sleep(0.3)
    response: dict[str, Any] = feldera.http.post(f"/pipelines/{name}/checkpoint/sync").json()
    return response


def trigger_for(started: dict[str, Any], end_in: float = 20.0, **overrides: Any) -> CheckpointSyncTrigger:
    kwargs = {
        "feldera_conn_id": "feldera_default",
        "pipeline_name": "prod",
        "checkpoint_uuid": started["checkpoint_uuid"],
        "incarnation_uuid": started["incarnation_uuid"],
        "end_time": time.time() + end_in,
        "poll_interval": 0.1,
        **overrides,
    }
    return CheckpointSyncTrigger(**kwargs)


async def first_event(trigger: CheckpointSyncTrigger) -> dict[str, Any]:
    events = [event.payload async for event in trigger.run()]
    assert len(events) == 1, events
    return validate_event(events[0], CheckpointSyncTrigger)


def test_serialize_round_trip() -> None:
    trigger = CheckpointSyncTrigger(
        feldera_conn_id="c",
        pipeline_name="p",
        checkpoint_uuid="0199a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b",
        incarnation_uuid=None,
        end_time=1234.5,
        poll_interval=2,
        echo={"restarts": 1},
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    assert kwargs == {
        "feldera_conn_id": "c",
        "pipeline_name": "p",
        "checkpoint_uuid": "0199a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b",
        "incarnation_uuid": None,
        "end_time": 1234.5,
        "poll_interval": 2.0,
        "echo": {"restarts": 1},
        "on_kill_cleanup": None,
        "unknown_grace_until": None,
        "stale_failure": None,
    }
    assert CheckpointSyncTrigger(**kwargs).serialize() == (classpath, kwargs)


@pytest.mark.asyncio
async def test_success(feldera: Feldera) -> None:
    feldera.sandbox.control.set_timings(sync_delay_s=0.5)
    started = start_sync(feldera)
    event = await first_event(trigger_for(started))
    assert event["status"] == "success"
    assert event["checkpoint_uuid"] == started["checkpoint_uuid"]
    reads = [r for r in feldera.sandbox.control.requests() if r["path"].endswith("/checkpoint/sync_status")]
    assert len(reads) >= 2  # it polled while the push was running


@pytest.mark.asyncio
async def test_failure_carries_feldera_error(feldera: Feldera) -> None:
    feldera.running_pipeline("prod")
    feldera.sandbox.control.fail_next_sync("prod", "NoSuchBucket: dr-bucket")
    feldera.http.post("/pipelines/prod/checkpoint")
    time.sleep(0.3)
    started = feldera.http.post("/pipelines/prod/checkpoint/sync").json()
    event = await first_event(trigger_for(started))
    assert event["status"] == "failure"
    assert event["error"] == "NoSuchBucket: dr-bucket"


@pytest.mark.asyncio
async def test_timeout_at_the_deadline(feldera: Feldera) -> None:
    feldera.sandbox.control.set_timings(sync_delay_s=30)
    started = start_sync(feldera)
    began = time.monotonic()
    event = await first_event(trigger_for(started, end_in=1.0))
    assert event["status"] == "timeout"
    assert time.monotonic() - began < 10


@pytest.mark.asyncio
async def test_deadline_already_passed_reports_timeout_after_one_look(feldera: Feldera) -> None:
    feldera.sandbox.control.set_timings(sync_delay_s=30)
    started = start_sync(feldera)
    event = await first_event(trigger_for(started, end_in=-5))
    assert event["status"] == "timeout"


@pytest.mark.asyncio
async def test_restart_is_reported(feldera: Feldera) -> None:
    feldera.sandbox.control.set_timings(sync_delay_s=5)
    started = start_sync(feldera)
    feldera.sandbox.control.restart("prod")
    time.sleep(0.5)  # the new process is up
    event = await first_event(trigger_for(started))
    assert event["status"] == "restarted"


@pytest.mark.asyncio
async def test_errors_become_events(feldera: Feldera) -> None:
    started = {"checkpoint_uuid": "0199a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b", "incarnation_uuid": None}
    event = await first_event(trigger_for(started, pipeline_name="missing"))
    assert event["status"] == "error"
    assert "UnknownPipelineName" in event["message"]
    assert event["final"] is True
    broken = await first_event(trigger_for(started, feldera_conn_id="no_such_connection"))
    assert broken["status"] == "error" and "no_such_connection" in broken["message"]


@pytest.mark.asyncio
async def test_a_trigger_rebuilt_from_serialize_carries_on(feldera: Feldera) -> None:
    feldera.sandbox.control.set_timings(sync_delay_s=1.5)
    started = start_sync(feldera)
    original = trigger_for(started)
    # The triggerer restarts: the first run is cancelled mid-wait, and a new one is built from serialize().
    task = asyncio.ensure_future(first_event(original))
    await asyncio.sleep(0.4)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    _, kwargs = original.serialize()
    event = await first_event(CheckpointSyncTrigger(**kwargs))
    assert event["status"] == "success" and event["checkpoint_uuid"] == started["checkpoint_uuid"]


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {},
        {"status": "done"},
        {"status": "success"},
        {"status": "success", "pipeline_name": "p"},
        {"status": "success", "pipeline_name": "p", "message": "m"},  # no echo: an event of an older provider
        {"status": "fresh", "pipeline_name": "p", "message": "m", "echo": {}},  # another trigger's status
        "success",
    ],
)
def test_malformed_events_fail_closed(bad: Any) -> None:
    with pytest.raises(FelderaTriggerEventError, match="CheckpointSyncTrigger"):
        validate_event(bad, CheckpointSyncTrigger)
