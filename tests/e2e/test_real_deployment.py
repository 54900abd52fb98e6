"""The example DAGs, and faults, on a real Airflow deployment (``make e2e``; see deployment.py).

The demo's scenario (scheduled DR, migration, hot standby and failover, a cross-cloud replica and a restore from it,
the weekly restore drill) runs through the scheduler, the LocalExecutor and the triggerer as users run it: scheduled
DAGs run when they are unpaused, the others are triggered through ``/api/v2``. Then the triggerer, and the scheduler,
are killed with SIGKILL while a sync is deferred, and a restore's task process while it waits. Every claim is checked
against the sandbox's request log and the bucket, and no secret may be anywhere Airflow keeps or shows things.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from deployment import AirflowDeployment, deployment

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

#: Runs of one DAG a scenario makes when Airflow's own race, not the provider, failed one.
RUNS_ON_AIRFLOW_RACE = 3


@dataclass
class Stack:
    airflow: AirflowDeployment
    sandbox: FelderaSandbox
    s3: MotoS3Server
    bucket: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, moto_s3: MotoS3Server) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("airflow-deployment")
    bucket = moto_s3.create_bucket("feldera-dr")  # the example DAGs' default
    with (
        AzuriteServer(run_demo.AZURITE) as azurite,
        FelderaSandbox(api_key=run_demo.API_KEY) as sandbox,
    ):
        env = run_demo.airflow_env(str(home), sandbox.url, moto_s3, azurite.connection_string)
        with deployment(home, run_demo.EXAMPLE_DAGS, env) as airflow:
            airflow.wait_parsed({"feldera_scheduled_dr", "feldera_failover", "feldera_restore_from_azure"})
            yield Stack(airflow, sandbox, moto_s3, bucket, env)


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
            state = airflow.wait_run(dag_id, run_id)
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


@pytest.mark.parametrize("component", ["triggerer", "scheduler"])
def test_a_deferred_sync_survives_a_killed_triggerer_or_scheduler(stack: Stack, component: str) -> None:
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


def test_a_restore_whose_task_process_is_killed_is_retried_and_follows_its_start(stack: Stack) -> None:
    feldera = run_demo.Feldera(stack.sandbox.url)
    for name in ("killprod", "killstaging"):
        feldera.create(name)
    run = runner(stack, "setup for the task kill")
    run("feldera_dr_setup", pipeline="killprod", bucket=f"{stack.bucket}/killprod", bucket_conn_id="feldera_bucket")
    feldera.start("killprod")
    feldera.ingest("killprod", 0, 6)
    control = stack.sandbox.control
    control.clear_requests()
    # Slow provisioning: the restore is still waiting for Running when its process is killed.
    control.set_timings(provision_s=6)
    airflow = stack.airflow
    conf = {
        "production": "killprod",
        "staging": "killstaging",
        "production_bucket": f"{stack.bucket}/killprod",
        "staging_bucket": f"{stack.bucket}/killstaging",
    }
    started = time.monotonic()
    run_id = airflow.trigger("feldera_migration", conf)
    start = "POST /v0/pipelines/killstaging/start"
    wait_for(lambda: start in [f"{r['method']} {r['path']}" for r in control.mutating_requests()], 120)
    ti = next(t for t in airflow.task_instances("feldera_migration", run_id) if t["task_id"] == "restore_staging")
    airflow.kill_task_process(str(ti["id"]))
    state = airflow.wait_run("feldera_migration", run_id, timeout=400)
    control.set_timings(provision_s=0.1)
    mutating = [f"{r['method']} {r['path']}" for r in control.mutating_requests()]
    record(stack, "task process killed (SIGKILL) mid-restore", "feldera_migration", run_id, state, started, 0)
    assert state == "success", airflow.task_logs("feldera_migration", run_id)[-4000:]
    tries = {t["task_id"]: t["try_number"] for t in airflow.task_instances("feldera_migration", run_id)}
    assert tries["restore_staging"] == 2
    # Its retry followed the start the killed try had made: one start, and staging runs the synced state.
    assert mutating.count(start) == 1
    assert feldera.records("killstaging") == 6


def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout:.0f}s")
        time.sleep(0.2)


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
