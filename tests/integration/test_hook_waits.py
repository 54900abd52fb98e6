"""The hook's public waits, as ``@task`` code calls them, against the sandbox: success, failure, timeout, restart."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_checkpoint_sync.exceptions import Failure, FelderaApiError, FelderaWaitError, classify
from airflow_checkpoint_sync.hooks.feldera import FelderaHook
from airflow_checkpoint_sync.hooks.feldera_api import BackoffPolicy
from airflow_checkpoint_sync.rules.status import RequestState

if TYPE_CHECKING:
    from feldera_setup import Feldera

FAST = BackoffPolicy(max_attempts=3, base_delay=0.05, max_delay=1.0, deadline=10)
UUID = "0199a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b"


def hook() -> FelderaHook:
    return FelderaHook(retry_policy=FAST)


def checkpoint_then_sync(feldera: Feldera, name: str = "prod") -> dict[str, Any]:
    feldera.http.post(f"/pipelines/{name}/checkpoint")
    time.sleep(0.3)
    started: dict[str, Any] = feldera.http.post(f"/pipelines/{name}/checkpoint/sync").json()
    return started


# -- wait_for_pipeline_status --------------------------------------------------------------------------------------
def test_a_pipeline_wait_returns_the_reading_that_ended_it(feldera: Feldera) -> None:
    feldera.create("prod")
    with hook() as h:
        h.start_pipeline("prod", "running")
        pipeline = h.wait_for_pipeline_status("prod", "Running", timeout=30, poll_interval=0.1)
        assert pipeline["deployment_status"] == "Running"
        again = h.wait_for_pipeline_status(
            "prod", ["Running", "Paused"], timeout=dt.timedelta(seconds=5), poll_interval=dt.timedelta(seconds=1)
        )
        assert again["deployment_status"] == "Running"  # already there: one read ends it


def test_a_pipeline_wait_on_program_status_fails_at_once_on_a_compile_error(feldera: Feldera) -> None:
    body = {"name": "broken", "program_code": "CREATE TABLE t (x INT); SELECT nonsense;"}
    assert feldera.http.put("/pipelines/broken", json=body).status_code in (200, 201)
    began = time.monotonic()
    with hook() as h, pytest.raises(FelderaWaitError) as failed:
        h.wait_for_pipeline_status("broken", "Success", field="program_status", timeout=60, poll_interval=0.1)
    assert time.monotonic() - began < 20  # the rule ended it, not the timeout
    error = failed.value
    assert (error.outcome, error.final, error.status) == ("failure", True, None)
    assert "failed to compile (SqlError)" in str(error) and "unexpected statement" in str(error)
    assert error.event["status"] == "failure" and error.event["pipeline_name"] == "broken"
    assert classify(error) is Failure.FINAL


def test_a_pipeline_wait_times_out_at_its_deadline(feldera: Feldera) -> None:
    feldera.running_pipeline("prod")
    began = time.monotonic()
    with hook() as h, pytest.raises(FelderaWaitError) as late:
        h.wait_for_pipeline_status("prod", "Paused", timeout=1.0, poll_interval=0.2)
    assert 1.0 <= time.monotonic() - began < 10
    assert late.value.outcome == "timeout" and not late.value.final
    assert str(late.value) == "pipeline 'prod' was Running, not Paused, at the deadline"
    assert classify(late.value) is Failure.RETRYABLE


def test_a_read_that_fails_raises_the_hook_s_own_error(feldera: Feldera) -> None:
    with hook() as h, pytest.raises(FelderaApiError) as missing:
        h.wait_for_pipeline_status("nope", "Running", timeout=5, poll_interval=0.1)
    assert not isinstance(missing.value, FelderaWaitError)
    assert (missing.value.status, missing.value.error_code) == (404, "UnknownPipelineName")


# -- wait_for_checkpoint_sync --------------------------------------------------------------------------------------
def test_a_sync_wait_returns_the_successful_reading(feldera: Feldera) -> None:
    feldera.running_pipeline("prod", records=3)
    feldera.sandbox.control.set_timings(sync_delay_s=1.0)
    started = checkpoint_then_sync(feldera)
    with hook() as h:
        result = h.wait_for_checkpoint_sync(
            "prod", started["checkpoint_uuid"], incarnation_uuid=started["incarnation_uuid"], poll_interval=0.1
        )
    assert result.state is RequestState.SUCCESS and result.evidence
    reads = [r for r in feldera.sandbox.control.requests() if r["path"].endswith("/checkpoint/sync_status")]
    assert len(reads) >= 2  # it polled while the push ran


def test_a_failed_push_raises_with_feldera_s_error(feldera: Feldera) -> None:
    feldera.running_pipeline("prod", records=3)
    feldera.sandbox.control.fail_next_sync("prod", "NoSuchBucket: dr-bucket")
    started = checkpoint_then_sync(feldera)
    with hook() as h, pytest.raises(FelderaWaitError) as failed:
        h.wait_for_checkpoint_sync("prod", started["checkpoint_uuid"], timeout=30, poll_interval=0.1)
    assert failed.value.outcome == "failure" and failed.value.event["error"] == "NoSuchBucket: dr-bucket"
    assert "NoSuchBucket: dr-bucket" in str(failed.value)
    assert classify(failed.value) is Failure.RETRYABLE  # a task retry pushes a fresh checkpoint


def test_a_sync_wait_times_out_at_its_deadline(feldera: Feldera) -> None:
    feldera.running_pipeline("prod", records=3)
    feldera.sandbox.control.set_timings(sync_delay_s=30)
    started = checkpoint_then_sync(feldera)
    began = time.monotonic()
    with hook() as h, pytest.raises(FelderaWaitError) as late:
        h.wait_for_checkpoint_sync("prod", started["checkpoint_uuid"], timeout=1.0, poll_interval=0.2)
    assert time.monotonic() - began < 10
    assert late.value.outcome == "timeout" and "still in progress at the deadline" in str(late.value)


def test_a_restart_ends_a_sync_wait(feldera: Feldera) -> None:
    feldera.running_pipeline("prod", records=3)
    feldera.sandbox.control.set_timings(sync_delay_s=30)
    started = checkpoint_then_sync(feldera)
    feldera.sandbox.control.restart("prod")
    with hook() as h, pytest.raises(FelderaWaitError) as restarted:
        h.wait_for_checkpoint_sync(
            "prod", started["checkpoint_uuid"], incarnation_uuid=started["incarnation_uuid"], poll_interval=0.1
        )
    assert restarted.value.outcome == "restarted"
    assert classify(restarted.value) is Failure.RESTARTED


# -- arguments -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda h: h.wait_for_pipeline_status("prod", "Running", timeout=0), "timeout=0 is not valid"),
        (lambda h: h.wait_for_pipeline_status("prod", "Running", poll_interval=-1), "poll_interval=-1"),
        (lambda h: h.wait_for_pipeline_status("prod", "Running", timeout=True), "timeout=True"),
        (lambda h: h.wait_for_pipeline_status("prod", "Running", timeout=float("inf")), "timeout=inf"),
        (lambda h: h.wait_for_pipeline_status("prod", []), "targets=[] is not valid"),
        (lambda h: h.wait_for_pipeline_status("prod", "Running", field="status"), "field='status'"),
        (lambda h: h.wait_for_pipeline_status("", "Running"), "pipeline_name='' is not valid"),
        (lambda h: h.wait_for_checkpoint_sync("prod", "latest"), "checkpoint_uuid='latest'"),
        (lambda h: h.wait_for_checkpoint_sync("prod", UUID, incarnation_uuid="x"), "incarnation_uuid='x'"),
        (lambda h: h.wait_for_checkpoint_sync("prod", UUID, unknown_grace=0), "unknown_grace=0"),
    ],
)
def test_arguments_are_checked_before_the_first_request(feldera: Feldera, call: Any, words: str) -> None:
    feldera.sandbox.control.clear_requests()
    with hook() as h, pytest.raises(ValueError, match=re.escape(words)):
        call(h)
    assert feldera.sandbox.control.requests() == []
