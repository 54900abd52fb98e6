"""CheckpointStatusSensor in poke, reschedule and deferrable modes, through dag.test()."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from airflow_support import run_dag, task_states, xcoms

if TYPE_CHECKING:
    from feldera_setup import Feldera


@pytest.mark.parametrize("dag_id", ["sensor_poke", "sensor_reschedule", "sensor_deferred"])
def test_sensor_waits_for_the_sync_started_upstream(feldera: Feldera, dag_id: str) -> None:
    feldera.running_pipeline("prod", records=8)
    feldera.sandbox.control.set_timings(sync_delay_s=1.0)  # long enough that the sensor has to wait
    run = run_dag(dag_id, pipeline="prod")
    assert task_states(run) == {"sync": "success", "wait": "success"}
    values = xcoms(run)
    uuid = values[("sync", "checkpoint_uuid")]
    assert values[("sync", "return_value")] == uuid  # wait_for_completion=False returns once started
    assert values[("wait", "return_value")] == uuid
    assert uuid in feldera.catalog("prod")
    status_reads = [
        r for r in feldera.sandbox.control.requests() if r["path"] == "/v0/pipelines/prod/checkpoint/sync_status"
    ]
    assert len(status_reads) >= 2  # it really waited, polling


@pytest.mark.parametrize("dag_id", ["sensor_poke", "sensor_reschedule", "sensor_deferred"])
def test_sensor_fails_with_feldera_error(feldera: Feldera, dag_id: str, capfd: pytest.CaptureFixture[str]) -> None:
    feldera.running_pipeline("prod")
    feldera.sandbox.control.fail_next_sync("prod", "SignatureDoesNotMatch: check your keys")
    run = run_dag(dag_id, pipeline="prod")
    assert task_states(run) == {"sync": "success", "wait": "failed"}
    assert "SignatureDoesNotMatch: check your keys" in capfd.readouterr().out


def test_soft_fail_skips_instead_of_failing(feldera: Feldera) -> None:
    feldera.running_pipeline("prod")
    feldera.sandbox.control.fail_next_sync("prod", "bucket gone")
    run = run_dag("sensor_soft_fail", pipeline="prod")
    assert task_states(run) == {"sync": "success", "wait": "skipped"}


def test_sensor_reports_a_restart_instead_of_waiting_forever(
    feldera: Feldera, capfd: pytest.CaptureFixture[str]
) -> None:
    feldera.running_pipeline("prod")
    feldera.sandbox.control.set_timings(sync_delay_s=2.0)
    # skip=1: the sync task reads the status once before it asks for the push.
    feldera.sandbox.control.restart_on("/v0/pipelines/prod/checkpoint/sync_status", method="GET", skip=1)
    run = run_dag("sensor_poke", pipeline="prod")
    assert task_states(run) == {"sync": "success", "wait": "failed"}
    assert "restarted while checkpoint" in capfd.readouterr().out


@pytest.mark.parametrize("dag_id", ["sensor_unknown_uuid_poke", "sensor_unknown_uuid_deferred"])
def test_a_uuid_feldera_does_not_know_fails_after_the_grace_not_at_the_timeout(
    feldera: Feldera, capfd: pytest.CaptureFixture[str], dag_id: str
) -> None:
    feldera.running_pipeline("prod")
    synced = feldera.sync_now("prod", records=1)
    stranger = "01890000-0000-7000-8000-0000000000ab"  # a valid UUIDv7 this pipeline never made
    run = run_dag(dag_id, pipeline="prod", uuid=stranger)
    assert task_states(run) == {"wait": "failed"}
    out = capfd.readouterr().out
    assert f"is not syncing checkpoint {stranger} and its bucket does not list it" in out
    assert "timed out" not in out.lower() and "at the deadline" not in out
    assert feldera.catalog("prod") == [synced]


@pytest.mark.parametrize("dag_id", ["sensor_unknown_uuid_poke_short", "sensor_unknown_uuid_reschedule_short"])
def test_a_timeout_before_the_grace_says_the_uuid_is_unknown(
    feldera: Feldera, capfd: pytest.CaptureFixture[str], dag_id: str
) -> None:
    feldera.running_pipeline("prod")
    stranger = "01890000-0000-7000-8000-0000000000ab"
    run = run_dag(dag_id, pipeline="prod", uuid=stranger)
    assert task_states(run) == {"wait": "failed"}
    out = capfd.readouterr().out
    assert f"checkpoint {stranger} of pipeline 'prod' was unknown (not listed in the bucket) at the deadline" in out
