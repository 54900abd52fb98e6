"""The example DAGs, and faults, on a real Airflow deployment (``make e2e``; see deployment.py).

The demo's scenario (scheduled DR, migration, hot standby and failover, a cross-cloud replica and a restore from it,
the weekly restore drill) runs through the scheduler, the executor and the triggerer as users run it: scheduled DAGs
run when they are unpaused, the others are triggered through ``/api/v2``. It runs twice: on the LocalExecutor, and on
the CeleryExecutor with a Redis broker and two Celery workers. Then the faults: the triggerer, and the scheduler,
killed with SIGKILL while a sync is deferred; the triggerer killed while a sensor is deferred; a sync's and a
restore's task process killed while it waits; on Celery, the worker running a sync killed, its retry taken by the
other worker; a deferred restore drill marked failed, its scratch pipeline removed by the triggerer. Every claim is
checked against the sandbox's request log and the bucket, and no secret may be anywhere Airflow keeps or shows things.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from browser import logged_in
from deployment import CELERY_WORKERS, AirflowDeployment, deployment

from airflow_checkpoint_sync.testing import AzuriteServer, FelderaSandbox, MotoS3Server
from airflow_checkpoint_sync.testing.emulators import AZURITE_KEY

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "demo"))
import run_demo  # noqa: E402


@dataclass
class Row:
    """One DAG run on the deployment, for the suite's table."""

    executor: str
    scenario: str
    dag_id: str
    outcome: str
    seconds: float
    #: Mutating requests Feldera saw during the run.
    mutating: int
    #: Tries beyond each task's first.
    retries: int = 0
    #: Times the scheduler met Airflow's own deferral race in the run (see AirflowDeployment.deferral_races).
    airflow_races: int = 0


RESULTS: list[Row] = []
#: REST calls each deployment sent again because sqlite's lock timeout refused them (AirflowDeployment.api).
LOCK_TIMEOUTS: dict[str, int] = {}

#: Runs of one DAG a scenario makes when Airflow's own race, not the provider, failed one.
RUNS_ON_AIRFLOW_RACE = 3


@dataclass
class Stack:
    airflow: AirflowDeployment
    sandbox: FelderaSandbox
    s3: MotoS3Server
    bucket: str
    env: dict[str, str]


