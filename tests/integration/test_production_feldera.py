"""Scenarios on a sandbox with production-shaped timings, compressed eight times (``production_timings(speed=8)``):
a 20 s compile, 10 s initializations, a fault-tolerant pipeline's 2-minute replay after a restart and a standby's
60 s pull loop, each passing eight times faster, in the proportions the provider's waits meet in production."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from airflow_support import feldera_connection, run_dag, task_states, xcoms
from feldera_setup import Feldera
from support import sync_config, wait_until

from airflow_checkpoint_sync.testing import FelderaSandbox, MotoS3Server, production_timings

if TYPE_CHECKING:
    from collections.abc import Iterator

SPEED = 8
SYNC_STATUS = "/v0/pipelines/prod/checkpoint/sync_status"
FAULT_TOLERANT = {"fault_tolerance": {"model": "at_least_once"}}


@pytest.fixture
def feldera(
    airflow_db: str, moto_s3: MotoS3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Feldera]:
    with FelderaSandbox(timings=production_timings(speed=SPEED)) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(sandbox.url))
        feldera = Feldera(sandbox, moto_s3, s3_bucket)
        feldera.create("prod", sync_config(moto_s3, s3_bucket, "prod"), **FAULT_TOLERANT)
        feldera.start("prod")
        feldera.ingest("prod", 0, 4)
        yield feldera


def requests_to(feldera: Feldera, method: str, path: str) -> list[dict[str, object]]:
    return [r for r in feldera.sandbox.control.requests() if r["method"] == method and r["path"] == path]


@pytest.mark.parametrize("dag_id", ["sync_patient", "sync_patient_deferred"])
def test_a_sync_whose_primary_restarts_and_replays_for_two_minutes(feldera: Feldera, dag_id: str) -> None:
    feldera.sandbox.control.clear_requests()
    # The first status read after the sync started finds a new process: 10 s of initialization, then 2 minutes of
    # replay (compressed: about 16 s) before its controller answers again.
    feldera.sandbox.control.restart_on(SYNC_STATUS, method="GET", skip=1)
    run = run_dag(dag_id, pipeline="prod")
    assert task_states(run) == {"sync": "success"}
    uuid = xcoms(run)[("sync", "return_value")]
    # One checkpoint, one sync that landed (the one for the new process), none refused for want of a controller.
    assert len(requests_to(feldera, "POST", "/v0/pipelines/prod/checkpoint")) == 1
    pushes = requests_to(feldera, "POST", "/v0/pipelines/prod/checkpoint/sync")
    assert [p["status"] for p in pushes] == [202, 202]
    assert feldera.catalog("prod")[-1] == uuid


def test_a_scheduled_sync_that_meets_a_replaying_pipeline_succeeds(feldera: Feldera) -> None:
    feldera.sandbox.control.restart("prod")
    wait_until(lambda: feldera.pipeline("prod")["deployment_status"], lambda status: status == "Replaying")
    run = run_dag("sync_patient", pipeline="prod")
    assert task_states(run) == {"sync": "success"}
    assert xcoms(run)[("sync", "return_value")] in feldera.catalog("prod")


def test_an_activation_with_a_60s_pull_interval_and_a_30s_timeout(feldera: Feldera) -> None:
    run = run_dag("sync_patient", pipeline="prod")
    assert task_states(run) == {"sync": "success"}
    uuid = xcoms(run)[("sync", "return_value")]
    standby = sync_config(
        feldera.s3,
        feldera.bucket,
        "staging",
        read_bucket=f"{feldera.bucket}/prod",
        start_from_checkpoint="latest",
        pull_interval=60,
    )
    feldera.create("staging", standby)
    feldera.start("staging", "standby")
    wait_until(lambda: feldera.sandbox.control.storage("staging")["checkpoints"], bool, timeout=60)
    feldera.http.post("/pipelines/prod/stop", params={"force": "true"})
    wait_until(lambda: feldera.pipeline("prod"), lambda p: p["deployment_status"] == "Stopped", timeout=60)
    run = run_dag("failover_60s_pull", pipeline="staging", primary="prod")
    assert task_states(run) == {"activate": "success"}
    result = xcoms(run)[("activate", "return_value")]
    assert (result["status"], result["checkpoint_uuid"]) == ("Running", uuid)
