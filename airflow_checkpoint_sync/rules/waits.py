"""Pure rules that end waits: given one read, is the wait done, failed, or still going? No I/O, no Airflow
(:func:`look` runs a read it is given, and decides on it).

Each rule returns an *event* (a plain dict) or None to keep waiting. The same rule decides in the triggerer, in a
sensor's poke and in a worker-side wait, so the three can never disagree. Every event has ``status``,
``pipeline_name`` and ``message``; an event that is not a success also says whether it is ``final`` (a task retry
would meet the same answer) or worth the task's own retries.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_checkpoint_sync.exceptions import Failure, classify
from airflow_checkpoint_sync.rules.status import (
    COMPILE_FAILURES,
    Freshness,
    PipelineGroup,
    RequestState,
    SyncResult,
    checkpoint_result,
    deployment_error_message,
    freshness,
    pipeline_group,
    program_error_message,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

Event = dict[str, Any]
T = TypeVar("T")

#: The statuses each kind of wait ends with; anything else coming back from a trigger is refused.
SYNC_STATUSES = frozenset({"success", "failure", "timeout", "error", "restarted"})
PIPELINE_STATUSES = frozenset({"success", "failure", "timeout", "error"})
FRESHNESS_STATUSES = frozenset({"fresh", "stale", "none", "error"})


def ended(status: str, pipeline_name: str, message: str, *, final: bool = False, **fields: Any) -> Event:
    """An event that ends a wait."""
    return {"status": status, "pipeline_name": pipeline_name, "message": message, "final": final, **fields}


def read_failed(pipeline_name: str, what: str, error: BaseException, **fields: Any) -> Event:
    """The event for a read that failed after the hook's own retries: final unless trying later may help."""
    final = classify(error) is Failure.FINAL
    return ended("error", pipeline_name, f"could not read {what}: {error}", final=final, **fields)


def look(read: Callable[[], T], rule: Callable[[T | None, BaseException | None, float], Event | None]) -> Event | None:
    """One look: ``read``, then let ``rule`` decide on its result or on the exception it raised."""
    result, error = None, None
    try:
        result = read()
    except Exception as exc:  # the rule decides what a failed read means
        error = exc
    return rule(result, error, time.time())


def sync_wait(
    *,
    pipeline_name: str,
    checkpoint_uuid: str,
    incarnation_uuid: str | None,
    result: SyncResult | None,
    error: BaseException | None,
    end_time: float,
    now: float,
    unknown_grace_until: float | None = None,
) -> Event | None:
    """The end of a wait for the sync of ``checkpoint_uuid``, from one read of its progress (or its ``error``).

    A restart of the pipeline process is its own outcome (``restarted``): the sync status of the old process is
    gone, so waiting on would never end. A failed push is worth a task retry, which takes a fresh checkpoint. A
    uuid Feldera neither syncs nor has in the bucket is, from ``unknown_grace_until`` on, a final failure: nobody
    is going to sync it (a uuid of another pipeline, a typo, a sync lost with a restart).
    """
    ids: dict[str, Any] = {"checkpoint_uuid": checkpoint_uuid, "incarnation_uuid": incarnation_uuid}
    if error is not None:
        if classify(error) is Failure.RESTARTED:
            message = (
                f"pipeline '{pipeline_name}' restarted while checkpoint {checkpoint_uuid} was syncing; the sync "
                "status of the old process is gone"
            )
            return ended("restarted", pipeline_name, message, **ids)
        return read_failed(pipeline_name, "the sync status", error, **ids)
    assert result is not None
    if result.state is RequestState.SUCCESS:
        return ended("success", pipeline_name, f"checkpoint {checkpoint_uuid} synced ({result.evidence})", **ids)
    if result.state is RequestState.FAILURE:
        message = f"Feldera failed to sync checkpoint {checkpoint_uuid}: {result.error}"
        return ended("failure", pipeline_name, message, error=result.error, **ids)
    if result.state is RequestState.UNKNOWN and unknown_grace_until is not None and now >= unknown_grace_until:
        message = (
            f"pipeline '{pipeline_name}' is not syncing checkpoint {checkpoint_uuid} and its bucket does not list it: "
            "Feldera does not know this uuid (another pipeline's, or a sync lost when the pipeline restarted)"
        )
        return ended("failure", pipeline_name, message, final=True, **ids)
    if now >= end_time:
        state = (
            "still in progress" if result.state is RequestState.IN_PROGRESS else "unknown (not listed in the bucket)"
        )
        message = f"checkpoint {checkpoint_uuid} of pipeline '{pipeline_name}' was {state} at the deadline"
        return ended("timeout", pipeline_name, message, **ids)
    return None


