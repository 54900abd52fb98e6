"""Waiting for a pipeline to reach a status (after a restore or an activation), and the rule that ends the wait."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_checkpoint_sync.status import PipelineGroup, deployment_error_message, pipeline_group
from airflow_checkpoint_sync.triggers.polling import FelderaPollingTrigger

if TYPE_CHECKING:
    from airflow_checkpoint_sync.hooks.feldera import FelderaAsyncSession

PIPELINE_EVENT_STATUSES = frozenset({"success", "failure", "timeout", "error"})


def pipeline_wait_event(
    *,
    pipeline_name: str,
    pipeline: Mapping[str, Any] | None,
    error: Exception | None,
    targets: Sequence[str],
    end_time: float,
    now: float,
) -> dict[str, Any] | None:
    """The event that ends a wait for ``pipeline`` to reach one of ``targets``, or None to keep waiting.

    Fails at once, with Feldera's words and what to do, on a deployment error, on AwaitingApproval (unless that
    is a target), on a standby start that skipped Standby, and on a pipeline someone stopped meanwhile.
    """
    base: dict[str, Any] = {"pipeline_name": pipeline_name, "targets": list(targets)}
    if error is not None:
        status = getattr(error, "status", None)
        return {
            **base,
            "status": "error",
            "message": f"could not read pipeline '{pipeline_name}': {error}",
            "transient": status is None or status >= 500,
        }
    assert pipeline is not None
    status = str(pipeline.get("deployment_status"))
    base["deployment_status"] = status
    if status in targets:
        return {**base, "status": "success", "message": f"pipeline '{pipeline_name}' is {status}"}
    group = pipeline_group(pipeline)
    if group is PipelineGroup.FAILED:
        reason = deployment_error_message(pipeline) or "no error text"
        hint = ""
        if "not found in source" in reason:
            hint = " The checkpoint is in neither bucket nor read_bucket: check the uuid and both locations."
        return {**base, "status": "failure", "message": f"pipeline '{pipeline_name}' failed to start: {reason}.{hint}"}
    if group is PipelineGroup.AWAITING_APPROVAL:
        return {
            **base,
            "status": "failure",
            "message": f"pipeline '{pipeline_name}' is AwaitingApproval: its program changed since the checkpoint was "
            "made, and Feldera waits for someone to approve the bootstrap (POST /approve, or start with "
            "bootstrap_policy=allow)",
        }
    if "Standby" in targets and group in (PipelineGroup.PAUSED, PipelineGroup.RUNNING):
        return {
            **base,
            "status": "failure",
            "message": f"pipeline '{pipeline_name}' skipped Standby and is {status}: its storage was activated before "
            "(standby is allowed once per storage lifetime). Restore with clear_storage=True to start a fresh standby.",
        }
    if group is PipelineGroup.STOPPED and pipeline.get("deployment_desired_status") == "Stopped":
        return {**base, "status": "failure", "message": f"pipeline '{pipeline_name}' was stopped while waiting"}
    if now >= end_time:
        return {
            **base,
            "status": "timeout",
            "message": f"pipeline '{pipeline_name}' was {status}, not {' or '.join(targets)}, at the deadline",
        }
    return None


def validate_pipeline_event(event: Any) -> dict[str, Any]:
    """Accept only well-formed pipeline events; anything else fails closed."""
    if not isinstance(event, Mapping) or event.get("status") not in PIPELINE_EVENT_STATUSES:
        raise ValueError(f"unexpected event from PipelineStatusTrigger: {event!r}")
    if not event.get("pipeline_name"):
        raise ValueError(f"event from PipelineStatusTrigger lacks the pipeline: {event!r}")
    return dict(event)


class PipelineStatusTrigger(FelderaPollingTrigger):
    """Wait in the triggerer until a pipeline reaches one of ``targets``, fails, or the deadline passes.

    :param feldera_conn_id: the ``feldera`` Airflow connection.
    :param pipeline_name: the pipeline.
    :param targets: deployment statuses that end the wait successfully, e.g. ``["Running"]``.
    :param end_time: the deadline, in seconds since the epoch.
    :param poll_interval: seconds between reads.
    """

    def __init__(
        self,
        *,
        feldera_conn_id: str,
        pipeline_name: str,
        targets: Sequence[str],
        end_time: float,
        poll_interval: float,
    ) -> None:
        super().__init__(
            feldera_conn_id=feldera_conn_id, pipeline_name=pipeline_name, end_time=end_time, poll_interval=poll_interval
        )
        self.targets = list(targets)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {**self._kwargs(), "targets": self.targets})

    async def read(self, session: FelderaAsyncSession) -> Any:
        return await session.get_pipeline(self.pipeline_name)

    def decide(self, result: Any, error: Exception | None, now: float) -> dict[str, Any] | None:
        return pipeline_wait_event(
            pipeline_name=self.pipeline_name,
            pipeline=result,
            error=error,
            targets=self.targets,
            end_time=self.end_time,
            now=now,
        )

    def failed_to_start(self, message: str) -> dict[str, Any]:
        return {"status": "error", "pipeline_name": self.pipeline_name, "targets": self.targets, "message": message}
