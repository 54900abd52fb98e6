"""RestoreDrillOperator against the sandbox and moto: a drill of a good checkpoint passes its checks, reports its
timings and leaves nothing behind; every failure (a failed check, a checkpoint that does not restore, a timeout, a
refusal) is on the record and still tears down; a drill deletes only what it can prove its task instance created
(another drill's scratch pipeline and location, a foreign bucket, anybody's pipeline are never touched); two drills
of one pipeline that overlap both pass; what a killed try left is removed by its retry; a drill killed while
deferred has Airflow's TriggerRunner call its trigger's on_kill, which removes its scratch pipeline and only that one;
the source pipeline and its bucket are never touched."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from airflow_support import asset_event_extras, aws_connection, parsed, run_dag, task_states, xcoms
from stores_support import s3_objects
from support import wait_until

from airflow_checkpoint_sync import metrics
from airflow_checkpoint_sync.rules.drill import (
    MARKER,
    DrillOwner,
    default_scratch_names,
    marker_body,
    scratch_description,
)
from airflow_checkpoint_sync.triggers.kill_cleanup import remove_scratch_pipeline
from airflow_checkpoint_sync.triggers.pipeline import PipelineStatusTrigger

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from feldera_setup import Feldera

#: When the tests' "same task instance" runs: dag.test() at one logical date is one run id, so a second run at it is
#: a retry of the first's task instance (dag.test() clears and replaces the run).
AT = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
LATER = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)


@pytest.fixture
def feldera(feldera: Feldera, monkeypatch: pytest.MonkeyPatch) -> Feldera:
    """The shared sandbox, the bucket connection, and a running 'prod' with 12 records in one synced checkpoint."""
    monkeypatch.setenv("AIRFLOW_CONN_S3_DR", aws_connection(feldera.s3))
    feldera.running_pipeline("prod")
    feldera.uuid = feldera.sync_now(records=12)  # type: ignore[attr-defined]
    feldera.sandbox.control.clear_requests()
    return feldera


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float, str]]:
    """Every metric the drills send, as (name, value, pipeline): dag.test() runs the task in this process."""
    seen: list[tuple[str, float, str]] = []
    monkeypatch.setattr(
        metrics, "send", lambda kind, name, value, pipeline, tag="pipeline": seen.append((name, value, pipeline))
    )
    return seen


def owner(at: dt.datetime, dag_id: str = "drill_worker") -> DrillOwner:
    """The owner of the drill task of ``dag_id`` run by :func:`run_at` at ``at``."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType

    run_id = DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=at, run_after=at)
    return DrillOwner(dag_id, "drill", -1, run_id)


def owner_of(run: Any) -> DrillOwner:
    return DrillOwner(run.dag_id, "drill", -1, run.run_id)


def run_at(dag_id: str, at: dt.datetime, **conf: Any) -> Any:
    """Run a drill DAG at logical date ``at``: the same task instance on every call (a retry)."""
    return parsed(dag_id).test(run_after=at, logical_date=at, run_conf=conf or None)


def untouched(feldera: Feldera) -> tuple[dict[str, bytes], Any]:
    """What a drill must leave as it was: the source's bucket objects and its pipeline (program and config)."""
    pipeline = feldera.pipeline("prod", selector="all")
    return s3_objects(feldera.s3, feldera.bucket, "prod"), (pipeline["program_code"], pipeline["runtime_config"])


def pipelines(feldera: Feldera) -> set[str]:
    return {p["name"] for p in feldera.http.get("/pipelines").json()}


def assert_nothing_left(feldera: Feldera, scratch: str, prefix: str = "drill/") -> None:
    assert feldera.http.get(f"/pipelines/{scratch}").status_code == 404
    assert feldera.s3.keys(feldera.bucket, prefix) == []
    # Nothing was sent to the source pipeline but reads.
    assert [r for r in feldera.mutating_requests() if "/pipelines/prod/" in r or r.endswith("/pipelines/prod")] == []


def put(feldera: Feldera, key: str, body: bytes = b"x") -> None:
    feldera.s3.client().put_object(Bucket=feldera.bucket, Key=key, Body=body)


