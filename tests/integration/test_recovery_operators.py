"""Configure, Restore and Activate through dag.test(), against the sandbox and moto."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
from airflow_support import (
    asset_event_extras,
    aws_connection,
    run_dag,
    run_dag_tasks,
    task_states,
    xcoms,
)
from support import PROGRAM, sync_config, wait_until

from airflow_checkpoint_sync.testing.approvals import answering

if TYPE_CHECKING:
    from feldera_setup import Feldera

BUCKET_CONN = "s3_dr"


@pytest.fixture
def feldera(feldera: Feldera, monkeypatch: pytest.MonkeyPatch) -> Feldera:
    """The shared sandbox fixture, plus the bucket connections these DAGs name."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{BUCKET_CONN.upper()}", aws_connection(feldera.s3))
    monkeypatch.setenv("AIRFLOW_CONN_AZURE_DR", json.dumps({"conn_type": "wasb", "login": "a", "password": "b"}))
    return feldera


def conf(feldera: Feldera, **values: Any) -> dict[str, Any]:
    base = {"bucket": f"{feldera.bucket}/staging", "read_bucket": f"{feldera.bucket}/prod", "bucket_conn": BUCKET_CONN}
    return {**base, **values}


def synced_prod(feldera: Feldera, records: int) -> str:
    """A running 'prod' with `records` rows and one synced checkpoint; returns its uuid."""
    feldera.running_pipeline("prod", records=records)
    feldera.http.post("/pipelines/prod/checkpoint")
    wait_until(lambda: feldera.sandbox.control.storage("prod")["checkpoints"], bool)
    uuid = feldera.http.post("/pipelines/prod/checkpoint/sync").json()["checkpoint_uuid"]
    wait_until(lambda: feldera.catalog("prod"), lambda c: uuid in c)
    return str(uuid)


def standby_staging(feldera: Feldera, pull_interval: int = 1) -> None:
    """'staging' started as a standby that pulls the latest checkpoint from prod's bucket every ``pull_interval``."""
    sync = sync_config(
        feldera.s3,
        feldera.bucket,
        "staging",
        read_bucket=f"{feldera.bucket}/prod",
        start_from_checkpoint="latest",
        pull_interval=pull_interval,
    )
    feldera.create("staging", sync)
    feldera.start("staging", "standby")


def mutating(feldera: Feldera, pipeline: str) -> list[str]:
    return [m for m in feldera.mutating_requests() if f"/pipelines/{pipeline}" in m]


# -- configure --------------------------------------------------------------------------------------------------
def test_configure_writes_only_the_sync_block_and_is_idempotent(feldera: Feldera) -> None:
    feldera.create("staging", sync=None, workers=3, tracing=True)
    before = feldera.pipeline("staging", "all")["runtime_config"]
    run = run_dag("configure_sync", **conf(feldera, read_bucket=None))
    assert task_states(run) == {"configure": "success"}
    assert xcoms(run)[("configure", "return_value")]["changed"] is True
    after = feldera.pipeline("staging", "all")["runtime_config"]
    sync = after["storage"]["backend"]["config"].pop("sync")
    written = {
        "bucket": f"{feldera.bucket}/staging",
        "access_key": feldera.s3.access_key,
        "secret_key": feldera.s3.secret_key,
        "endpoint": feldera.s3.url,
        "region": "us-east-1",
        "provider": "Other",
        "retention_min_count": 3,
    }
    assert {key: sync[key] for key in written} == written
    assert len(sync) == 22  # Feldera returns it normalized: every field, defaults filled in
    before["storage"]["backend"]["config"].pop("sync", None)
    assert after == before  # everything else as it was
    feldera.sandbox.control.clear_requests()
    again = run_dag("configure_sync", **conf(feldera, read_bucket=None))
    assert xcoms(again)[("configure", "return_value")]["changed"] is False
    assert mutating(feldera, "staging") == []


def test_configure_refuses_a_running_pipeline(feldera: Feldera, capfd: pytest.CaptureFixture[str]) -> None:
    feldera.running_pipeline("staging", sync=None)
    feldera.sandbox.control.clear_requests()
    run = run_dag("configure_sync", **conf(feldera))
    assert task_states(run) == {"configure": "failed"}
    assert "only while the pipeline is stopped" in capfd.readouterr().out
    assert mutating(feldera, "staging") == []


