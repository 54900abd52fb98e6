"""The mapped matrix: every class x every mode it offers x mapped over at least two pipelines, with retries.

Each map index works on its own pipeline, so each assertion checks that index's own result and XCom against what
its own pipeline did: a mix-up between indexes, or state read from another index, fails here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from airflow_support import aws_connection, run_dag
from support import sync_config, wait_until

from airflow_checkpoint_sync.rules.drill import DrillOwner
from airflow_checkpoint_sync.testing.approvals import answering

if TYPE_CHECKING:
    from feldera_setup import Feldera

PIPELINES = ["fleet-a", "fleet-b", "fleet-c"]
COPIES = ["copy-a", "copy-b"]


@pytest.fixture
def feldera(feldera: Feldera, monkeypatch: pytest.MonkeyPatch) -> Feldera:
    """The shared sandbox fixture, plus the bucket connection the mapped DAGs use."""
    monkeypatch.setenv("AIRFLOW_CONN_S3_DR", aws_connection(feldera.s3))
    return feldera


def mapped(dag_run: Any) -> tuple[dict[tuple[str, int], Any], dict[tuple[str, int, str], Any]]:
    """(state and try number by (task, map index), XCom by (task, map index, key)) of one run."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        states = {
            (ti.task_id, ti.map_index): (str(ti.state), ti.try_number)
            for ti in dag_run.get_task_instances(session=session)
        }
        rows = session.scalars(
            select(XComModel).where(XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id)
        ).all()
        values = {(row.task_id, row.map_index, row.key): XComModel.deserialize_value(row) for row in rows}
    return states, values


def posts(feldera: Feldera, pipeline: str, suffix: str) -> int:
    return feldera.mutating_requests().count(f"POST /v0/pipelines/{pipeline}{suffix}")


def succeeded(states: dict[tuple[str, int], Any], task_id: str, count: int) -> None:
    assert {index: state for (task, index), (state, _) in states.items() if task == task_id} == dict.fromkeys(
        range(count), "success"
    ), states


def synced_fleet(feldera: Feldera, names: list[str]) -> dict[str, str]:
    """Running pipelines with 10, 20, 30... rows and one synced checkpoint each; their uuids by name."""
    uuids = {}
    for i, name in enumerate(names):
        feldera.running_pipeline(name)
        uuids[name] = feldera.sync_now(name, records=10 * (i + 1))
    return uuids


# -- SyncCheckpointOperator: worker and deferrable, expand and expand_kwargs ------------------------------------------
@pytest.mark.parametrize("mode", ["worker", "deferred"])
def test_mapped_sync_returns_each_pipelines_own_checkpoint(feldera: Feldera, mode: str) -> None:
    for i, name in enumerate(PIPELINES):
        feldera.running_pipeline(name, records=10 * (i + 1))
    run = run_dag(f"mapped_sync_{mode}", bucket=feldera.bucket)
    states, values = mapped(run)
    succeeded(states, "sync", 3)
    uuids = [values[("sync", i, "return_value")] for i in range(3)]
    assert len(set(uuids)) == 3
    for i, name in enumerate(PIPELINES):
        assert values[("sync", i, "checkpoint_uuid")] == uuids[i]
        assert values[("sync", i, "_link_FelderaPipelineLink")] == f"{feldera.sandbox.url}/pipelines/{name}/"
        assert feldera.catalog(name) == [uuids[i]]
        assert feldera.catalog_entry(name, uuids[i])["processed_records"] == 10 * (i + 1)
        assert (posts(feldera, name, "/checkpoint"), posts(feldera, name, "/checkpoint/sync")) == (1, 1)
    keys = {key for (_, _, key) in values}
    assert keys == {"return_value", "checkpoint_uuid", "incarnation_uuid", "_link_FelderaPipelineLink"}


@pytest.mark.parametrize("mode", ["worker", "deferred"])
def test_mapped_sync_with_expand_kwargs(feldera: Feldera, mode: str) -> None:
    feldera.running_pipeline("fleet-a", records=3)
    feldera.running_pipeline("fleet-b", records=4)
    feldera.http.post("/pipelines/fleet-b/checkpoint")  # index 1 pushes the newest existing one
    run = run_dag(f"mapped_sync_kwargs_{mode}", bucket=feldera.bucket)
    states, values = mapped(run)
    succeeded(states, "sync", 2)
    assert feldera.catalog("fleet-a") == [values[("sync", 0, "return_value")]]
    assert feldera.catalog("fleet-b") == [values[("sync", 1, "return_value")]]
    assert (posts(feldera, "fleet-a", "/checkpoint"), posts(feldera, "fleet-b", "/checkpoint")) == (1, 1)