def scratch_of(feldera: Feldera, name: str, who: DrillOwner, running: bool = True) -> None:
    """A scratch pipeline of drill ``who`` (created, and running unless told otherwise), as a drill leaves it."""
    feldera.create(name, sync=None)
    assert feldera.http.patch(f"/pipelines/{name}", json={"description": scratch_description("prod", who)}).is_success
    if running:
        feldera.start(name)


def drill_failed(sent: list[tuple[str, float, str]], cause: str) -> None:
    """The failed drill's metrics: the failure counter and its cause's, once each."""
    assert [(n, v) for n, v, p in sent if p == "prod" and n != metrics.DRILL_RECOVERY] == [
        (metrics.DRILL_FAILED, 1),
        (metrics.DRILL_FAILED_BY_CAUSE[cause], 1),
    ]


@pytest.mark.parametrize("mode", ["worker", "deferred"])
def test_a_drill_of_a_good_checkpoint_passes_reports_its_timings_and_leaves_nothing(
    feldera: Feldera, mode: str, sent: list[tuple[str, float, str]]
) -> None:
    uuid = feldera.uuid  # type: ignore[attr-defined]
    location = ""  # the worker drill reads the source's own bucket; the deferred one an S3 replica of it
    if mode == "deferred":
        copy = run_dag(
            "replicate",
            source=f"{feldera.bucket}/prod",
            destination_conn="s3_dr",
            destination=f"{feldera.bucket}/replica",
        )
        assert task_states(copy) == {"replicate": "success"}
        location = f"{feldera.bucket}/replica"
    before = untouched(feldera)
    feldera.sandbox.control.clear_requests()

    run = run_dag(f"drill_{mode}", scratch=f"{feldera.bucket}/drill", location=location)
    assert task_states(run) == {"drill": "success"}
    result = xcoms(run)[("drill", "return_value")]
    assert result["checkpoint_uuid"] == uuid and result["passed"] is True
    assert (result["cause"], result["error"]) == (None, None)
    assert result["location"] == location or f"{feldera.bucket}/prod"
    assert [(c["name"], c["passed"], c["value"]) for c in result["checks"]] == (
        [("all orders are back", True, 12), ("SELECT MAX(id) FROM orders", True, 11)]
        if mode == "worker"
        else [("all orders are back", True, 12), ("min_amount_positive", True, None)]
    )
    assert 0 < result["recovery_seconds"] <= result["validated_seconds"] < 60
    assert 0 <= result["checkpoint_age_seconds"] < 600
    assert asset_event_extras(run)[0]["checkpoint_uuid"] == uuid
    assert (metrics.DRILL_PASSED, 1, "prod") in sent and metrics.DRILL_FAILED not in {n for n, _, _ in sent}
    # The default scratch name is the task instance's own.
    scratch = result["scratch_pipeline_name"]
    assert scratch == default_scratch_names("prod", ("b", "p"), owner_of(run))[0]
    # The scratch pipeline read the location under test: it started from it, with nothing of its own to push.
    starts = [r for r in feldera.mutating_requests() if r == f"POST /v0/pipelines/{scratch}/start"]
    assert len(starts) == 1
    assert untouched(feldera) == before
    assert_nothing_left(feldera, scratch)


def test_the_default_scratch_location_is_the_task_instances_own_and_emptied(feldera: Feldera) -> None:
    run = run_dag("drill_worker", scratch="")
    assert task_states(run) == {"drill": "success"}
    result = xcoms(run)[("drill", "return_value")]
    suffix = owner_of(run).suffix
    assert result["scratch_bucket"] == f"{feldera.bucket}/prod-drill-{suffix}"
    assert result["scratch_pipeline_name"] == f"prod-drill-{suffix}"
    assert f"PUT /v0/pipelines/prod-drill-{suffix}" in feldera.mutating_requests()
    assert_nothing_left(feldera, result["scratch_pipeline_name"], prefix=f"prod-drill-{suffix}/")