def test_s3_credentials_from_an_aws_connection_work_end_to_end(feldera: Feldera) -> None:
    # Configure prod through the aws connection, then sync with the keys that came from it.
    feldera.create("prod", sync=None)
    run = run_dag(
        "configure_sync", pipeline="prod", bucket=f"{feldera.bucket}/prod", bucket_conn=BUCKET_CONN, read_bucket=None
    )
    assert task_states(run) == {"configure": "success"}
    feldera.start("prod")
    feldera.ingest("prod", 0, 5)
    migrated = run_dag("sync_in_worker", pipeline="prod")
    assert migrated.state == "success"
    assert xcoms(migrated)[("sync", "return_value")] in feldera.catalog("prod")


# -- restore ----------------------------------------------------------------------------------------------------
def test_migration_restores_the_synced_state(feldera: Feldera) -> None:
    feldera.running_pipeline("prod", records=21)
    feldera.create("staging", sync=None)
    run = run_dag("migration", **conf(feldera))
    assert task_states(run) == {"sync": "success", "restore": "success"}
    uuid = xcoms(run)[("sync", "return_value")]
    result = xcoms(run)[("restore", "return_value")]
    assert result == {
        "pipeline_name": "staging",
        "checkpoint": uuid,
        "status": "Running",
        "started_at": result["started_at"],  # when the start was asked for (the restore's duration metric)
    }
    assert feldera.processed("staging") == 21
    assert feldera.catalog("prod") == [uuid]
    assert feldera.s3.keys(feldera.bucket, "staging/") == []  # read_bucket was read, staging wrote nothing yet


def test_a_retry_after_a_lost_worker_follows_the_start_it_requested(feldera: Feldera) -> None:
    uuid = synced_prod(feldera, 7)
    feldera.create("staging", sync=None)
    control = feldera.sandbox.control
    # The first read (before the start) passes; the wait's reads after the start fail past the hook's retries: that
    # try is lost.
    control.delay("/v0/pipelines/staging", 0, method="GET")
    control.fail("/v0/pipelines/staging", method="GET", status=500, error_code="InternalError", count=6)
    run = run_dag("restore_with_retries", **conf(feldera, checkpoint=uuid))
    assert task_states(run) == {"restore": "success"}
    starts = [r for r in control.requests() if r["method"] == "POST" and r["path"] == "/v0/pipelines/staging/start"]
    assert len(starts) == 1  # the retry followed the start instead of refusing a running pipeline
    assert feldera.processed("staging") == 7


def test_a_standby_whose_own_bucket_holds_checkpoints_is_refused_before_any_change(
    feldera: Feldera, capfd: pytest.CaptureFixture[str]
) -> None:
    uuid = synced_prod(feldera, 3)
    feldera.create("staging", sync=None)
    # Its own bucket holds a checkpoint (a push from an earlier life: a failover, a failback, a test).
    client = feldera.s3.client()
    catalog = client.get_object(Bucket=feldera.bucket, Key="prod/checkpoints.feldera")["Body"].read()
    client.put_object(Bucket=feldera.bucket, Key="staging/checkpoints.feldera", Body=catalog)
    feldera.sandbox.control.clear_requests()
    capfd.readouterr()
    run = run_dag("restore_standby", **conf(feldera))
    assert task_states(run) == {"restore": "failed"}
    out = capfd.readouterr().out
    assert f"its own bucket {feldera.bucket}/staging already holds {uuid}" in out
    assert f"Feldera reads read_bucket ({feldera.bucket}/prod) only while bucket holds no checkpoint" in out
    assert mutating(feldera, "staging") == []  # refused before the PATCH


def test_restore_deferred(feldera: Feldera) -> None:
    uuid = synced_prod(feldera, 4)
    feldera.create("staging", sync=None)
    run = run_dag("restore_deferred", **conf(feldera, checkpoint=uuid))
    assert task_states(run) == {"restore": "success"}
    assert feldera.processed("staging") == 4


