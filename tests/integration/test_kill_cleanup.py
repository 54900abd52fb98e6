"""A trigger's on_kill over real HTTP to the sandbox, where it cannot finish: a key that may not change pipelines, a
pipeline that never stops, a pipeline already gone, a trigger with nothing to undo. It never raises, never logs the
API key, ends well within ``[triggerer] on_kill_timeout``, and changes nothing it was not asked to. (A drill killed
while deferred, through Airflow's own TriggerRunner, is in test_restore_drill.py.)"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import pytest
from airflow_support import feldera_connection
from feldera_setup import Feldera
from support import wait_until

from airflow_checkpoint_sync.rules.drill import DrillOwner, scratch_description
from airflow_checkpoint_sync.testing import FelderaSandbox, MotoS3Server
from airflow_checkpoint_sync.triggers.kill_cleanup import remove_scratch_pipeline
from airflow_checkpoint_sync.triggers.pipeline import PipelineStatusTrigger

if TYPE_CHECKING:
    from collections.abc import Iterator

WRITE_KEY = "apikey:" + "w" * 48
READ_KEY = "apikey:" + "r" * 48
ME = DrillOwner("weekly_drill", "drill", -1, "scheduled__2026-12-01T00:00:00+00:00")
SCRATCH = "prod-drill-0001"


@pytest.fixture
def feldera(
    airflow_db: str, moto_s3: MotoS3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Feldera]:
    """'prod' and ME's scratch pipeline running; ``feldera_default`` has the Write key, ``feldera_read`` a Read key."""
    with FelderaSandbox(api_key=WRITE_KEY, read_api_keys=(READ_KEY,)) as sandbox:
        feldera = Feldera(sandbox, moto_s3, s3_bucket, WRITE_KEY)
        feldera.running_pipeline("prod")
        feldera.create(SCRATCH, sync=None)
        patched = feldera.http.patch(f"/pipelines/{SCRATCH}", json={"description": scratch_description("prod", ME)})
        assert patched.is_success, patched.text
        feldera.start(SCRATCH)
        monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(sandbox.url, WRITE_KEY))
        monkeypatch.setenv("AIRFLOW_CONN_FELDERA_READ", feldera_connection(sandbox.url, READ_KEY))
        sandbox.control.clear_requests()
        yield feldera


def deferred_drill_trigger(feldera: Feldera, conn_id: str = "feldera_default", **overrides: Any) -> Any:
    """The trigger a drill defers with while SCRATCH starts, as the triggerer rebuilds it from its kwargs."""
    trigger = PipelineStatusTrigger(
        feldera_conn_id=conn_id,
        pipeline_name=SCRATCH,
        targets=["Running"],
        end_time=time.time() + 60,
        poll_interval=0.2,
        echo={"plan": {"pipeline_name": "prod"}},
        on_kill_cleanup=remove_scratch_pipeline(SCRATCH, ME, feldera.pipeline(SCRATCH)["id"]),
        **overrides,
    )
    _, kwargs = trigger.serialize()
    return PipelineStatusTrigger(**serde_round_trip(kwargs))


def serde_round_trip(kwargs: dict[str, Any]) -> dict[str, Any]:
    from airflow.sdk.serde import deserialize, serialize

    result: dict[str, Any] = deserialize(serialize(kwargs))
    return result


def kill(trigger: Any) -> float:
    """Run the trigger's on_kill as the triggerer does after a user's kill; how long it took."""
    began = time.monotonic()
    asyncio.run(trigger.on_kill())
    return time.monotonic() - began