def test_a_failed_check_fails_the_drill_and_it_still_tears_down(
    feldera: Feldera, sent: list[tuple[str, float, str]]
) -> None:
    before = untouched(feldera)
    run = run_dag("drill_failing", scratch=f"{feldera.bucket}/drill")
    assert task_states(run) == {"drill": "failed"}
    result = xcoms(run)[("drill", "return_value")]  # the result is recorded even when the drill fails
    assert (result["passed"], result["cause"]) == (False, "checks_failed")
    assert result["checks"][0]["message"] == "SELECT COUNT(*) FROM orders: 12 != expected 999"
    assert "failed 1 of 1 check(s): SELECT COUNT(*) FROM orders: 12 != expected 999" in result["error"]
    assert asset_event_extras(run) == []  # Airflow sends no asset event for a failed task
    drill_failed(sent, "checks_failed")
    assert untouched(feldera) == before
    assert_nothing_left(feldera, result["scratch_pipeline_name"])


def test_a_query_feldera_refuses_is_a_failed_check_not_a_crash(feldera: Feldera) -> None:
    run = run_dag("drill_bad_sql", scratch=f"{feldera.bucket}/drill")
    assert task_states(run) == {"drill": "failed"}
    result = xcoms(run)[("drill", "return_value")]
    check = result["checks"][0]
    assert check["passed"] is False and "AdHocQueryError" in check["message"]
    assert result["cause"] == "checks_failed"
    assert_nothing_left(feldera, result["scratch_pipeline_name"])


@pytest.mark.parametrize("step", ["marker_written", "pipeline_created", "pipeline_running"])
def test_what_a_killed_try_left_is_removed_by_its_retry_and_nothing_of_another_drill(
    feldera: Feldera, step: str
) -> None:
    me, other = owner(AT), owner(LATER)  # the other: a drill of 'prod' in another run, live right now
    mine = default_scratch_names("prod", ("b", "p"), me)[0]
    theirs = default_scratch_names("prod", ("b", "p"), other)[0]
    # What the killed try left, by the step it was killed at; its marker is always first.
    put(feldera, f"drill/{MARKER}", marker_body(me, AT))
    if step != "marker_written":
        scratch_of(feldera, mine, me, running=step == "pipeline_running")
    if step == "pipeline_running":
        put(feldera, "drill/leftover.bin")
    # The other drill's scratch pipeline and location.
    scratch_of(feldera, theirs, other)
    put(feldera, f"theirs/{MARKER}", marker_body(other, LATER))
    put(feldera, "theirs/state.bin")
    theirs_objects = s3_objects(feldera.s3, feldera.bucket, "theirs")
    before = untouched(feldera)
    feldera.sandbox.control.clear_requests()

    run = run_at("drill_worker", AT, scratch=f"{feldera.bucket}/drill")  # the retry
    assert task_states(run) == {"drill": "success"}
    assert xcoms(run)[("drill", "return_value")]["passed"] is True
    assert untouched(feldera) == before
    assert_nothing_left(feldera, mine)
    assert feldera.pipeline(theirs)["deployment_status"] == "Running"
    assert [r for r in feldera.mutating_requests() if theirs in r] == []
    assert s3_objects(feldera.s3, feldera.bucket, "theirs") == theirs_objects


def test_a_pipeline_that_is_not_a_drills_scratch_pipeline_is_never_touched(
    feldera: Feldera, capfd: pytest.CaptureFixture[str], sent: list[tuple[str, float, str]]
) -> None:
    feldera.running_pipeline("prod-drill", sync=None)  # someone's real pipeline, by that name
    feldera.sandbox.control.clear_requests()
    capfd.readouterr()
    run = run_dag("drill_worker", scratch=f"{feldera.bucket}/drill", scratch_pipeline="prod-drill")
    assert task_states(run) == {"drill": "failed"}
    assert "names an existing pipeline that is not a drill's scratch pipeline" in capfd.readouterr().out
    assert feldera.mutating_requests() == []
    assert feldera.pipeline("prod-drill")["deployment_status"] == "Running"
    assert xcoms(run)[("drill", "return_value")]["cause"] == "refused"
    drill_failed(sent, "refused")


