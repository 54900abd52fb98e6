"""RestoreDrillOperator against the sandbox and moto: a drill of a good checkpoint passes its checks, reports its
timings and leaves nothing behind; a failing check fails it and it still tears down; a scratch pipeline left by a
killed try is removed by the retry; the source pipeline and its bucket are never touched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from airflow_support import asset_event_extras, aws_connection, run_dag, task_states, xcoms
from stores_support import s3_objects
from support import wait_until

from airflow_checkpoint_sync.drill import scratch_description

if TYPE_CHECKING:
    from feldera_setup import Feldera


@pytest.fixture
def feldera(feldera: Feldera, monkeypatch: pytest.MonkeyPatch) -> Feldera:
    """The shared sandbox, the bucket connection, and a running 'prod' with 12 records in one synced checkpoint."""
    monkeypatch.setenv("AIRFLOW_CONN_S3_DR", aws_connection(feldera.s3))
    feldera.running_pipeline("prod")
    feldera.uuid = feldera.sync_now(records=12)  # type: ignore[attr-defined]
    feldera.sandbox.control.clear_requests()
    return feldera


def untouched(feldera: Feldera) -> tuple[dict[str, bytes], Any]:
    """What a drill must leave as it was: the source's bucket objects and its pipeline (program and config)."""
    pipeline = feldera.pipeline("prod", selector="all")
    return s3_objects(feldera.s3, feldera.bucket, "prod"), (pipeline["program_code"], pipeline["runtime_config"])


def assert_nothing_left(feldera: Feldera, scratch: str = "prod-drill") -> None:
    assert feldera.http.get(f"/pipelines/{scratch}").status_code == 404
    assert feldera.s3.keys(feldera.bucket, "drill/") == []
    # Nothing was sent to the source pipeline but reads.
    assert [r for r in feldera.mutating_requests() if "/pipelines/prod/" in r or r.endswith("/pipelines/prod")] == []