def checkpoint_wait(
    *,
    pipeline_name: str,
    sequence_number: int,
    payload: Mapping[str, Any] | None,
    error: BaseException | None,
    end_time: float,
    now: float,
) -> Event | None:
    """The end of a wait for checkpoint ``sequence_number`` (``GET /checkpoint_status``) to complete.

    A checkpoint superseded by a later one counts as done: the sync that follows pushes the newest.
    """
    if error is not None:
        if classify(error) is Failure.RESTARTED:
            message = f"pipeline '{pipeline_name}' restarted while checkpoint {sequence_number} was being made"
            return ended("restarted", pipeline_name, message)
        return read_failed(pipeline_name, f"the status of checkpoint {sequence_number}", error)
    assert payload is not None
    result = checkpoint_result(sequence_number, payload)
    if result.state is RequestState.SUCCESS:
        return ended("success", pipeline_name, f"checkpoint {sequence_number} of pipeline '{pipeline_name}' is made")
    if result.state is RequestState.UNKNOWN:
        message = f"a later checkpoint superseded {sequence_number}; the newest one will be synced"
        return ended("success", pipeline_name, message)
    if result.state is RequestState.FAILURE:
        return ended("failure", pipeline_name, f"Feldera failed to make checkpoint {sequence_number}: {result.error}")
    if now >= end_time:
        message = f"checkpoint {sequence_number} of pipeline '{pipeline_name}' was not made in time"
        return ended("timeout", pipeline_name, message)
    return None


def new_checkpoint_wait(
    *,
    pipeline_name: str,
    baseline: str | None,
    newest: str | None,
    error: BaseException | None,
    end_time: float,
    now: float,
) -> Event | None:
    """After a checkpoint request whose answer was lost: has a checkpoint newer than ``baseline`` appeared?

    The request is never sent again blindly; if nothing appears by ``end_time`` the task's retries decide.
    """
    if error is not None:
        return read_failed(pipeline_name, "the local checkpoints", error)
    if newest is not None and newest != baseline:
        return ended("success", pipeline_name, f"checkpoint {newest} appeared; using it", checkpoint_uuid=newest)
    if now >= end_time:
        message = (
            f"the checkpoint request to pipeline '{pipeline_name}' got no answer and no new checkpoint appeared; "
            "not re-sending it blindly"
        )
        return ended("timeout", pipeline_name, message)
    return None


def other_pushes_wait(
    *,
    pipeline_name: str,
    mine: str | None,
    others: Sequence[str],
    status: Mapping[str, Any] | None,
    error: BaseException | None,
    end_time: float,
    now: float,
) -> Event | None:
    """Before pushing ``mine``: have the pushes ``others`` (another run's, under way on this pipeline) ended?

    Pushes of one pipeline are serialized so that each run's outcome is its own push's and two runs never write
    one location at once. A push of ``mine`` itself needs no wait: Feldera joins a repeated request to it. A
    status this server does not give (``running`` absent) or cannot be read ends the wait: it is only a courtesy
    to the other run, and the push then goes ahead as it would have.
    """
    if error is not None:
        return ended("success", pipeline_name, f"could not see the pushes under way ({error}); pushing {mine} now")
    running = (status or {}).get("running")
    still = sorted(set(others) & set(running)) if isinstance(running, list) else []
    if not still:
        return ended("success", pipeline_name, f"the other push has ended; pushing {mine}")
    if now >= end_time:
        message = (
            f"pipeline '{pipeline_name}' was still pushing {', '.join(still)} (started by another run) when the "
            f"timeout ended; checkpoint {mine} was not pushed"
        )
        return ended("timeout", pipeline_name, message)
    return None