def test_another_drills_scratch_pipeline_of_that_name_is_never_touched(
    feldera: Feldera, capfd: pytest.CaptureFixture[str]
) -> None:
    # Two drills given one scratch_pipeline_name: the one already running keeps it.
    scratch_of(feldera, "prod-drill", owner(LATER))
    feldera.sandbox.control.clear_requests()
    capfd.readouterr()
    run = run_at("drill_worker", AT, scratch=f"{feldera.bucket}/drill", scratch_pipeline="prod-drill")
    assert task_states(run) == {"drill": "failed"}
    out = capfd.readouterr().out
    assert (
        f"scratch_pipeline_name='prod-drill' is the scratch pipeline of the drill of task 'drill' of DAG "
        f"'drill_worker', run '{owner(LATER).run_id}', which may be running now"
    ) in out
    assert "Leave scratch_pipeline_name unset" in out
    assert feldera.mutating_requests() == []
    assert feldera.pipeline("prod-drill")["deployment_status"] == "Running"
    assert feldera.s3.keys(feldera.bucket, "drill/") == []  # not even a marker


@pytest.mark.parametrize("whose", ["foreign", "another_drill"])
def test_a_scratch_location_that_is_not_the_drills_own_is_refused_and_nothing_is_deleted(
    feldera: Feldera, capfd: pytest.CaptureFixture[str], sent: list[tuple[str, float, str]], whose: str
) -> None:
    # The adversarial case: a README and another team's sync location one level down (no catalog at the root).
    if whose == "foreign":
        put(feldera, "shared/README", b"team B's bucket: do not delete")
        for key in ("checkpoints.feldera", "u1/a", "u1/b", "u2/a", "u2/b", "u2/c"):
            put(feldera, f"shared/team-b/{key}")
    else:  # another drill's scratch location, in use
        put(feldera, f"shared/{MARKER}", marker_body(owner(LATER), LATER))
        put(feldera, "shared/state.bin")
    objects = s3_objects(feldera.s3, feldera.bucket, "shared")
    before = untouched(feldera)
    capfd.readouterr()

    run = run_at("drill_worker", AT, scratch=f"{feldera.bucket}/shared")
    assert task_states(run) == {"drill": "failed"}
    out = capfd.readouterr().out
    said = (
        "(7 object(s): README, team-b/checkpoints.feldera, team-b/u1/a, team-b/u1/b, team-b/u2/a, ...) and nothing "
        "in it says a drill wrote it"
        if whose == "foreign"
        else f"(2 object(s): {MARKER}, state.bin) and it is the scratch location of the drill of task 'drill'"
    )
    assert f"scratch_bucket='{feldera.bucket}/shared' is not empty {said}" in out
    assert s3_objects(feldera.s3, feldera.bucket, "shared") == objects  # nothing deleted, no marker written
    assert feldera.mutating_requests() == []  # no scratch pipeline created
    assert pipelines(feldera) == {"prod"}
    result = xcoms(run)[("drill", "return_value")]
    assert (result["passed"], result["cause"]) == (False, "refused")
    assert "is not empty" in result["error"]
    drill_failed(sent, "refused")
    assert untouched(feldera) == before


def test_a_checkpoint_that_does_not_restore_fails_the_drill_on_the_record_and_it_still_tears_down(
    feldera: Feldera, capfd: pytest.CaptureFixture[str], sent: list[tuple[str, float, str]]
) -> None:
    # The catalog still names the checkpoint, but its manifest is gone: the scratch pipeline cannot start from it.
    uuid = feldera.uuid  # type: ignore[attr-defined]
    feldera.s3.client().delete_object(Bucket=feldera.bucket, Key=f"prod/dependencies/{uuid}.json")
    before = untouched(feldera)
    capfd.readouterr()
    run = run_dag("drill_worker", scratch=f"{feldera.bucket}/drill")
    assert task_states(run) == {"drill": "failed"}
    scratch = f"prod-drill-{owner_of(run).suffix}"
    out = capfd.readouterr().out
    assert (
        f"restore drill of 'prod' from {uuid} of {feldera.bucket}/prod failed (the checkpoint did not restore; "
        f"scratch pipeline '{scratch}' removed): pipeline '{scratch}' failed to start: the catalog of "
        f"{feldera.bucket}/prod names checkpoint {uuid}, but its files are missing there (Feldera: failed to fetch "
        "checkpoint: "
    ) in out
    assert "The location is damaged: verify it" in out
    assert "check the uuid" not in out  # the uuid is the catalog's own: there is nothing to check in it
    result = xcoms(run)[("drill", "return_value")]  # no checks ran, but the failure is recorded
    assert (result["passed"], result["cause"], result["checks"]) == (False, "restore_failed", [])
    assert (result["checkpoint_uuid"], result["scratch_pipeline_name"]) == (uuid, scratch)
    assert "files are missing" in result["error"]
    drill_failed(sent, "restore_failed")
    assert asset_event_extras(run) == []
    assert feldera.mutating_requests().count(f"POST /v0/pipelines/{scratch}/start") == 1
    assert untouched(feldera) == before
    assert_nothing_left(feldera, scratch)