def test_hot_standby_then_failover_with_the_newer_state(feldera: Feldera) -> None:
    synced_prod(feldera, 3)
    feldera.create("staging", sync=None)
    run = run_dag("restore_standby", **conf(feldera))
    assert task_states(run) == {"restore": "success"}
    assert feldera.pipeline("staging")["deployment_status"] == "Standby"
    # The primary moves on and syncs again; the standby pulls the newer checkpoint.
    feldera.ingest("prod", 100, 9)
    feldera.http.post("/pipelines/prod/checkpoint")
    newer = wait_until(lambda: feldera.sandbox.control.storage("prod")["checkpoints"], lambda c: len(c) == 2)[-1]
    feldera.http.post("/pipelines/prod/checkpoint/sync")
    wait_until(lambda: feldera.catalog("prod"), lambda c: newer["uuid"] in c)
    wait_until(
        lambda: feldera.sandbox.control.storage("staging")["checkpoints"],
        lambda cs: newer["uuid"] in [c["uuid"] for c in cs],
        timeout=15,
    )
    # Failover: the primary goes down, the standby takes over.
    feldera.http.post("/pipelines/prod/stop", params={"force": "true"})
    wait_until(lambda: feldera.pipeline("prod"), lambda p: p["deployment_status"] == "Stopped")
    run = run_dag("failover", pipeline="staging", primary="prod")
    assert task_states(run) == {"activate": "success"}
    result = xcoms(run)[("activate", "return_value")]
    assert result == {
        "pipeline_name": "staging",
        "status": "Running",
        "already_active": False,
        "checkpoint_uuid": newer["uuid"],  # the recovery point it started from
        "checkpoint_age_seconds": result["checkpoint_age_seconds"],
        "activated_at": result["activated_at"],
    }
    assert 0 <= result["checkpoint_age_seconds"] < 600
    assert dt.datetime.fromisoformat(result["activated_at"]) <= dt.datetime.now(dt.UTC)
    assert feldera.processed("staging") == 12
    # A retry (or a second click at 3 a.m.) is safe: already running counts as done and activates nothing.
    feldera.sandbox.control.clear_requests()
    again = run_dag("failover", pipeline="staging", primary="prod")
    assert xcoms(again)[("activate", "return_value")]["already_active"] is True
    assert mutating(feldera, "staging") == []


def test_failover_refuses_while_the_primary_runs(feldera: Feldera, capfd: pytest.CaptureFixture[str]) -> None:
    synced_prod(feldera, 2)
    standby_staging(feldera)
    feldera.sandbox.control.clear_requests()
    run = run_dag("failover", pipeline="staging", primary="prod")
    assert task_states(run) == {"activate": "failed"}
    assert "the primary pipeline 'prod' is still Running" in capfd.readouterr().out
    assert mutating(feldera, "staging") == []
    forced = run_dag("failover_split_brain", pipeline="staging", primary="prod")
    assert task_states(forced) == {"activate": "success"}


def test_failover_refuses_a_recovery_point_older_than_its_bound_unless_overridden(
    feldera: Feldera, capfd: pytest.CaptureFixture[str]
) -> None:
    uuid = synced_prod(feldera, 2)
    standby_staging(feldera)
    wait_until(lambda: feldera.sandbox.control.storage("staging")["checkpoints"], bool)
    feldera.sandbox.control.clear_requests()
    capfd.readouterr()
    run = run_dag("failover_rpo", pipeline="staging", primary="")
    assert task_states(run) == {"activate": "failed"}
    out = capfd.readouterr().out
    assert f"refusing to activate 'staging': the newest checkpoint is {uuid}, " in out
    assert "older than max_age 0.001s (max_checkpoint_age)" in out and "allow_stale_checkpoint=True" in out
    assert mutating(feldera, "staging") == []
    forced = run_dag("failover_rpo_override", pipeline="staging", primary="")
    assert task_states(forced) == {"activate": "success"}
    assert xcoms(forced)[("activate", "return_value")]["checkpoint_uuid"] == uuid
    assert "(allow_stale_checkpoint=True)" in capfd.readouterr().out


# -- approved failover (Airflow's ApprovalOperator between the reading and the activation) --------------------------
def stopped_primary_and_standby(feldera: Feldera) -> str:
    """A synced 'prod', now stopped, and 'staging' its standby holding prod's checkpoint; returns its uuid."""
    uuid = synced_prod(feldera, 5)
    standby_staging(feldera)
    wait_until(lambda: feldera.sandbox.control.storage("staging")["checkpoints"], bool)
    feldera.http.post("/pipelines/prod/stop", params={"force": "true"})
    wait_until(lambda: feldera.pipeline("prod"), lambda p: p["deployment_status"] == "Stopped")
    feldera.sandbox.control.clear_requests()
    return uuid