@pytest.mark.parametrize("mode", ["worker", "deferred"])
def test_a_drill_of_a_good_checkpoint_passes_reports_its_timings_and_leaves_nothing(
    feldera: Feldera, mode: str
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
    assert result["location"] == location or f"{feldera.bucket}/prod"
    assert [(c["name"], c["passed"], c["value"]) for c in result["checks"]] == (
        [("all orders are back", True, 12), ("SELECT MAX(id) FROM orders", True, 11)]
        if mode == "worker"
        else [("all orders are back", True, 12), ("min_amount_positive", True, None)]
    )
    assert 0 < result["recovery_seconds"] <= result["validated_seconds"] < 60
    assert 0 <= result["checkpoint_age_seconds"] < 600
    assert asset_event_extras(run)[0]["checkpoint_uuid"] == uuid
    # The scratch pipeline read the location under test: it started from it, with nothing of its own to push.
    starts = [r for r in feldera.mutating_requests() if r == "POST /v0/pipelines/prod-drill/start"]
    assert len(starts) == 1
    assert untouched(feldera) == before
    assert_nothing_left(feldera)


def test_a_failed_check_fails_the_drill_and_it_still_tears_down(feldera: Feldera) -> None:
    before = untouched(feldera)
    run = run_dag("drill_failing", scratch=f"{feldera.bucket}/drill")
    assert task_states(run) == {"drill": "failed"}
    result = xcoms(run)[("drill", "return_value")]  # the result is recorded even when the drill fails
    assert result["passed"] is False
    assert result["checks"][0]["message"] == "SELECT COUNT(*) FROM orders: 12 != expected 999"
    assert untouched(feldera) == before
    assert_nothing_left(feldera)


def test_a_query_feldera_refuses_is_a_failed_check_not_a_crash(feldera: Feldera) -> None:
    run = run_dag("drill_bad_sql", scratch=f"{feldera.bucket}/drill")
    assert task_states(run) == {"drill": "failed"}
    check = xcoms(run)[("drill", "return_value")]["checks"][0]
    assert check["passed"] is False and "AdHocQueryError" in check["message"]
    assert_nothing_left(feldera)


def test_a_scratch_pipeline_left_by_a_killed_try_is_removed_by_the_retry(feldera: Feldera) -> None:
    # What a SIGKILLed try leaves: its scratch pipeline created and running, objects in the scratch location.
    feldera.create("prod-drill", sync=None)
    feldera.http.patch("/pipelines/prod-drill", json={"description": scratch_description("prod")})
    feldera.start("prod-drill")
    feldera.s3.client().put_object(Bucket=feldera.bucket, Key="drill/leftover.bin", Body=b"x")
    before = untouched(feldera)

    run = run_dag("drill_worker", scratch=f"{feldera.bucket}/drill")
    assert task_states(run) == {"drill": "success"}
    assert xcoms(run)[("drill", "return_value")]["passed"] is True
    assert untouched(feldera) == before
    assert_nothing_left(feldera)


def test_a_pipeline_that_is_not_a_drills_scratch_pipeline_is_never_touched(
    feldera: Feldera, capfd: pytest.CaptureFixture[str]
) -> None:
    feldera.running_pipeline("prod-drill", sync=None)  # someone's real pipeline, by that name
    feldera.sandbox.control.clear_requests()
    capfd.readouterr()
    run = run_dag("drill_worker", scratch=f"{feldera.bucket}/drill")
    assert task_states(run) == {"drill": "failed"}
    assert "names an existing pipeline that is not a drill's scratch pipeline" in capfd.readouterr().out
    assert feldera.mutating_requests() == []
    assert feldera.pipeline("prod-drill")["deployment_status"] == "Running"


def test_a_checkpoint_that_does_not_restore_fails_the_drill_and_it_still_tears_down(
    feldera: Feldera, capfd: pytest.CaptureFixture[str]
) -> None:
    # The catalog still names the checkpoint, but its manifest is gone: the scratch pipeline cannot start from it.
    uuid = feldera.uuid  # type: ignore[attr-defined]
    feldera.s3.client().delete_object(Bucket=feldera.bucket, Key=f"prod/dependencies/{uuid}.json")
    before = untouched(feldera)
    capfd.readouterr()
    run = run_dag("drill_worker", scratch=f"{feldera.bucket}/drill")
    assert task_states(run) == {"drill": "failed"}
    assert (
        f"restore drill of 'prod' from {uuid} of {feldera.bucket}/prod failed (scratch pipeline 'prod-drill' removed): "
        "pipeline 'prod-drill' failed to start: failed to fetch checkpoint"
    ) in capfd.readouterr().out
    assert ("drill", "return_value") not in xcoms(run)  # no result: it never ran its checks
    assert feldera.mutating_requests().count("POST /v0/pipelines/prod-drill/start") == 1
    assert untouched(feldera) == before
    assert_nothing_left(feldera)


DRILL_IN_A_PROCESS = """
import sys
sys.path[:0] = sys.argv[2:]
from airflow_support import run_dag
run_dag("drill_worker", scratch=sys.argv[1])
"""


def test_a_drill_killed_mid_way_leaves_no_scratch_pipeline_after_its_retry(feldera: Feldera) -> None:
    tests = Path(__file__).parents[1]
    before = untouched(feldera)
    feldera.sandbox.control.set_timings(provision_s=5)  # still waiting for Running when it is killed
    process = subprocess.Popen(
        [sys.executable, "-c", DRILL_IN_A_PROCESS, f"{feldera.bucket}/drill", str(tests), str(tests.parent)],
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: "POST /v0/pipelines/prod-drill/start" in feldera.mutating_requests() or process.poll() is not None,
            bool,
            timeout=120,
        )
        assert process.poll() is None, "the drill ended before it could be killed"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert feldera.http.get("/pipelines/prod-drill").status_code == 200  # the killed try left its scratch pipeline
    feldera.sandbox.control.set_timings(provision_s=0.1)

    run = run_dag("drill_worker", scratch=f"{feldera.bucket}/drill")  # the retry
    assert task_states(run) == {"drill": "success"}
    assert untouched(feldera) == before
    assert_nothing_left(feldera)