def test_a_scratch_pipeline_that_does_not_run_in_time_is_a_timeout_on_the_record(
    feldera: Feldera, capfd: pytest.CaptureFixture[str], sent: list[tuple[str, float, str]]
) -> None:
    feldera.sandbox.control.set_timings(provision_s=30)
    capfd.readouterr()
    run = run_at("drill_short_timeout", AT, scratch=f"{feldera.bucket}/drill")
    feldera.sandbox.control.set_timings(provision_s=0.1)
    assert task_states(run) == {"drill": "failed"}
    assert "failed (the scratch pipeline did not reach Running within the timeout;" in capfd.readouterr().out
    result = xcoms(run)[("drill", "return_value")]
    assert (result["passed"], result["cause"]) == (False, "timeout")
    drill_failed(sent, "timeout")
    assert_nothing_left(feldera, result["scratch_pipeline_name"])


DRILL_IN_A_PROCESS = """
import datetime as dt, json, sys
sys.path[:0] = sys.argv[3:]
from airflow_support import parsed, task_states, xcoms
at = dt.datetime.fromisoformat(sys.argv[2])
run = parsed("drill_worker").test(run_after=at, logical_date=at, run_conf={"scratch": sys.argv[1]})
answer = {"states": task_states(run), "result": xcoms(run).get(("drill", "return_value"))}
print("DRILL ANSWER " + json.dumps(answer, default=str))
"""