def test_a_mapped_deferred_sync_whose_try_is_lost_reattaches_to_its_own_sync(feldera: Feldera) -> None:
    for i, name in enumerate(PIPELINES):
        feldera.running_pipeline(name, records=i + 1)
    # Index 1's status reads fail past the hook's retries: that try is lost after its sync has started.
    # (skip=1: its first read, before it asks for the push, goes through.)
    feldera.sandbox.control.fail(
        "/v0/pipelines/fleet-b/checkpoint/sync_status", method="GET", status=500, count=6, skip=1
    )
    run = run_dag("mapped_sync_deferred", bucket=feldera.bucket)
    states, values = mapped(run)
    succeeded(states, "sync", 3)
    assert states[("sync", 1)] == ("success", 2) and states[("sync", 0)][1] == states[("sync", 2)][1] == 1
    for i, name in enumerate(PIPELINES):
        assert feldera.catalog(name) == [values[("sync", i, "return_value")]]
        assert posts(feldera, name, "/checkpoint/sync") == 1  # the retry followed its sync, it did not start one


# -- CheckpointStatusSensor and CheckpointFreshnessSensor: poke, reschedule, deferrable -------------------------------
@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferred"])
def test_mapped_status_sensor_waits_for_each_pipelines_sync(feldera: Feldera, mode: str) -> None:
    feldera.sandbox.control.set_timings(sync_delay_s=0.6)
    for name in PIPELINES:
        feldera.running_pipeline(name, records=2)
    run = run_dag(f"mapped_status_{mode}", bucket=feldera.bucket)
    states, values = mapped(run)
    succeeded(states, "wait", 3)
    for i, name in enumerate(PIPELINES):
        started = values[("start", i, "return_value")]
        assert values[("wait", i, "return_value")] == started
        assert feldera.catalog(name) == [started]


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferred"])
def test_mapped_freshness_sensor_measures_each_pipeline(feldera: Feldera, mode: str) -> None:
    uuids = synced_fleet(feldera, PIPELINES)
    run = run_dag(f"mapped_freshness_{mode}", bucket=feldera.bucket)
    states, values = mapped(run)
    succeeded(states, "rpo", 3)
    for i, name in enumerate(PIPELINES):
        measurement = values[("rpo", i, "freshness")]
        assert (measurement["pipeline_name"], measurement["checkpoint_uuid"]) == (name, uuids[name])
        assert measurement["state"] == "fresh"
        assert values[("rpo", i, "return_value")] == measurement


# -- Configure, Restore, Activate, Replicate ---------------------------------------------------------------------------
def test_mapped_configure_writes_each_pipelines_own_bucket(feldera: Feldera) -> None:
    for name in COPIES:
        feldera.create(name, sync=None)
    run = run_dag("mapped_configure", bucket=feldera.bucket)
    states, values = mapped(run)
    succeeded(states, "configure", 2)
    for i, name in enumerate(COPIES):
        bucket = f"{feldera.bucket}/{name}"
        assert values[("configure", i, "return_value")] == {"pipeline_name": name, "bucket": bucket, "changed": True}
        sync = feldera.pipeline(name, "all")["runtime_config"]["storage"]["backend"]["config"]["sync"]
        assert (sync["bucket"], sync["retention_min_count"]) == (bucket, 3)


@pytest.mark.parametrize("mode", ["worker", "deferred"])
def test_mapped_restore_starts_each_copy_from_its_own_source(feldera: Feldera, mode: str) -> None:
    synced_fleet(feldera, PIPELINES[:2])
    for name in COPIES:
        feldera.create(name, sync=None)
    run = run_dag(f"mapped_restore_{mode}", bucket=feldera.bucket)
    states, values = mapped(run)
    succeeded(states, "restore", 2)
    for i, name in enumerate(COPIES):
        result = values[("restore", i, "return_value")]
        assert result == {
            "pipeline_name": name,
            "checkpoint": "latest",
            "status": "Running",
            "started_at": result["started_at"],
        }
        assert feldera.processed(name) == 10 * (i + 1)
        assert posts(feldera, name, "/start") == 1


def test_a_mapped_deferred_restore_whose_try_is_lost_follows_its_own_start(feldera: Feldera) -> None:
    synced_fleet(feldera, PIPELINES[:2])
    for name in COPIES:
        feldera.create(name, sync=None)
    control = feldera.sandbox.control
    # copy-b's first read passes; the reads after its start fail past the hook's retries: that try is lost.
    control.delay("/v0/pipelines/copy-b", 0, method="GET")
    control.fail("/v0/pipelines/copy-b", method="GET", status=500, count=6)
    run = run_dag("mapped_restore_deferred", bucket=feldera.bucket)
    states, _ = mapped(run)
    succeeded(states, "restore", 2)
    assert states[("restore", 1)] == ("success", 2)
    assert [posts(feldera, name, "/start") for name in COPIES] == [1, 1]
    assert [feldera.processed(name) for name in COPIES] == [10, 20]