def test_an_approved_failover_shows_the_approver_what_it_read_and_records_who_approved(feldera: Feldera) -> None:
    uuid = stopped_primary_and_standby(feldera)
    with answering("failover_approved", "Approve") as requests:
        run = run_dag("failover_approved", pipeline="staging", primary="prod")
    assert task_states(run) == {"check": "success", "approve": "success", "activate": "success"}
    # The approver saw the primary down, the standby in Standby and the recovery point with its age.
    (request,) = requests
    assert request["subject"] == "Fail over to staging?"
    body = request["body"]
    assert "Primary: `prod`: **Stopped**" in body and "Standby: `staging`: **Standby**" in body
    assert f"`{uuid}`, **" in body and " old**" in body and "Ready:" in body
    assert set(request["params"]) == {"allow_stale_checkpoint"}
    readiness = xcoms(run)[("check", "return_value")]
    assert (readiness["ready"], readiness["concerns"], readiness["checkpoint_uuid"]) == (True, [], uuid)
    follows = f"read_bucket {feldera.bucket}/prod (its own bucket {feldera.bucket}/staging holds no checkpoint)"
    assert readiness["follows"] == follows and f"Pulls from: {follows}" in body
    result = xcoms(run)[("activate", "return_value")]
    assert result["status"] == "Running" and result["checkpoint_uuid"] == uuid
    assert result["approved_by"] == "oncall" and result["accepted_stale_checkpoint"] is False
    assert result["approved_at"] <= result["activated_at"]
    # The record of the failover: who approved which recovery point, and when.
    (event,) = asset_event_extras(run)
    recorded = ("pipeline_name", "checkpoint_uuid", "approved_by", "approved_at", "activated_at")
    assert {k: event[k] for k in recorded} == {k: result[k] for k in recorded}
    assert feldera.processed("staging") == 5
    # The reading changed nothing; the activation was the one mutating request.
    assert mutating(feldera, "staging") == ["POST /v0/pipelines/staging/activate"]


def test_a_refused_failover_activates_nothing(feldera: Feldera) -> None:
    stopped_primary_and_standby(feldera)
    with answering("failover_approved", "Reject"):
        run = run_dag("failover_approved", pipeline="staging", primary="prod")
    assert task_states(run) == {"check": "success", "approve": "success", "activate": "skipped"}
    assert asset_event_extras(run) == []
    assert feldera.pipeline("staging")["deployment_status"] == "Standby"
    assert mutating(feldera, "staging") == []


def test_a_recovery_point_too_old_is_refused_even_when_approved_unless_the_approver_accepts_it(
    feldera: Feldera, capfd: pytest.CaptureFixture[str]
) -> None:
    uuid = stopped_primary_and_standby(feldera)
    with answering("failover_approved_rpo", "Approve") as requests:
        run = run_dag("failover_approved_rpo", pipeline="staging", primary="prod")
    assert task_states(run) == {"check": "success", "approve": "success", "activate": "failed"}
    # The approver was told, and the activation refused before changing anything.
    assert "over the 0.001 s bound: activating loses everything since" in requests[0]["body"]
    assert xcoms(run)[("check", "return_value")]["ready"] is False
    assert "refusing to activate 'staging': the newest checkpoint is" in capfd.readouterr().out
    assert mutating(feldera, "staging") == []
    assert feldera.pipeline("staging")["deployment_status"] == "Standby"
    # The approver accepts the old recovery point in the approval form: the override.
    with answering("failover_approved_rpo", "Approve", {"allow_stale_checkpoint": True}):
        forced = run_dag("failover_approved_rpo", pipeline="staging", primary="prod")
    assert task_states(forced) == {"check": "success", "approve": "success", "activate": "success"}
    result = xcoms(forced)[("activate", "return_value")]
    assert (result["checkpoint_uuid"], result["accepted_stale_checkpoint"]) == (uuid, True)
    assert asset_event_extras(forced)[0]["accepted_stale_checkpoint"] is True
    assert "(allow_stale_checkpoint=True)" in capfd.readouterr().out