def pipeline_wait(
    *,
    pipeline_name: str,
    pipeline: Mapping[str, Any] | None,
    error: BaseException | None,
    targets: Sequence[str],
    end_time: float,
    now: float,
    field: str = "deployment_status",
) -> Event | None:
    """The end of a wait for ``pipeline[field]`` to be one of ``targets`` (by default its deployment status).

    A wait for a deployment status fails at once, with Feldera's words and what to do, on a deployment error, on
    AwaitingApproval (unless that is a target), on a standby start that skipped Standby, and on a pipeline someone
    stopped meanwhile. Only the failures a human must act on are final.
    """
    where: dict[str, Any] = {"targets": list(targets)}
    if error is not None:
        return read_failed(pipeline_name, f"pipeline '{pipeline_name}'", error, **where)
    assert pipeline is not None
    value = str(pipeline.get(field))
    where["deployment_status"] = str(pipeline.get("deployment_status"))
    if value in targets:
        return ended("success", pipeline_name, f"pipeline '{pipeline_name}' is {value}", **where)
    if field == "deployment_status":
        stuck = _deployment_failure(pipeline_name, pipeline, targets)
        if stuck is not None:
            message, final = stuck
            return ended("failure", pipeline_name, message, final=final, **where)
    if field == "program_status" and value in COMPILE_FAILURES:
        said = program_error_message(pipeline) or "its program_error says why"
        message = f"pipeline '{pipeline_name}' failed to compile ({value}): {said}"
        return ended("failure", pipeline_name, message, final=True, **where)
    if now >= end_time:
        message = f"pipeline '{pipeline_name}' was {value}, not {' or '.join(targets)}, at the deadline"
        return ended("timeout", pipeline_name, message, **where)
    return None


def _deployment_failure(
    pipeline_name: str, pipeline: Mapping[str, Any], targets: Sequence[str]
) -> tuple[str, bool] | None:
    status = str(pipeline.get("deployment_status"))
    group = pipeline_group(pipeline)
    if group is PipelineGroup.FAILED:
        reason = deployment_error_message(pipeline) or "no error text"
        hint = ""
        if "not found in source" in reason:
            hint = " The checkpoint is in neither bucket nor read_bucket: check the uuid and both locations."
        return f"pipeline '{pipeline_name}' failed to start: {reason}.{hint}", False
    if group is PipelineGroup.AWAITING_APPROVAL:
        return (
            f"pipeline '{pipeline_name}' is AwaitingApproval: its program changed since the checkpoint was made, and "
            "Feldera waits for someone to approve the bootstrap (POST /approve, or start with bootstrap_policy=allow)",
            True,
        )
    if "Standby" in targets and group in (PipelineGroup.PAUSED, PipelineGroup.RUNNING):
        return (
            f"pipeline '{pipeline_name}' skipped Standby and is {status}: its storage was activated before (standby "
            "is allowed once per storage lifetime). Restore with clear_storage=True to start a fresh standby.",
            True,
        )
    if group is PipelineGroup.STOPPED and pipeline.get("deployment_desired_status") == "Stopped":
        return f"pipeline '{pipeline_name}' was stopped while waiting", True
    return None


def freshness_wait(
    *,
    pipeline_name: str,
    newest: str | None,
    error: BaseException | None,
    max_age_seconds: float,
    end_time: float,
    now: float,
) -> Event | None:
    """The end of a wait for a synced checkpoint younger than ``max_age_seconds``.

    ``newest`` is the newest synced checkpoint (None when nothing is synced). A stale or missing checkpoint ends
    the wait only at ``end_time`` (a sync may be on its way), and then for good: the objective was missed.
    """
    if error is not None:
        return read_failed(pipeline_name, f"the newest synced checkpoint of '{pipeline_name}'", error)
    report = freshness(pipeline_name, newest, max_age_seconds, dt.datetime.fromtimestamp(now, dt.UTC))
    if report.state is Freshness.FRESH or now >= end_time:
        return ended(str(report.state), pipeline_name, report.message, final=True, measurement=report.as_dict())
    return None