def test_a_mapped_failover_activates_each_standby_on_its_own_approval(feldera: Feldera) -> None:
    synced_fleet(feldera, PIPELINES[:2])
    for name, source in zip(COPIES, PIPELINES, strict=False):
        sync = sync_config(
            feldera.s3, feldera.bucket, name, read_bucket=f"{feldera.bucket}/{source}", start_from_checkpoint="latest"
        )
        feldera.create(name, {**sync, "pull_interval": 1})
        feldera.start(name, "standby")
        # Its recovery point is the checkpoint it pulled: wait for the first pull, not only for Standby.
        wait_until(lambda: feldera.sandbox.control.storage(name)["checkpoints"], bool)  # noqa: B023
    with answering("mapped_approved_activate", "Approve") as requests:
        run = run_dag("mapped_approved_activate", bucket=feldera.bucket)
    states, values = mapped(run)
    succeeded(states, "activate", 2)
    assert sorted(r["subject"] for r in requests) == [f"Fail over to {name}?" for name in COPIES]
    for i, name in enumerate(COPIES):
        result = values[("activate", i, "return_value")]
        assert (result["pipeline_name"], result["status"], result["approved_by"]) == (name, "Running", "oncall")
        assert posts(feldera, name, "/activate") == 1


@pytest.mark.parametrize("mode", ["worker", "deferred"])
def test_mapped_activate_fails_each_standby_over(feldera: Feldera, mode: str) -> None:
    uuids = synced_fleet(feldera, PIPELINES[:2])
    for name, source in zip(COPIES, PIPELINES, strict=False):
        sync = sync_config(
            feldera.s3, feldera.bucket, name, read_bucket=f"{feldera.bucket}/{source}", start_from_checkpoint="latest"
        )
        feldera.create(name, {**sync, "pull_interval": 1})
        feldera.start(name, "standby")
        # Its recovery point is the checkpoint it pulled: wait for the first pull, not only for Standby.
        wait_until(lambda: feldera.sandbox.control.storage(name)["checkpoints"], bool)  # noqa: B023
    run = run_dag(f"mapped_activate_{mode}", bucket=feldera.bucket)
    states, values = mapped(run)
    succeeded(states, "activate", 2)
    for i, (name, source) in enumerate(zip(COPIES, PIPELINES, strict=False)):
        result = values[("activate", i, "return_value")]
        assert result == {
            "pipeline_name": name,
            "already_active": False,
            "status": "Running",
            "checkpoint_uuid": uuids[source],  # each standby's own recovery point
            "checkpoint_age_seconds": result["checkpoint_age_seconds"],
            "activated_at": result["activated_at"],
        }
        assert feldera.processed(name) == 10 * (i + 1)
        assert posts(feldera, name, "/activate") == 1


def test_mapped_replicate_copies_each_location(feldera: Feldera) -> None:
    uuids = synced_fleet(feldera, PIPELINES[:2])
    run = run_dag("mapped_replicate", bucket=feldera.bucket)
    states, values = mapped(run)
    succeeded(states, "replicate", 2)
    for i, name in enumerate(PIPELINES[:2]):
        report = values[("replicate", i, "return_value")]
        assert report["newest_checkpoint_uuid"] == uuids[name]
        assert report["destination"].endswith(f"/replicas/{name}")
        assert f"replicas/{name}/checkpoints.feldera" in feldera.s3.keys(feldera.bucket, f"replicas/{name}/")


def test_mapped_verify_reports_each_location_with_its_own_pipelines_retention(feldera: Feldera) -> None:
    first = synced_fleet(feldera, PIPELINES[:2])
    second = feldera.sync_now(PIPELINES[1], records=1)  # fleet-b has two checkpoints, fleet-a one
    run = run_dag("mapped_verify", bucket=feldera.bucket)
    states, values = mapped(run)
    succeeded(states, "verify", 2)
    expected = {PIPELINES[0]: [first[PIPELINES[0]]], PIPELINES[1]: [first[PIPELINES[1]], second]}
    for i, name in enumerate(PIPELINES[:2]):
        report = values[("verify", i, "return_value")]
        assert report["location"] == f"s3://{feldera.bucket}/{name}"
        assert report["checkpoint_uuids"] == expected[name] and report["ok"] is True
        assert report["retention"]["source"] == f"pipeline '{name}'"


def test_mapped_deferred_drills_restore_each_pipelines_own_checkpoint_and_leave_nothing(feldera: Feldera) -> None:
    uuids = synced_fleet(feldera, PIPELINES[:2])
    run = run_dag("mapped_drill", bucket=feldera.bucket)
    states, values = mapped(run)
    succeeded(states, "drill", 2)
    for i, name in enumerate(PIPELINES[:2]):
        result = values[("drill", i, "return_value")]
        assert (result["pipeline_name"], result["checkpoint_uuid"]) == (name, uuids[name])
        # Each mapped task instance has scratch names of its own (the suffix is its owner's: dag, run, task, index).
        suffix = DrillOwner("mapped_drill", "drill", i, run.run_id).suffix
        assert result["scratch_pipeline_name"] == f"{name}-drill-{suffix}"
        assert result["checks"][0]["value"] == 10 * (i + 1) and result["passed"] is True
        assert feldera.http.get(f"/pipelines/{name}-drill-{suffix}").status_code == 404