def test_the_approve_command_answers_from_another_process(feldera: Feldera) -> None:
    # What `make demo` does around `airflow dags test`: the answer comes from another process on the same database.
    stopped_primary_and_standby(feldera)
    command = [sys.executable, "-m", "airflow_checkpoint_sync.testing", "approve", "failover_approved"]
    approver = subprocess.Popen(
        [*command, "--user", "night-shift", "--timeout", "120"],
        env=os.environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        run = run_dag("failover_approved", pipeline="staging", primary="prod")
        out = approver.communicate(timeout=60)[0]
    finally:
        if approver.poll() is None:
            approver.kill()
    assert approver.returncode == 0, out
    assert "answered 1 of 1 request(s) of failover_approved with 'Approve'" in out
    assert task_states(run)["activate"] == "success"
    assert asset_event_extras(run)[0]["approved_by"] == "night-shift"


def test_an_approval_answered_once_is_not_lost_when_its_task_fails_after_the_answer(feldera: Feldera) -> None:
    uuid = stopped_primary_and_standby(feldera)
    run = run_dag("failover_approval_raced", pipeline="staging", primary="prod")
    # The approval task failed after recording its answer (the deferral race): the activation still acts on it.
    assert task_states(run) == {"approve": "failed", "activate": "success"}
    result = xcoms(run)[("activate", "return_value")]
    assert (result["status"], result["approved_by"], result["checkpoint_uuid"]) == ("Running", "night-shift", uuid)
    assert mutating(feldera, "staging") == ["POST /v0/pipelines/staging/activate"]


def test_an_activation_that_needs_approval_refuses_without_one(feldera: Feldera) -> None:
    stopped_primary_and_standby(feldera)
    # Only the activation runs (as when someone marks the approval task success, or runs the task alone).
    dag_run = run_dag_tasks("failover_approved", ["activate"], pipeline="staging", primary="prod")
    assert task_states(dag_run)["activate"] == "failed"
    assert mutating(feldera, "staging") == []


def test_failover_within_its_recovery_point_bound_activates(feldera: Feldera) -> None:
    uuid = synced_prod(feldera, 2)
    standby_staging(feldera)
    wait_until(lambda: feldera.sandbox.control.storage("staging")["checkpoints"], bool)
    run = run_dag("failover_rpo_met", pipeline="staging", primary="")
    assert task_states(run) == {"activate": "success"}
    assert xcoms(run)[("activate", "return_value")]["checkpoint_uuid"] == uuid


def test_failover_to_paused_deferred(feldera: Feldera) -> None:
    synced_prod(feldera, 2)
    standby_staging(feldera)
    run = run_dag("failover_deferred", pipeline="staging")
    assert task_states(run) == {"activate": "success"}
    assert feldera.pipeline("staging")["deployment_status"] == "Paused"


def test_activating_a_pipeline_that_is_not_a_standby_fails(feldera: Feldera, capfd: pytest.CaptureFixture[str]) -> None:
    feldera.create("staging")
    run = run_dag("failover", pipeline="staging")
    assert task_states(run) == {"activate": "failed"}
    assert "is Stopped, not in Standby" in capfd.readouterr().out


def test_standby_on_activated_storage_says_to_clear_it(feldera: Feldera, capfd: pytest.CaptureFixture[str]) -> None:
    synced_prod(feldera, 2)
    standby_staging(feldera)
    feldera.http.post("/pipelines/staging/activate")
    wait_until(lambda: feldera.pipeline("staging"), lambda p: p["deployment_status"] == "Running")
    feldera.http.post("/pipelines/staging/stop", params={"force": "true"})
    wait_until(lambda: feldera.pipeline("staging"), lambda p: p["deployment_status"] == "Stopped")
    run = run_dag("restore_standby", **conf(feldera))
    assert task_states(run) == {"restore": "failed"}
    out = capfd.readouterr().out
    assert "skipped Standby" in out and "clear_storage=True" in out
    feldera.http.post("/pipelines/staging/stop", params={"force": "true"})
    wait_until(lambda: feldera.pipeline("staging"), lambda p: p["deployment_status"] == "Stopped")
    cleared = run_dag("restore_standby_clear", **conf(feldera))
    assert task_states(cleared) == {"restore": "success"}
    assert feldera.pipeline("staging")["deployment_status"] == "Standby"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown_uuid", "were not found in source"),
        ("wrong_keys", "SignatureDoesNotMatch"),
        ("program_changed", "AwaitingApproval"),
    ],
)
def test_restore_failures_carry_feldera_message(
    feldera: Feldera, monkeypatch: pytest.MonkeyPatch, case: str, message: str, capfd: pytest.CaptureFixture[str]
) -> None:
    uuid = synced_prod(feldera, 3)
    checkpoint = uuid
    if case == "unknown_uuid":
        # Its local storage is in use, so only Feldera can tell that the checkpoint is not there either.
        checkpoint = "01890000-0000-7000-8000-0000000000ff"
        feldera.running_pipeline("staging", sync=None)
        assert feldera.http.post("/pipelines/staging/stop", params={"force": "true"}).status_code == 202
        wait_until(lambda: feldera.pipeline("staging"), lambda p: p["deployment_status"] == "Stopped")
        assert feldera.pipeline("staging")["storage_status"] == "InUse"
    if case == "wrong_keys":
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{BUCKET_CONN.upper()}", aws_connection(feldera.s3, password="wrong-secret-key")
        )
    if case == "program_changed":
        r = feldera.http.put(
            "/pipelines/staging", json={"name": "staging", "program_code": PROGRAM + "\nCREATE TABLE extra (y INT);"}
        )
        assert r.status_code == 201
        wait_until(lambda: feldera.pipeline("staging"), lambda p: p["program_status"] == "Success")
    elif case != "unknown_uuid":
        feldera.create("staging", sync=None)
    run = run_dag("restore_running", **conf(feldera, checkpoint=checkpoint))
    assert task_states(run) == {"restore": "failed"}
    assert message in capfd.readouterr().out