@pytest.fixture(scope="module", params=["LocalExecutor", "CeleryExecutor"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A whole deployment per executor, each with its own Feldera, S3 and Azure servers (the examples' pipeline and
    bucket names are fixed, and a bucket location stays locked to the pipeline that first synced to it)."""
    executor = str(request.param)
    home = tmp_path_factory.mktemp(f"airflow-{executor}")
    with (
        MotoS3Server() as s3,
        AzuriteServer(run_demo.AZURITE) as azurite,
        FelderaSandbox(api_key=run_demo.API_KEY) as sandbox,
    ):
        bucket = s3.create_bucket("feldera-dr")  # the example DAGs' default
        env = run_demo.airflow_env(str(home), sandbox.url, s3, azurite.connection_string)
        with deployment(home, run_demo.EXAMPLE_DAGS, env, executor) as airflow:
            airflow.wait_parsed({"feldera_scheduled_dr", "feldera_failover", "feldera_restore_from_azure"})
            try:
                yield Stack(airflow, sandbox, s3, bucket, env)
            finally:
                LOCK_TIMEOUTS[executor.removesuffix("Executor")] = airflow.lock_timeouts


def local_only(stack: Stack, why: str) -> None:
    if stack.airflow.executor != "LocalExecutor":
        pytest.skip(why)


def runner(stack: Stack, scenario: str) -> Callable[..., str]:
    """``run(dag_id, **conf)`` on the deployment: a paused DAG on a time schedule is unpaused and its own first run
    awaited (as when a user switches it on); any other run is triggered with ``conf``."""
    airflow = stack.airflow

    def run(dag_id: str, **conf: Any) -> str:
        for _ in range(RUNS_ON_AIRFLOW_RACE):
            dag = airflow.api("GET", f"/dags/{dag_id}/details")
            started, mutating_before = time.monotonic(), len(stack.sandbox.control.mutating_requests())
            on_a_clock = dag.get("timetable_summary") not in (None, "None") and not dag.get("asset_expression")
            if dag["is_paused"] and on_a_clock:
                airflow.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
                run_id = first_run(airflow, dag_id)
            else:
                run_id = airflow.trigger(dag_id, conf)
            answer = "Approve" if dag_id in run_demo.APPROVED_BY_THE_DEMO else None
            state = airflow.wait_run(dag_id, run_id, answer=answer)
            row = record(stack, scenario, dag_id, run_id, state, started, mutating_before)
            logs = airflow.task_logs(dag_id, run_id)
            if state == "success":
                return logs
            if not row.airflow_races:
                break
            # Airflow failed a task whose trigger had fired: not the provider's failure. Counted, and run again.
            row.outcome = "race"
        raise run_demo.DemoFailure(f"{dag_id} ended {state}:\n{logs[-4000:]}")

    return run


def record(stack: Stack, scenario: str, dag_id: str, run_id: str, state: str, started: float, before: int) -> Row:
    """Add the run's row to the table: its mutating requests since ``before``, its retries and Airflow races."""
    tries = [int(ti.get("try_number") or 1) for ti in stack.airflow.task_instances(dag_id, run_id)]
    row = Row(
        stack.airflow.executor.removesuffix("Executor"),
        scenario,
        dag_id,
        state,
        time.monotonic() - started,
        len(stack.sandbox.control.mutating_requests()) - before,
        retries=sum(max(0, t - 1) for t in tries),
        airflow_races=stack.airflow.deferral_races(dag_id, run_id),
    )
    RESULTS.append(row)
    return row


def first_run(airflow: AirflowDeployment, dag_id: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = airflow.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 1})["dag_runs"]
        if runs:
            return str(runs[0]["dag_run_id"])
        time.sleep(1)
    raise AssertionError(f"the scheduler made no run of {dag_id} within {timeout:.0f}s of unpausing it")


def test_the_demo_scenario_runs_on_a_real_deployment(stack: Stack) -> None:
    summary = run_demo.run_scenario(stack.sandbox.url, stack.s3, stack.bucket, stack.env, run=runner(stack, "demo"))
    # run_scenario checks each claim as it goes; these are the ones the demo prints.
    assert summary.synced_uuid and f"prod/dependencies/{summary.synced_uuid}.json" in summary.bucket_objects
    assert "prod/checkpoints.feldera" in summary.bucket_objects and "prod/owner.json" in summary.bucket_objects
    assert 0 <= summary.rpo_age_seconds < 3600
    assert summary.staging_records == summary.production_records == 15
    assert summary.standby_status == "Running"
    assert summary.standby_records == summary.primary_records == 22
    assert summary.drill_records == 22
    assert len(summary.drills) == 2  # the weekly restore drill, from the bucket and from the replica
    assert_the_failover_was_approved_and_recorded(stack.airflow)


def assert_the_failover_was_approved_and_recorded(airflow: AirflowDeployment) -> None:
    """The failover waited in Required Actions showing what it read, the admin approved it through ``/api/v2``, and
    the activation recorded who approved which checkpoint, and when."""
    (run,) = [r for r in airflow.api("GET", "/dags/feldera_failover/dagRuns")["dag_runs"] if r["state"] == "success"]
    base = f"/dags/feldera_failover/dagRuns/{run['dag_run_id']}/taskInstances"
    request = airflow.api("GET", f"{base}/approve_failover/-1/hitlDetails")
    assert request["chosen_options"] == ["Approve"] and request["responded_by_user"]["name"] == "admin"
    assert "Primary: `prod`: **Stopped**" in request["body"] and "Ready: no concern found." in request["body"]
    activation = airflow.api("GET", f"{base}/activate_standby/xcomEntries/return_value")["value"]
    activation = json.loads(activation) if isinstance(activation, str) else activation
    assert activation["approved_by"] == "admin" and activation["status"] == "Running"
    events = airflow.api("GET", "/assets/events", params={"source_dag_id": "feldera_failover"})["asset_events"]
    (event,) = [e for e in events if e["source_run_id"] == run["dag_run_id"]]
    assert event["extra"]["approved_by"] == "admin"
    assert event["extra"]["checkpoint_uuid"] == activation["checkpoint_uuid"]


@pytest.mark.parametrize("component", ["triggerer", "scheduler"])
def test_a_deferred_sync_survives_a_killed_triggerer_or_scheduler(stack: Stack, component: str) -> None:
    # The triggerer and the scheduler are the same processes whatever the executor: once is enough for CI's time.
    local_only(stack, "the triggerer and scheduler kills run on the LocalExecutor deployment")
    feldera = run_demo.Feldera(stack.sandbox.url)
    pipeline = f"fault-{component}"
    feldera.create(pipeline)
    run = runner(stack, f"setup for the {component} fault")
    run("feldera_dr_setup", pipeline=pipeline, bucket=f"{stack.bucket}/{pipeline}", bucket_conn_id="feldera_bucket")
    feldera.start(pipeline)
    feldera.ingest(pipeline, 0, 4)
    control = stack.sandbox.control
    control.set_timings(sync_delay_s=15)
    control.clear_requests()
    airflow = stack.airflow
    run_id = airflow.trigger("feldera_scheduled_dr", {"pipeline": pipeline})
    started = time.monotonic()
    airflow.wait_task_state("feldera_scheduled_dr", run_id, "sync_checkpoint", "deferred")
    airflow.kill(component)  # SIGKILL: no shutdown of its own
    time.sleep(3)
    airflow.start(component)
    state = airflow.wait_run("feldera_scheduled_dr", run_id)
    control.set_timings(sync_delay_s=0)
    mutating = [f"{r['method']} {r['path']}" for r in control.mutating_requests()]
    record(stack, f"{component} killed (SIGKILL) while deferred", "feldera_scheduled_dr", run_id, state, started, 0)
    assert state == "success", airflow.task_logs("feldera_scheduled_dr", run_id)[-4000:]
    # Exactly one checkpoint and one sync: the wait went on after the restart, it did not start another push.
    assert mutating.count(f"POST /v0/pipelines/{pipeline}/checkpoint") == 1
    assert mutating.count(f"POST /v0/pipelines/{pipeline}/checkpoint/sync") == 1
    assert len(run_demo.catalog(stack.s3, stack.bucket, pipeline)) == 1


def test_a_deferred_sensor_survives_a_killed_triggerer(stack: Stack) -> None:
    local_only(stack, "the triggerer kills run on the LocalExecutor deployment")
    from feldera import FelderaClient, Pipeline

    feldera = run_demo.Feldera(stack.sandbox.url)
    pipeline = "fault-sensor"
    feldera.create(pipeline)
    run = runner(stack, "setup for the sensor fault")
    run("feldera_dr_setup", pipeline=pipeline, bucket=f"{stack.bucket}/{pipeline}", bucket_conn_id="feldera_bucket")
    feldera.start(pipeline)
    feldera.ingest(pipeline, 0, 3)
    airflow, control = stack.airflow, stack.sandbox.control
    control.clear_requests()
    # No checkpoint is synced yet: the RPO sensor defers, looking again every poke_interval until one lands.
    run_id = airflow.trigger("feldera_rpo_monitor", {"pipeline": pipeline})
    started = time.monotonic()
    airflow.wait_task_state("feldera_rpo_monitor", run_id, "recovery_point_objective", "deferred")
    airflow.kill("triggerer")  # SIGKILL while the sensor's trigger waits in it
    # Feldera pushes a checkpoint by itself (as push_interval does) while no triggerer runs.
    client = Pipeline.get(pipeline, FelderaClient(stack.sandbox.url, api_key=run_demo.API_KEY))
    client.checkpoint(wait=True)
    synced = client.sync_checkpoint(wait=True)
    airflow.start("triggerer")
    state = airflow.wait_run("feldera_rpo_monitor", run_id)
    record(stack, "triggerer killed (SIGKILL) while a sensor waits", "feldera_rpo_monitor", run_id, state, started, 0)
    logs = airflow.task_logs("feldera_rpo_monitor", run_id)
    assert state == "success", logs[-4000:]
    (sensor,) = airflow.task_instances("feldera_rpo_monitor", run_id)
    # The same try went on waiting in the new triggerer (no retry, no page) and saw the checkpoint Feldera pushed.
    assert sensor["try_number"] == 1
    path = f"/dags/feldera_rpo_monitor/dagRuns/{run_id}/taskInstances/recovery_point_objective/xcomEntries/freshness"
    measurement = airflow.api("GET", path)["value"]
    measurement = json.loads(measurement) if isinstance(measurement, str) else measurement
    assert (measurement["checkpoint_uuid"], measurement["state"]) == (synced, "fresh")
    assert "Feldera RPO missed" not in logs
    # The sensor only reads: the one checkpoint and the one sync are the ones Feldera was asked for above.
    mutating = [f"{r['method']} {r['path']}" for r in control.mutating_requests() if f"/{pipeline}/" in r["path"]]
    assert mutating == [f"POST /v0/pipelines/{pipeline}/checkpoint", f"POST /v0/pipelines/{pipeline}/checkpoint/sync"]


#: The example asset a watcher feeds with each new synced checkpoint of prod (example_dags/feldera_replication.py).
RECOVERY_POINTS = "x-feldera://prod/recovery-points"


def test_a_watcher_fires_once_per_new_recovery_point_across_a_triggerer_restart(stack: Stack) -> None:
    local_only(stack, "the triggerer kills run on the LocalExecutor deployment")
    from feldera import FelderaClient, Pipeline

    airflow, feldera = stack.airflow, run_demo.Feldera(stack.sandbox.url)
    if feldera.http.get("/pipelines/prod").status_code == 404:  # the suite's demo made it; alone, make it here
        feldera.create("prod")
        run = runner(stack, "setup for the watcher")
        run("feldera_dr_setup", pipeline="prod", bucket=f"{stack.bucket}/prod", bucket_conn_id="feldera_bucket")
    if feldera.status("prod")["deployment_status"] != "Running":  # the demo's failover stopped it
        feldera.start("prod")
    run_demo.replica_container(stack.env)  # where the example replicates to
    client = Pipeline.get("prod", FelderaClient(stack.sandbox.url, api_key=run_demo.API_KEY))

    def push(n: int) -> str:
        """Feldera pushes a checkpoint by itself, as with push_interval: no Airflow task is involved."""
        feldera.ingest("prod", 1000 + n, 1)
        client.checkpoint(wait=True)
        return str(client.sync_checkpoint(wait=True))

    def fired() -> list[str]:
        # From the metadata database: Airflow 3.3.2's GET /assets/events answers 500 while a DAG run an event
        # created is still queued (its start_date None fails the response model).
        with sqlite3.connect(airflow.home / "airflow.db", timeout=30) as db:
            rows = db.execute(
                "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri = ? "
                "ORDER BY e.timestamp, e.id",
                (RECOVERY_POINTS,),
            ).fetchall()
        return [json.loads(extra)["payload"]["checkpoint_uuid"] for (extra,) in rows]  # Airflow wraps the event

    started = time.monotonic()
    airflow.api("PATCH", "/dags/feldera_replicate_every_push", json={"is_paused": False})
    try:
        # Unpaused, its asset's watcher is handed to the triggerer, which takes prod's newest checkpoint as the start.
        wait_for(lambda: "'prod' starts after checkpoint" in airflow.log("triggerer"), 120)
        first = push(1)
        wait_for(lambda: first in fired(), 60)
        time.sleep(5)  # past the moment the watcher stores its watermark (a kill before it repeats the event)
        airflow.kill("triggerer")  # SIGKILL
        while_down = push(2)  # pushed while no triggerer runs
        airflow.start("triggerer")
        wait_for(lambda: while_down in fired(), 120)
        after = push(3)
        wait_for(lambda: after in fired(), 60)
        time.sleep(12)  # one more listing (poll_interval 10 s): a repeat would show now
        events = fired()
        for dag_run in airflow.api("GET", "/dags/feldera_replicate_every_push/dagRuns")["dag_runs"]:
            airflow.wait_run("feldera_replicate_every_push", dag_run["dag_run_id"])
    finally:
        airflow.api("PATCH", "/dags/feldera_replicate_every_push", json={"is_paused": True})
    RESULTS.append(
        Row("Local", "watcher across a triggerer killed (SIGKILL)", "feldera_replicate_every_push",
            "success" if events == [first, while_down, after] else "wrong", time.monotonic() - started, 0)
    )  # fmt: skip
    # One event per new checkpoint, in order: none lost while the triggerer was down, none repeated after.
    assert events == [first, while_down, after]
    # The replication the example schedules on that asset ran on them, and succeeded.
    states = [airflow.api("GET", f"/dags/feldera_replicate_every_push/dagRuns/{r['dag_run_id']}")["state"]
              for r in airflow.api("GET", "/dags/feldera_replicate_every_push/dagRuns")["dag_runs"]]  # fmt: skip
    assert states and set(states) == {"success"}, states


def migration_with_a_kill(stack: Stack, task_id: str, name: str) -> tuple[str, float, Any]:
    """Start a migration of ``<name>prod`` to ``<name>staging`` slowed down so that ``task_id`` is still waiting when
    it is killed: a sync that takes 15 s, or a start that provisions for 6 s. Returns ``(run_id, started, the task
    instance)`` once ``task_id``'s first mutating request reached Feldera."""
    feldera = run_demo.Feldera(stack.sandbox.url)
    prod, staging = f"{name}prod", f"{name}staging"
    for pipeline in (prod, staging):
        feldera.create(pipeline)
    run = runner(stack, "setup for a kill")
    run("feldera_dr_setup", pipeline=prod, bucket=f"{stack.bucket}/{prod}", bucket_conn_id="feldera_bucket")
    feldera.start(prod)
    feldera.ingest(prod, 0, 6)
    control = stack.sandbox.control
    control.clear_requests()
    if task_id == "sync_production":
        control.set_timings(sync_delay_s=15)
        first = f"POST /v0/pipelines/{prod}/checkpoint/sync"
    else:
        control.set_timings(provision_s=6)
        first = f"POST /v0/pipelines/{staging}/start"
    conf = {
        "production": prod,
        "staging": staging,
        "production_bucket": f"{stack.bucket}/{prod}",
        "staging_bucket": f"{stack.bucket}/{staging}",
    }
    started = time.monotonic()
    run_id = stack.airflow.trigger("feldera_migration", conf)
    wait_for(lambda: first in [f"{r['method']} {r['path']}" for r in control.mutating_requests()], 120)
    ti = next(t for t in stack.airflow.task_instances("feldera_migration", run_id) if t["task_id"] == task_id)
    return run_id, started, ti


def assert_one_of_each_and_staging_runs(stack: Stack, name: str, run_id: str, task_id: str) -> None:
    """The migration succeeded with the killed task on its second try, which followed what its first try had
    started: one checkpoint, one sync, one start, and staging runs production's synced state."""
    airflow, control = stack.airflow, stack.sandbox.control
    control.set_timings(sync_delay_s=0, provision_s=0.1)
    mutating = [f"{r['method']} {r['path']}" for r in control.mutating_requests()]
    tries = {t["task_id"]: t["try_number"] for t in airflow.task_instances("feldera_migration", run_id)}
    assert tries[task_id] == 2
    assert mutating.count(f"POST /v0/pipelines/{name}prod/checkpoint") == 1
    assert mutating.count(f"POST /v0/pipelines/{name}prod/checkpoint/sync") == 1
    assert mutating.count(f"POST /v0/pipelines/{name}staging/start") == 1
    assert run_demo.Feldera(stack.sandbox.url).records(f"{name}staging") == 6


@pytest.mark.parametrize("task_id", ["sync_production", "restore_staging"])
def test_a_task_whose_process_is_killed_is_retried_and_follows_its_first_try(stack: Stack, task_id: str) -> None:
    local_only(stack, "on Celery the whole worker is killed (the next test)")
    name = "ksync" if task_id == "sync_production" else "krestore"
    run_id, started, ti = migration_with_a_kill(stack, task_id, name)
    stack.airflow.kill_task_process(str(ti["id"]))
    state = stack.airflow.wait_run("feldera_migration", run_id, timeout=400)
    record(stack, f"task process killed (SIGKILL) in {task_id}", "feldera_migration", run_id, state, started, 0)
    assert state == "success", stack.airflow.task_logs("feldera_migration", run_id)[-4000:]
    assert_one_of_each_and_staging_runs(stack, name, run_id, task_id)


def test_a_celery_worker_killed_mid_sync_leaves_the_retry_to_the_other_worker(stack: Stack) -> None:
    if stack.airflow.executor != "CeleryExecutor":
        pytest.skip("needs the CeleryExecutor deployment's two workers")
    airflow = stack.airflow
    run_id, started, ti = migration_with_a_kill(stack, "sync_production", "kworker")
    _, worker = airflow.task_process(str(ti["id"]))
    airflow.kill(worker)  # SIGKILL of the worker's process group: the Celery worker, its pool and the task
    try:
        # The scheduler fails the silent try after its heartbeat timeout, and the retry goes to the live worker.
        state = airflow.wait_run("feldera_migration", run_id, timeout=400)
    finally:
        airflow.start(worker)
    record(stack, "Celery worker killed (SIGKILL) mid-sync", "feldera_migration", run_id, state, started, 0)
    assert state == "success", airflow.task_logs("feldera_migration", run_id)[-4000:]
    retry = next(t for t in airflow.task_instances("feldera_migration", run_id) if t["task_id"] == "sync_production")
    ran_it = [w for w in CELERY_WORKERS if f"id=UUID('{retry['id']}')" in airflow.log(w)]
    assert ran_it and worker not in ran_it, (worker, ran_it)
    assert_one_of_each_and_staging_runs(stack, "kworker", run_id, "sync_production")


def test_a_drill_marked_failed_while_deferred_has_the_triggerer_remove_its_scratch_pipeline(stack: Stack) -> None:
    local_only(stack, "the triggerer is the same process whatever the executor")
    from feldera import FelderaClient, Pipeline

    airflow, control, feldera = stack.airflow, stack.sandbox.control, run_demo.Feldera(stack.sandbox.url)
    pipeline, scratch = "kdrill", "kdrill-drill"
    feldera.create(pipeline)
    run = runner(stack, "setup for the killed drill")
    run("feldera_dr_setup", pipeline=pipeline, bucket=f"{stack.bucket}/{pipeline}", bucket_conn_id="feldera_bucket")
    feldera.start(pipeline)
    feldera.ingest(pipeline, 0, 3)
    client = Pipeline.get(pipeline, FelderaClient(stack.sandbox.url, api_key=run_demo.API_KEY))
    client.checkpoint(wait=True)
    client.sync_checkpoint(wait=True)
    control.set_timings(initialize_s=600)  # the scratch pipeline never gets to Running: the drill stays deferred
    try:
        run_id = airflow.trigger(
            "feldera_restore_drill", {"pipeline": pipeline, "bucket": f"{stack.bucket}/{pipeline}"}
        )
        started = time.monotonic()
        airflow.wait_task_state("feldera_restore_drill", run_id, "drill_from_bucket", "deferred", timeout=300)
        assert feldera.http.get(f"/pipelines/{scratch}").status_code == 200
        control.clear_requests()
        # The triggerer runs the trigger once it reads the scratch pipeline (nothing else reads it now). A trigger
        # the triggerer has not picked up yet is never run, so there would be no on_kill to call.
        wait_for(lambda: any(r["path"] == f"/v0/pipelines/{scratch}" for r in control.requests()), 60)
        control.clear_requests()
        # The user marks the deferred drill failed: no worker runs it, so only its trigger's on_kill can clean up.
        # Airflow 3.3.2 cancels the trigger again about a second later, while on_kill runs: the cleanup outlives it.
        path = f"/dags/feldera_restore_drill/dagRuns/{run_id}/taskInstances/drill_from_bucket"
        airflow.api("PATCH", path, json={"new_state": "failed"})
        wait_for(lambda: feldera.http.get(f"/pipelines/{scratch}").status_code == 404, 60)
    finally:
        control.set_timings(initialize_s=0.1)
    mutating = [f"{r['method']} {r['path']}" for r in control.mutating_requests()]
    airflow.wait_task_state("feldera_restore_drill", run_id, "drill_from_bucket", "failed", timeout=60)
    # The run's other branch (the drill from the replica) started its scratch pipeline while initializations took
    # 600 s: it is not this test's subject, so the run is ended (its trigger's on_kill removes that pipeline too).
    airflow.api("PATCH", f"/dags/feldera_restore_drill/dagRuns/{run_id}", json={"state": "failed"})
    state = airflow.wait_run("feldera_restore_drill", run_id, timeout=120)
    record(stack, "drill marked failed while deferred", "feldera_restore_drill", run_id, state, started, 0)
    assert mutating[0] == f"POST /v0/pipelines/{scratch}/stop" and mutating[-1] == f"DELETE /v0/pipelines/{scratch}"
    assert all(f"/pipelines/{scratch}" in r for r in mutating), mutating
    # What the user sees in the task's log: the trigger's own lines follow the try's.
    assert f"Task killed: scratch pipeline '{scratch}' stopped and deleted" in airflow.task_logs(
        "feldera_restore_drill", run_id
    )
    assert feldera.status(pipeline)["deployment_status"] == "Running"


def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout:.0f}s")
        time.sleep(0.2)


