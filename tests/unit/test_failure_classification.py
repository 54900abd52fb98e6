"""One classification of failures, pinned by a table, and the proof that every path follows it.

For each kind of failure the table says what it is (for a read, and for a request that changes something) and what
a task does about it. The columns are then computed, not assumed:

* ``hook retries``: the hook's backoff retries it;
* ``worker call``: a Feldera call in ``execute`` fails the task with this exception;
* ``worker wait``: a worker-side wait (a poke, a wait before deferring) meets it in a read;
* ``deferred``: a real trigger's ``run()`` meets it in a read; its event crosses JSON (as it crosses the metadata
  DB) and the resumed task's ``execute_complete`` steps decide.

The trigger's session is a stub that raises the error (no server here can produce a TLS failure or every 5xx on
demand); everything else is the provider's own code.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_checkpoint_sync.exceptions import (
    Failure,
    FelderaApiError,
    FelderaConnectionConfigError,
    FelderaConnectionError,
    FelderaWaitError,
    classify,
)
from airflow_checkpoint_sync.hooks.feldera import FelderaHook
from airflow_checkpoint_sync.hooks.feldera_api import BackoffPolicy, FelderaRequest
from airflow_checkpoint_sync.task_support import outcome, task_error, validate_event
from airflow_checkpoint_sync.triggers.checkpoint import CheckpointSyncTrigger
from airflow_checkpoint_sync.triggers.freshness import CheckpointFreshnessTrigger
from airflow_checkpoint_sync.triggers.pipeline import PipelineStatusTrigger

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_checkpoint_sync.triggers.polling import FelderaPollingTrigger

UUID = "0199a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b"
GET = FelderaRequest("GET", "/v0/pipelines/p/checkpoint/sync_status")
POST = FelderaRequest("POST", "/v0/pipelines/p/checkpoint", idempotent=False)
R, F, M, X = Failure.RETRYABLE, Failure.FINAL, Failure.MAYBE_APPLIED, Failure.RESTARTED


def err(status: int, code: str | None = None) -> FelderaApiError:
    return FelderaApiError("m", status=status, error_code=code, request="GET /v0/pipelines/p")


# (name, error, kind for a read, kind for a request that changes something)
TABLE: list[tuple[str, BaseException, Failure, Failure]] = [
    ("connection refused", FelderaConnectionError("refused", sent=False), R, R),
    ("connection reset after sending", FelderaConnectionError("reset", sent=True), R, M),
    ("read timeout", FelderaConnectionError("no response in time", sent=True), R, M),
    ("connect timeout", FelderaConnectionError("timed out connecting", sent=False), R, R),
    ("TLS verification failed", FelderaConnectionError("bad certificate", sent=False, tls=True), F, F),
    ("408 request timeout", err(408), R, R),
    ("429 rate limited", err(429, "TooManyRequests"), R, R),
    ("500 internal error", err(500), R, M),
    ("500 CheckpointFetchError", err(500, "CheckpointFetchError"), R, M),
    ("501 EnterpriseFeature", err(501, "EnterpriseFeature"), F, F),
    ("502 bad gateway", err(502), R, M),
    ("503 PipelineInteractionNotDeployed", err(503, "PipelineInteractionNotDeployed"), R, R),
    ("503 Initializing (standby)", err(503, "Initializing"), R, R),
    ("503 AwaitingApproval", err(503, "AwaitingApproval"), R, R),
    ("503 PipelineInteractionUnreachable", err(503, "PipelineInteractionUnreachable"), R, M),
    ("503 PipelineUnavailable", err(503, "PipelineUnavailable"), R, M),
    ("504 gateway timeout", err(504), R, M),
    ("400 IncarnationUuidMismatch", err(400, "IncarnationUuidMismatch"), X, X),
    ("400 no local checkpoint", err(400, "400"), F, F),
    ("400 InvalidTransition", err(400, "InvalidTransition"), F, F),
    ("400 InvalidActivateStatus", err(400, "InvalidActivateStatus"), F, F),
    ("400 UnsupportedPipelineAction", err(400, "UnsupportedPipelineAction"), F, F),
    ("400 InitialStandbyNotAllowed", err(400, "InitialStandbyNotAllowed"), F, F),
    ("400 IllegalPipelineAction", err(400, "IllegalPipelineAction"), F, F),
    ("409 UpdateRestrictedToStopped", err(409, "UpdateRestrictedToStopped"), F, F),
    ("401 bad key", err(401, "Unauthorized"), F, F),
    ("403 read-only key", err(403, "Forbidden"), F, F),
    ("404 UnknownPipelineName", err(404, "UnknownPipelineName"), F, F),
    ("a wrong connection", FelderaConnectionConfigError("host is empty"), F, F),
]
IDS = [row[0] for row in TABLE]

#: What a task does: final failures are not retried, everything else is left to the task's own retries.
TASK_OUTCOME = {F: AirflowFailException, R: AirflowException, M: AirflowException, X: AirflowException}


def triggers(end_time: float) -> list[FelderaPollingTrigger]:
    common = {"feldera_conn_id": "feldera_default", "pipeline_name": "p", "end_time": end_time, "poll_interval": 0.01}
    return [
        CheckpointSyncTrigger(**common, checkpoint_uuid=UUID, incarnation_uuid=None, echo={"restarts": 0}),
        PipelineStatusTrigger(**common, targets=["Running"]),
        CheckpointFreshnessTrigger(**common, max_age_seconds=60),
    ]


def raised(step: Any) -> type[BaseException] | None:
    try:
        step()
    except BaseException as exc:  # the type is what the table compares
        return type(exc)
    return None


def task_resumes(event: dict[str, Any], trigger: FelderaPollingTrigger) -> None:
    """The first steps of every ``execute_complete``: validate, then the outcome (a restart is the operator's)."""
    checked = validate_event(event, type(trigger))
    if checked["status"] == "restarted":
        raise AirflowException(checked["message"])
    outcome(checked)


@pytest.mark.parametrize(("name", "error", "read", "write"), TABLE, ids=IDS)
def test_classification(name: str, error: BaseException, read: Failure, write: Failure) -> None:
    assert classify(error, idempotent=True) is read
    assert classify(error, idempotent=False) is write


@pytest.mark.parametrize(
    ("ended", "final", "meaning"),
    [("failure", True, F), ("failure", False, R), ("timeout", False, R), ("restarted", False, X)],
)
def test_a_hook_wait_that_ends_badly_means_what_its_rule_said(ended: str, final: bool, meaning: Failure) -> None:
    error = FelderaWaitError("pipeline 'p' ...", outcome=ended, final=final)
    assert classify(error, idempotent=True) is classify(error, idempotent=False) is meaning
    assert type(task_error(error, "waiting", "p")) is TASK_OUTCOME[meaning]
    assert str(error) == "pipeline 'p' ..." and error.status is None


@pytest.mark.parametrize(("name", "error", "read", "write"), TABLE, ids=IDS)
def test_the_hook_retries_exactly_the_retryable(name: str, error: BaseException, read: Failure, write: Failure) -> None:
    if not isinstance(error, FelderaApiError):
        return  # raised before any request is sent
    policy = BackoffPolicy()
    assert (policy.delay(1, error, GET, 0.0) is not None) is (read is R)
    assert (policy.delay(1, error, POST, 0.0) is not None) is (write is R)


@pytest.mark.parametrize(("name", "error", "read", "write"), TABLE, ids=IDS)
def test_worker_call_worker_wait_and_deferred_agree(
    name: str, error: BaseException, read: Failure, write: Failure, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = TASK_OUTCOME[read]
    assert type(task_error(error, "reading", "p")) is expected
    assert type(task_error(error, "taking a checkpoint", "p", idempotent=False)) is TASK_OUTCOME[write]

    class RaisingSession:
        async def run(self, flow: Any) -> Any:
            flow.close()
            raise error

    @asynccontextmanager
    async def session(hook: FelderaHook) -> AsyncIterator[RaisingSession]:
        yield RaisingSession()

    monkeypatch.setattr(FelderaHook, "async_session", session)
    for trigger in triggers(time.time() + 60):
        worker = trigger.decide(None, error, time.time())
        assert worker is not None, trigger
        worker_wait = raised(lambda w=worker, t=trigger: task_resumes({**w, "echo": t.echo}, t))

        async def first_event(t: FelderaPollingTrigger = trigger) -> dict[str, Any]:
            async for event in t.run():
                return dict(event.payload)
            raise AssertionError("no event")

        crossed = json.loads(json.dumps(asyncio.run(first_event())))  # as the event crosses the metadata DB
        deferred = raised(lambda e=crossed, t=trigger: task_resumes(e, t))
        assert worker_wait is deferred is expected, (type(trigger).__name__, worker_wait, deferred)


def test_gone_is_one_reading_of_a_404() -> None:
    from airflow_checkpoint_sync.exceptions import is_not_found

    assert is_not_found(FelderaApiError("no such pipeline", status=404, error_code="UnknownPipelineName"))
    assert not is_not_found(FelderaApiError("read role", status=403, error_code="InsufficientPermissions"))
    assert not is_not_found(FelderaConnectionError("refused", sent=False))
    assert not is_not_found(ValueError("404"))