def test_restore_refuses_a_running_pipeline_unless_told_to_stop_it(
    feldera: Feldera, capfd: pytest.CaptureFixture[str]
) -> None:
    uuid = synced_prod(feldera, 6)
    feldera.running_pipeline("staging", sync=None)
    feldera.sandbox.control.clear_requests()
    run = run_dag("restore_running", **conf(feldera, checkpoint=uuid))
    assert task_states(run) == {"restore": "failed"}
    assert "set stop_if_running=True" in capfd.readouterr().out
    assert mutating(feldera, "staging") == []
    stopped = run_dag("restore_stop_if_running", **conf(feldera, checkpoint=uuid))
    assert task_states(stopped) == {"restore": "success"}
    assert "POST /v0/pipelines/staging/stop" in mutating(feldera, "staging")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"checkpoint": "newest"}, "checkpoint='newest' is not valid"),
        ({"bucket": "s3://bucket/staging"}, "without a URL scheme"),
        ({"bucket_conn": "azure_dr"}, "S3-compatible stores only"),
        ({"bucket_conn": "no_such_conn"}, "no_such_conn"),
        ({"read_bucket": "BUCKET_SAME"}, "different location than bucket"),
        ({"pipeline": "not a name"}, "is not valid: a Feldera pipeline name"),
    ],
)
def test_bad_input_fails_before_any_change(
    feldera: Feldera, values: dict[str, Any], message: str, capfd: pytest.CaptureFixture[str]
) -> None:
    feldera.create("staging", sync=None)
    feldera.sandbox.control.clear_requests()
    if values.get("read_bucket") == "BUCKET_SAME":
        values = {"read_bucket": f"{feldera.bucket}/staging"}
    run = run_dag("restore_running", **conf(feldera, **values))
    assert task_states(run) == {"restore": "failed"}
    assert message in capfd.readouterr().out
    assert feldera.mutating_requests() == []


def test_a_failed_activation_reports_the_deployment_error(feldera: Feldera, capfd: pytest.CaptureFixture[str]) -> None:
    # A standby whose buckets hold nothing: it waits happily, but activation has nothing to pull.
    standby_staging(feldera)
    run = run_dag("failover", pipeline="staging")
    assert task_states(run) == {"activate": "failed"}
    out = capfd.readouterr().out
    assert "failed to start: activation failed: could not pull checkpoint" in out


@pytest.mark.parametrize("dag_id", ["restore_running", "configure_sync"])
def test_a_location_another_pipeline_owns_is_refused_before_anything_is_written(
    feldera: Feldera, capfd: pytest.CaptureFixture[str], dag_id: str
) -> None:
    synced_prod(feldera, 3)  # prod's first push claimed bucket/prod
    feldera.create("staging", sync=None)
    before = feldera.pipeline("staging", "all")["runtime_config"]
    feldera.sandbox.control.clear_requests()
    run = run_dag(dag_id, **conf(feldera, bucket=f"{feldera.bucket}/prod", read_bucket=None))
    assert set(task_states(run).values()) == {"failed"}
    owner = f"pipeline-{feldera.pipeline('prod', 'all')['id']}"
    assert f"bucket='{feldera.bucket}/prod' belongs to another pipeline ({owner}, says its owner.json)" in (
        capfd.readouterr().out
    )
    assert mutating(feldera, "staging") == []
    assert feldera.pipeline("staging", "all")["runtime_config"] == before