#: Where the UI test saves its screenshots; ``make e2e WRITE=1`` copies them to the docs (docs/_static/ui).
SCREENSHOTS = ROOT / "docs" / "_static" / "ui"


def test_the_ui_shows_the_connection_form_the_extra_link_and_the_trigger_form(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    local_only(stack, "the UI is the api-server's, whatever the executor")
    airflow, shots = stack.airflow, tmp_path_factory.mktemp("screenshots")
    sync = next(
        run for run in airflow.api("GET", "/dags/feldera_scheduled_dr/dagRuns", params={"limit": 100})["dag_runs"]
        if run["state"] == "success" and run["conf"].get("pipeline", "prod") == "prod"
    )  # fmt: skip
    params = airflow.api("GET", "/dags/feldera_failover/details")["params"]
    with logged_in(airflow.url, "admin", airflow.password("admin")) as page:
        # The feldera connection form: the provider's labels, the key a password field, Verify TLS one line.
        page.set_viewport_size({"width": 1400, "height": 1250})
        page.goto(f"{airflow.url}/connections")
        page.get_by_role("button", name="Add Connection").click()
        kind = page.get_by_role("combobox", name="Connection Type")
        kind.click()
        kind.fill("Feldera")
        page.keyboard.press("Enter")
        page.get_by_label("Connection ID").fill("feldera_prod")
        page.get_by_role("button", name="Extra Fields", exact=True).click()
        verify = page.locator("input[name='element_verify']")
        verify.wait_for()
        labels = [text.strip(" *\n") for text in page.locator("label").all_inner_texts()]
        for label in ("Feldera API URL", "API key", "Verify TLS", "Request timeout (seconds)", "Tenant"):
            assert label in labels, labels
        assert page.locator("input[name='password']").get_attribute("type") == "password"
        assert verify.evaluate("e => e.tagName") == "INPUT"  # one line, not a JSON text box
        for hidden in ("login", "schema", "port"):
            assert page.locator(f"input[name='{hidden}']").count() == 0
        page.screenshot(path=shots / "connection_form.png", full_page=True)

        # A finished sync task: the "Feldera pipeline" link goes to the pipeline in the console.
        page.goto(f"{airflow.url}/dags/feldera_scheduled_dr/runs/{sync['dag_run_id']}/tasks/sync_checkpoint/details")
        link = page.get_by_role("link", name="Feldera pipeline")
        assert link.get_attribute("href") == f"{stack.sandbox.url}/pipelines/prod/"
        page.set_viewport_size({"width": 1400, "height": 700})
        page.screenshot(path=shots / "extra_link.png")

        # The failover DAG's trigger form shows each of its Params, with its description.
        page.set_viewport_size({"width": 1400, "height": 1500})
        page.goto(f"{airflow.url}/dags/feldera_failover")
        page.get_by_role("button", name="Trigger").first.click()
        page.get_by_text("Run Parameters").wait_for()
        labels = [text.strip(" *\n") for text in page.locator("label").all_inner_texts()]
        assert set(params) <= set(labels), (sorted(params), labels)
        for name, param in params.items():
            if param.get("description"):
                assert page.get_by_text(param["description"]).count() == 1, name
        page.screenshot(path=shots / "trigger_form.png")
    made = sorted(p.name for p in shots.iterdir())
    assert made == ["connection_form.png", "extra_link.png", "trigger_form.png"]
    if os.environ.get("E2E_WRITE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for name in made:
            shutil.copyfile(shots / name, SCREENSHOTS / name)


def test_no_secret_reaches_anything_airflow_keeps_or_shows(stack: Stack) -> None:
    secrets = {
        "Feldera API key": run_demo.API_KEY,
        "bucket secret key": stack.s3.secret_key,
        "Azure account key": AZURITE_KEY,
    }
    home = stack.airflow.home
    places = {str(p): p.read_text(errors="replace") for p in home.rglob("*") if p.is_file() and p.suffix != ".db"}
    with sqlite3.connect(home / "airflow.db") as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            places[f"table {table}"] = "\n".join(repr(row) for row in db.execute(f'SELECT * FROM "{table}"'))
    api = stack.airflow.api
    for dag in api("GET", "/dags", params={"limit": 100})["dags"]:
        for dag_run in api("GET", f"/dags/{dag['dag_id']}/dagRuns", params={"limit": 100})["dag_runs"]:
            path = f"/dags/{dag['dag_id']}/dagRuns/{dag_run['dag_run_id']}/taskInstances"
            instances = api("GET", path)
            places[f"REST {path}"] = json.dumps(instances)  # rendered fields included
            for ti in instances["task_instances"]:
                xcom_path = f"{path}/{ti['task_id']}/xcomEntries"
                places[f"REST {xcom_path}"] = json.dumps(api("GET", xcom_path, params={"map_index": ti["map_index"]}))
    assert any(where.startswith("table xcom") for where in places)
    assert any(where.startswith("REST") for where in places)
    # The scan does see values: the console link the sync tasks pushed to XCom is there.
    assert any(f"{stack.sandbox.url}/pipelines/prod/" in text for where, text in places.items() if "xcom" in where)
    leaks = [f"{what} in {where}" for where, text in places.items() for what, value in secrets.items() if value in text]
    assert leaks == []