def test_the_cleanup_crosses_serde_unchanged_and_a_bad_one_is_refused_before_deferring(feldera: Feldera) -> None:
    trigger = deferred_drill_trigger(feldera)
    assert trigger.on_kill_cleanup == {
        "action": "remove_scratch_pipeline",
        "pipeline_name": SCRATCH,
        "owner": ME.as_dict(),
        "pipeline_id": feldera.pipeline(SCRATCH)["id"],
    }
    assert PipelineStatusTrigger(**trigger.serialize()[1]).serialize() == trigger.serialize()
    base = {"feldera_conn_id": "c", "pipeline_name": "p", "targets": ["Running"], "end_time": 1.0, "poll_interval": 1}
    for bad, words in [
        ({"action": "delete_everything"}, "an action in ['remove_scratch_pipeline']"),
        ({"action": "remove_scratch_pipeline", "pipeline_name": SCRATCH}, "a pipeline_name and its drill's owner"),
        ({**remove_scratch_pipeline(SCRATCH, ME, None), "pipeline_id": 7}, "pipeline_id is the pipeline's id"),
        ("remove_scratch_pipeline", "None or a spec"),
    ]:
        with pytest.raises(ValueError, match="on_kill_cleanup=") as refused:
            PipelineStatusTrigger(**base, on_kill_cleanup=bad)
        assert words in str(refused.value)


def test_a_trigger_with_nothing_to_undo_stops_nothing(feldera: Feldera) -> None:
    # A restore's or an activation's wait on a production pipeline: killing the task leaves the pipeline be.
    trigger = PipelineStatusTrigger(
        feldera_conn_id="feldera_default",
        pipeline_name="prod",
        targets=["Running"],
        end_time=time.time() + 60,
        poll_interval=0.2,
    )
    assert trigger.serialize()[1]["on_kill_cleanup"] is None
    kill(trigger)
    assert feldera.sandbox.control.requests() == []


def test_a_key_that_may_not_change_pipelines_is_logged_without_the_key_and_nothing_raises(
    feldera: Feldera, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    kill(deferred_drill_trigger(feldera, "feldera_read"))
    out = capfd.readouterr().out
    assert f"Task killed: remove_scratch_pipeline of '{SCRATCH}' failed (FelderaApiError: " in out
    assert "InsufficientPermissions" in out
    assert READ_KEY not in out and "r" * 48 not in out
    assert feldera.pipeline(SCRATCH)["deployment_status"] == "Running"
    assert feldera.pipeline("prod")["deployment_status"] == "Running"


def test_a_pipeline_that_never_stops_ends_the_kill_well_within_the_triggerers_bound(
    feldera: Feldera, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__TRIGGERER__ON_KILL_TIMEOUT", "3")
    feldera.sandbox.control.set_timings(stop_s=600)
    capfd.readouterr()
    took = kill(deferred_drill_trigger(feldera))
    assert 2.4 <= took < 3.0  # its waits end at 80% of the 3 s the triggerer would give it
    assert (
        f"Task killed: remove_scratch_pipeline of '{SCRATCH}' failed (RuntimeError: pipeline '{SCRATCH}' was "
        "Stopping, not Stopped, at the deadline)"
    ) in capfd.readouterr().out
    assert feldera.pipeline(SCRATCH)["deployment_status"] == "Stopping"  # left as it got: the next try finishes it
    path = f"/v0/pipelines/{SCRATCH}"
    assert feldera.mutating_requests() == [f"POST {path}/stop"]
    assert feldera.pipeline("prod")["deployment_status"] == "Running"


def test_a_scratch_pipeline_already_gone_is_nothing_to_do(feldera: Feldera, capfd: pytest.CaptureFixture[str]) -> None:
    trigger = deferred_drill_trigger(feldera)
    feldera.http.post(f"/pipelines/{SCRATCH}/stop", params={"force": "true"})
    wait_until(lambda: feldera.pipeline(SCRATCH), lambda p: p["deployment_status"] == "Stopped")
    feldera.http.post(f"/pipelines/{SCRATCH}/clear")
    wait_until(lambda: feldera.pipeline(SCRATCH), lambda p: p["storage_status"] == "Cleared")
    assert feldera.http.delete(f"/pipelines/{SCRATCH}").is_success
    feldera.sandbox.control.clear_requests()
    capfd.readouterr()
    kill(trigger)
    assert f"Task killed: scratch pipeline '{SCRATCH}' is gone already" in capfd.readouterr().out
    assert feldera.mutating_requests() == []