def drill_in_a_process(scratch: str, at: dt.datetime, out: Path) -> subprocess.Popen[bytes]:
    """A drill run at ``at`` in a process of its own, its output (the logs, then its answer) in file ``out``."""
    tests = Path(__file__).parents[1]
    with out.open("wb") as sink:  # a file, not a pipe: the logs would fill a pipe nobody reads yet
        return subprocess.Popen(
            [sys.executable, "-c", DRILL_IN_A_PROCESS, scratch, at.isoformat(), str(tests), str(tests.parent)],
            env={**os.environ},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def answer_of(out: Path) -> dict[str, Any]:
    """What the drill in a process answered: its task states and its result."""
    lines = [line for line in out.read_text().splitlines() if line.startswith("DRILL ANSWER ")]
    assert lines, out.read_text()[-3000:]
    answer: dict[str, Any] = json.loads(lines[-1].removeprefix("DRILL ANSWER "))
    return answer


def test_a_drill_killed_mid_way_is_cleaned_up_by_its_retry_and_only_its_own(feldera: Feldera, tmp_path: Path) -> None:
    other = owner(LATER)  # another drill of 'prod', live all along
    theirs = default_scratch_names("prod", ("b", "p"), other)[0]
    scratch_of(feldera, theirs, other)
    feldera.sandbox.control.clear_requests()
    mine = default_scratch_names("prod", ("b", "p"), owner(AT))[0]
    before = untouched(feldera)
    feldera.sandbox.control.set_timings(provision_s=5)  # still waiting for Running when it is killed
    process = drill_in_a_process(f"{feldera.bucket}/drill", AT, tmp_path / "killed.log")
    try:
        wait_until(
            lambda: f"POST /v0/pipelines/{mine}/start" in feldera.mutating_requests() or process.poll() is not None,
            bool,
            timeout=120,
        )
        assert process.poll() is None, "the drill ended before it could be killed"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    # The killed try left its scratch pipeline and its marker.
    assert feldera.http.get(f"/pipelines/{mine}").status_code == 200
    assert feldera.s3.keys(feldera.bucket, "drill/") == [f"drill/{MARKER}"]
    feldera.sandbox.control.set_timings(provision_s=0.1)

    run = run_at("drill_worker", AT, scratch=f"{feldera.bucket}/drill")  # the retry: the same task instance
    assert task_states(run) == {"drill": "success"}
    assert xcoms(run)[("drill", "return_value")]["scratch_pipeline_name"] == mine
    assert untouched(feldera) == before
    assert_nothing_left(feldera, mine)
    assert feldera.pipeline(theirs)["deployment_status"] == "Running"
    assert [r for r in feldera.mutating_requests() if theirs in r] == []


def test_two_overlapping_drills_of_one_pipeline_both_pass_and_neither_removes_the_others(
    feldera: Feldera, tmp_path: Path
) -> None:
    before = untouched(feldera)
    first, second = owner(AT), owner(LATER)
    first_name, second_name = (default_scratch_names("prod", ("b", "p"), o)[0] for o in (first, second))
    dag = parsed("drill_worker")  # parsed first: it takes seconds
    # The first drill's scratch pipeline takes 25 s to provision (fixed at its start), the second's no time: the
    # second runs from start to end while the first is still starting.
    feldera.sandbox.control.set_timings(provision_s=25)
    out = tmp_path / "first.log"
    process = drill_in_a_process("", AT, out)  # default names and locations, as a scheduled drill has
    try:
        wait_until(
            lambda: (
                f"POST /v0/pipelines/{first_name}/start" in feldera.mutating_requests() or process.poll() is not None
            ),
            bool,
            timeout=120,
        )
        assert process.poll() is None, "the first drill ended before the second began"
        feldera.sandbox.control.set_timings(provision_s=0.1)
        run = dag.test(run_after=LATER, logical_date=LATER, run_conf={"scratch": ""})
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        feldera.sandbox.control.set_timings(provision_s=0.1)
    assert task_states(run) == {"drill": "success"}
    assert xcoms(run)[("drill", "return_value")]["scratch_pipeline_name"] == second_name
    answer = answer_of(out)
    assert answer["states"] == {"drill": "success"}, answer
    assert answer["result"]["scratch_pipeline_name"] == first_name
    requests = feldera.mutating_requests()
    # They overlapped: the second's scratch pipeline came and went while the first's existed.
    first_made, first_gone = (requests.index(f"{r} /v0/pipelines/{first_name}") for r in ("PUT", "DELETE"))
    second_made, second_gone = (requests.index(f"{r} /v0/pipelines/{second_name}") for r in ("PUT", "DELETE"))
    assert first_made < second_made < second_gone < first_gone
    for name in (first_name, second_name):
        assert requests.count(f"DELETE /v0/pipelines/{name}") == 1  # each deleted once: by its own drill
        assert feldera.http.get(f"/pipelines/{name}").status_code == 404
    for o in (first, second):
        assert feldera.s3.keys(feldera.bucket, f"prod-drill-{o.suffix}/") == []
    assert untouched(feldera) == before


def test_a_scratch_pipeline_that_does_not_compile_ends_the_drill_with_the_compiler_s_words(
    feldera: Feldera, capfd: pytest.CaptureFixture[str]
) -> None:
    # The source's program was changed (stopped, edited) into one that does not compile: the scratch copy of it
    # stops at SqlError, and the drill ends there, not at its deadline.
    feldera.http.post("/pipelines/prod/stop", params={"force": "true"})
    wait_until(lambda: feldera.pipeline("prod"), lambda p: p["deployment_status"] == "Stopped")
    edited = feldera.http.patch("/pipelines/prod", json={"program_code": "SELECT broken FROM nowhere"})
    assert edited.status_code == 200, edited.text
    feldera.sandbox.control.clear_requests()
    capfd.readouterr()
    run = run_dag("drill_worker", scratch=f"{feldera.bucket}/drill")
    assert task_states(run) == {"drill": "failed"}
    scratch = f"prod-drill-{owner_of(run).suffix}"
    out = capfd.readouterr().out
    assert f"pipeline '{scratch}' failed to compile (SqlError): Error parsing SQL at line 1: " in out
    assert "at the deadline" not in out
    assert feldera.mutating_requests().count(f"POST /v0/pipelines/{scratch}/start") == 0
    assert_nothing_left(feldera, scratch)


class KilledByUser(Exception):
    """Ends dag.test()'s inline trigger run as a user's kill ends a deferral: the task never resumes."""


@contextlib.contextmanager
def killed_while_deferred(before_kill: Callable[[Any], None]) -> Iterator[list[Any]]:
    """dag.test()'s inline triggerer replaced by Airflow's own TriggerRunner, which runs the deferred drill's trigger
    (rebuilt from its serialized kwargs, as a triggerer builds it) until a user kills the task: ``before_kill`` runs
    while the trigger polls, then the kill cancels it as a mark-failed or clear does, and Airflow calls its on_kill.
    Yields the triggers so run. (tests/e2e kills one in a real triggerer, through the REST API.)"""
    import airflow.sdk.definitions.dag as dag_module
    from airflow.jobs.triggerer_job_runner import TriggerRunner

    ran: list[Any] = []

    async def run_then_kill(trigger: Any) -> None:
        runner = TriggerRunner()
        task = asyncio.create_task(runner.run_trigger(1, trigger))
        runner.triggers[1] = {"task": task, "name": "drill trigger", "events": 0, "is_watcher": False}
        await asyncio.sleep(1.0)
        assert not task.done(), "the trigger fired before the kill"
        before_kill(trigger)
        # The kill, then again every loop until the trigger's task ends, as Airflow 3.3.2's triggerer cancels it
        # (while on_kill runs too); and the triggerer's event loop runs on, with whatever is still under way in it.
        while not task.done():
            runner.to_cancel.append(1)
            await runner.cancel_triggers()
            await asyncio.sleep(0.5)
        with pytest.raises(asyncio.CancelledError):
            await task
        deadline = time.monotonic() + 30
        while len(asyncio.all_tasks()) > 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    def run_inline(trigger: Any, ti: Any) -> Any:
        ran.append(trigger)
        asyncio.run(run_then_kill(trigger))
        raise KilledByUser

    original = dag_module._run_inline_trigger
    dag_module._run_inline_trigger = run_inline
    try:
        yield ran
    finally:
        dag_module._run_inline_trigger = original


def remove(feldera: Feldera, name: str) -> None:
    """Stop, clear and delete a pipeline, as a person would."""
    feldera.http.post(f"/pipelines/{name}/stop", params={"force": "true"})
    wait_until(lambda: feldera.pipeline(name), lambda p: p["deployment_status"] == "Stopped")
    feldera.http.post(f"/pipelines/{name}/clear")
    wait_until(lambda: feldera.pipeline(name), lambda p: p["storage_status"] == "Cleared")
    assert feldera.http.delete(f"/pipelines/{name}").is_success


def test_a_drill_killed_while_deferred_removes_its_scratch_pipeline_in_the_triggerer_and_nothing_else(
    feldera: Feldera, capfd: pytest.CaptureFixture[str]
) -> None:
    scratch = default_scratch_names("prod", ("b", "p"), owner(AT, "drill_deferred"))[0]
    before = untouched(feldera)
    at_kill: dict[str, Any] = {}

    def snapshot(trigger: Any) -> None:
        at_kill.update(feldera.pipeline(scratch))
        feldera.sandbox.control.clear_requests()

    # Still initializing (its storage in use) when the user kills the task; stopping and clearing take a while.
    feldera.sandbox.control.set_timings(initialize_s=30, stop_s=1, clear_s=1)
    capfd.readouterr()
    with killed_while_deferred(snapshot) as ran:
        run = run_at("drill_deferred", AT, scratch=f"{feldera.bucket}/drill")
    feldera.sandbox.control.set_timings(initialize_s=0.1, stop_s=0.1, clear_s=0.05)
    assert task_states(run) == {"drill": "failed"}
    # The trigger the drill deferred with, after the metadata database's serde, carries the cleanup.
    (trigger,) = ran
    _, kwargs = trigger.serialize()
    assert kwargs["pipeline_name"] == scratch
    cleanup = kwargs["on_kill_cleanup"]
    assert (cleanup["action"], cleanup["pipeline_name"]) == ("remove_scratch_pipeline", scratch)
    assert cleanup["owner"] == owner(AT, "drill_deferred").as_dict() and cleanup["pipeline_id"]
    assert (at_kill["deployment_status"], at_kill["storage_status"]) == ("Initializing", "InUse")
    # on_kill stopped the scratch pipeline, waited, cleared its storage, waited, deleted it, and sent nothing else.
    path = f"/v0/pipelines/{scratch}"
    assert feldera.mutating_requests() == [f"POST {path}/stop", f"POST {path}/clear", f"DELETE {path}"]
    assert pipelines(feldera) == {"prod"}
    assert feldera.pipeline("prod")["deployment_status"] == "Running"
    assert untouched(feldera) == before
    assert f"Task killed: scratch pipeline '{scratch}' stopped and deleted" in capfd.readouterr().out
    # The scratch location is not the trigger's to empty: the task instance's next try does that.
    assert feldera.s3.keys(feldera.bucket, "drill/") == [f"drill/{MARKER}"]
    retry = run_at("drill_deferred", AT, scratch=f"{feldera.bucket}/drill")
    assert task_states(retry) == {"drill": "success"}
    assert_nothing_left(feldera, scratch)


@pytest.mark.parametrize("whose", ["another_drill", "a_later_try"])
def test_a_killed_deferred_drill_leaves_a_scratch_pipeline_that_is_not_the_one_it_created_alone(
    feldera: Feldera, capfd: pytest.CaptureFixture[str], whose: str
) -> None:
    me = owner(AT, "drill_deferred")
    scratch = default_scratch_names("prod", ("b", "p"), me)[0]
    # Between the deferral and the kill, the pipeline of that name became another one: another drill's (a drill
    # given this scratch_pipeline_name), or this task instance's own made by a later try.
    replacement = owner(LATER, "drill_deferred") if whose == "another_drill" else me

    def replace(trigger: Any) -> None:
        remove(feldera, scratch)
        feldera.sandbox.control.set_timings(provision_s=0.1)
        scratch_of(feldera, scratch, replacement)
        feldera.sandbox.control.clear_requests()

    before = untouched(feldera)
    feldera.sandbox.control.set_timings(provision_s=30)
    capfd.readouterr()
    with killed_while_deferred(replace):
        run = run_at("drill_deferred", AT, scratch=f"{feldera.bucket}/drill")
    feldera.sandbox.control.set_timings(provision_s=0.1)
    assert task_states(run) == {"drill": "failed"}
    assert feldera.mutating_requests() == []
    assert feldera.pipeline(scratch)["deployment_status"] == "Running"
    assert feldera.pipeline("prod")["deployment_status"] == "Running"
    assert untouched(feldera) == before
    out = capfd.readouterr().out
    said = f"its owner: {replacement}" if whose == "another_drill" else "a later try of this task instance made it"
    assert f"Task killed: scratch pipeline '{scratch}' left alone: " in out and said in out


def test_a_retry_that_meets_its_killed_tries_trigger_removing_the_scratch_pipeline_goes_on(
    feldera: Feldera, capfd: pytest.CaptureFixture[str]
) -> None:
    # A deferred drill cleared by a user: its trigger's on_kill removes the scratch pipeline while the retry, started
    # at once, finds that pipeline (its own task instance's) and removes it too. Each step of one may meet the
    # other's (a clear already under way, a pipeline already deleted): the retry must go on, whichever comes first.
    me = owner(AT)
    mine = default_scratch_names("prod", ("b", "p"), me)[0]
    scratch_of(feldera, mine, me)
    put(feldera, f"drill/{MARKER}", marker_body(me, AT))
    killed = PipelineStatusTrigger(
        feldera_conn_id="feldera_default",
        pipeline_name=mine,
        targets=["Running"],
        end_time=time.time() + 60,
        poll_interval=0.2,
        on_kill_cleanup=remove_scratch_pipeline(mine, me, feldera.pipeline(mine)["id"]),
    )
    dag = parsed("drill_worker")  # parsed first: it takes seconds
    before = untouched(feldera)
    feldera.sandbox.control.set_timings(stop_s=3, clear_s=3)
    on_kill = threading.Thread(target=lambda: asyncio.run(killed.on_kill()))
    on_kill.start()
    try:
        run = dag.test(run_after=AT, logical_date=AT, run_conf={"scratch": f"{feldera.bucket}/drill"})
    finally:
        on_kill.join(timeout=60)
    assert task_states(run) == {"drill": "success"}, capfd.readouterr().out[-3000:]
    assert untouched(feldera) == before
    assert_nothing_left(feldera, mine)