def test_a_pipeline_restores_from_the_location_it_owns(feldera: Feldera) -> None:
    # The owner check must never refuse a recovery into the pipeline's own, already-claimed bucket.
    uuid = synced_prod(feldera, 4)
    assert feldera.http.post("/pipelines/prod/stop", params={"force": "true"}).status_code == 202
    wait_until(lambda: feldera.pipeline("prod"), lambda p: p["deployment_status"] == "Stopped")
    run = run_dag(
        "restore_running",
        **conf(feldera, pipeline="prod", bucket=f"{feldera.bucket}/prod", read_bucket=None, checkpoint=uuid),
    )
    assert task_states(run) == {"restore": "success"}
    assert feldera.processed("prod") == 4


UNSYNCED = "01890000-0000-7000-8000-0000000000ff"


@pytest.mark.parametrize("checkpoint", [UNSYNCED, "latest"])
def test_a_checkpoint_no_source_holds_is_refused_before_anything_is_written(
    feldera: Feldera, capfd: pytest.CaptureFixture[str], checkpoint: str
) -> None:
    # For "latest": read_bucket is a location nothing was ever synced to.
    uuid = synced_prod(feldera, 3)
    read_bucket = f"{feldera.bucket}/prod" if checkpoint != "latest" else f"{feldera.bucket}/empty"
    feldera.create("staging", sync=None)
    before = feldera.pipeline("staging", "all")["runtime_config"]
    feldera.sandbox.control.clear_requests()
    run = run_dag("restore_running", **conf(feldera, checkpoint=checkpoint, read_bucket=read_bucket))
    assert task_states(run) == {"restore": "failed"}
    out = capfd.readouterr().out
    what = f"checkpoint {checkpoint}" if checkpoint != "latest" else "a synced checkpoint"
    assert f"{what} is in neither the local storage nor {feldera.bucket}/staging or {read_bucket}" in out
    assert f"{feldera.bucket}/staging: no checkpoints.feldera, nothing synced there" in out
    if checkpoint != "latest":
        assert f"{feldera.bucket}/prod: {uuid}" in out
    assert mutating(feldera, "staging") == []
    assert feldera.pipeline("staging", "all")["runtime_config"] == before


def test_a_standby_may_wait_for_a_checkpoint_that_is_not_synced_yet(
    feldera: Feldera, capfd: pytest.CaptureFixture[str]
) -> None:
    # A standby set up before the primary's first push is legitimate: it keeps pulling until the checkpoint appears.
    feldera.create("staging", sync=None)
    run = run_dag("restore_standby", **conf(feldera, checkpoint="latest"))
    assert task_states(run) == {"restore": "success"}
    assert "is not in" in capfd.readouterr().out
    assert feldera.pipeline("staging")["deployment_status"] == "Standby"


def test_an_activation_is_given_two_pull_intervals_on_top_of_its_timeout(feldera: Feldera) -> None:
    # Feldera activates a standby after its pull loop has woken twice: it pulls, notices the activation, sleeps and
    # pulls once more. The standby's first pull sets the loop's phase: the activation comes a few seconds after it,
    # so the pipeline leaves Standby some 35 s later, long after the 3 s timeout plus one pull_interval (23 s) would
    # have ended the wait; two pull intervals (43 s) cover it, the margin absorbing a loaded machine's slow pull.
    synced_prod(feldera, 3)
    standby_staging(feldera, pull_interval=20)
    wait_until(lambda: feldera.sandbox.control.storage("staging")["standby_pulls"], bool)
    feldera.http.post("/pipelines/prod/stop", params={"force": "true"})
    wait_until(lambda: feldera.pipeline("prod"), lambda p: p["deployment_status"] == "Stopped")
    run = run_dag("failover_short_timeout", pipeline="staging", primary="prod")
    assert task_states(run) == {"activate": "success"}
    assert feldera.pipeline("staging")["deployment_status"] == "Running"
    assert feldera.processed("staging") == 3
