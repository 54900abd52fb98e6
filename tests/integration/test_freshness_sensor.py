"""CheckpointFreshnessSensor through dag.test(): fresh, stale, nothing synced, unreachable Feldera, in every mode."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pytest
from airflow_support import feldera_connection, run_dag, task_states, xcoms
from support import wait_until

from airflow_checkpoint_sync.rules.status import uuid7_time
from airflow_checkpoint_sync.testing.server import LOOPBACK, free_port

if TYPE_CHECKING:
    from feldera_setup import Feldera


def older_than(uuid: str, seconds: float) -> None:
    wait_until(lambda: time.time() - uuid7_time(uuid).timestamp(), lambda age: age > seconds)


@pytest.mark.parametrize("dag_id", ["freshness_poke", "freshness_reschedule", "freshness_deferred"])
def test_a_fresh_checkpoint_passes_with_its_age_in_xcom(feldera: Feldera, dag_id: str) -> None:
    feldera.running_pipeline("prod", records=3)
    uuid = feldera.sync_now()
    run = run_dag(dag_id)
    assert task_states(run) == {"rpo": "success"}
    values = xcoms(run)
    measured = values[("rpo", "freshness")]
    assert measured["state"] == "fresh" and measured["checkpoint_uuid"] == uuid
    assert 0 <= measured["age_seconds"] < 3600 and measured["max_age_seconds"] == 3600
    assert values[("rpo", "return_value")] == measured
    assert ("rpo", "alarm") not in values
    assert values[("rpo", "_link_FelderaPipelineLink")] == f"{feldera.sandbox.url}/pipelines/prod/"  # the extra link


@pytest.mark.parametrize("dag_id", ["freshness_strict_poke", "freshness_strict_deferred"])
def test_a_stale_checkpoint_fails_and_fires_the_callback(
    feldera: Feldera, dag_id: str, capfd: pytest.CaptureFixture[str]
) -> None:
    feldera.running_pipeline("prod", records=3)
    uuid = feldera.sync_now()
    older_than(uuid, 1.2)
    run = run_dag(dag_id)
    assert task_states(run) == {"rpo": "failed"}
    values = xcoms(run)
    alarm = values[("rpo", "alarm")]
    assert alarm == values[("rpo", "freshness")]
    assert alarm["state"] == "stale" and alarm["checkpoint_uuid"] == uuid and alarm["age_seconds"] > 1
    assert f"recovery point objective missed: newest synced checkpoint of 'prod' is {uuid}" in capfd.readouterr().out


def test_no_synced_checkpoint_at_all_is_stale(feldera: Feldera, capfd: pytest.CaptureFixture[str]) -> None:
    feldera.running_pipeline("prod", records=3)
    feldera.http.post("/pipelines/prod/checkpoint")  # taken, but never synced
    run = run_dag("freshness_poke")
    assert task_states(run) == {"rpo": "failed"}
    alarm = xcoms(run)[("rpo", "alarm")]
    assert alarm["state"] == "none" and alarm["checkpoint_uuid"] is None
    assert "pipeline 'prod' has no synced checkpoint" in capfd.readouterr().out


def test_unreachable_feldera_fails_without_calling_the_callback(
    airflow_db: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    url = f"http://{LOOPBACK}:{free_port()}"
    monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(url))
    run = run_dag("freshness_strict_deferred")
    assert task_states(run) == {"rpo": "failed"}
    assert ("rpo", "alarm") not in xcoms(run)
    assert f"cannot connect to {url}" in capfd.readouterr().out


@pytest.mark.parametrize("dag_id", ["freshness_strict_waiting", "freshness_strict_waiting_reschedule"])
def test_with_a_timeout_it_waits_for_the_next_sync(feldera: Feldera, dag_id: str) -> None:
    feldera.running_pipeline("prod", records=3)
    older_than(feldera.sync_now(), 5.2)  # stale against max_age=5, so the sensor has to wait for the next sync
    newer: list[str | BaseException] = []

    def sync_once_the_sensor_waits() -> None:
        try:
            wait_until(lambda: len(status_reads(feldera)), lambda n: n >= 2, timeout=60)  # looked, looking again
            newer.append(feldera.sync_now())
        except BaseException as exc:
            newer.append(exc)

    later = threading.Thread(target=sync_once_the_sensor_waits)
    later.start()
    try:
        run = run_dag(dag_id)
    finally:
        later.join()
    assert isinstance(newer[0], str), newer
    assert task_states(run) == {"rpo": "success"}
    assert xcoms(run)[("rpo", "return_value")]["checkpoint_uuid"] == newer[0]


def status_reads(feldera: Feldera) -> list[object]:
    return [r for r in feldera.sandbox.control.requests() if r["path"] == "/v0/pipelines/prod/checkpoint/sync_status"]


def test_after_a_restart_the_bucket_listing_answers(feldera: Feldera) -> None:
    feldera.running_pipeline("prod", records=3)
    uuid = feldera.sync_now()
    feldera.sandbox.control.restart("prod")  # the new process's sync status names nothing
    wait_until(lambda: feldera.pipeline("prod"), lambda p: p["deployment_status"] == "Running")
    run = run_dag("freshness_deferred")
    assert task_states(run) == {"rpo": "success"}
    assert xcoms(run)[("rpo", "freshness")]["checkpoint_uuid"] == uuid
    assert any(r["path"] == "/v0/pipelines/prod/checkpoints/remote" for r in feldera.sandbox.control.requests())
