"""Waiting for a checkpoint sync, for the triggerer; and the event rule the worker-side waits share with it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_checkpoint_sync.status import INCARNATION_MISMATCH, SyncState
from airflow_checkpoint_sync.triggers.polling import FelderaPollingTrigger

if TYPE_CHECKING:
    from airflow_checkpoint_sync.hooks.feldera import FelderaAsyncSession, FelderaHook

EVENT_STATUSES = frozenset({"success", "failure", "timeout", "error", "restarted"})


def sync_wait_event(
    *,
    pipeline_name: str,
    checkpoint_uuid: str,
    incarnation_uuid: str | None,
    progress: Any,
    error: Exception | None,
    end_time: float,
    now: float,
) -> dict[str, Any] | None:
    """The event that ends a wait for a checkpoint sync, or None to keep waiting.

    ``progress`` is a :class:`~airflow_checkpoint_sync.hooks.feldera_api.SyncProgress` (or None when the read
    failed with ``error``). The trigger, the operator's in-worker wait and the sensor's poke all decide with this.
    """
    base = {"pipeline_name": pipeline_name, "checkpoint_uuid": checkpoint_uuid, "incarnation_uuid": incarnation_uuid}
    if error is not None:
        if getattr(error, "error_code", None) == INCARNATION_MISMATCH:
            return {
                **base,
                "status": "restarted",
                "message": f"pipeline '{pipeline_name}' restarted while checkpoint {checkpoint_uuid} was syncing; "
                "the sync status of the old process is gone",
            }
        status = getattr(error, "status", None)
        return {
            **base,
            "status": "error",
            "message": f"could not read the sync status: {error}",
            # No answer, or a server-side failure: worth a task retry. A 4xx answer will not change.
            "transient": status is None or status >= 500,
        }
    result = progress.result
    if result.state is SyncState.SUCCESS:
        return {**base, "status": "success", "message": f"checkpoint {checkpoint_uuid} synced ({result.evidence})"}
    if result.state is SyncState.FAILURE:
        return {
            **base,
            "status": "failure",
            "error": result.error,
            "message": f"Feldera failed to sync checkpoint {checkpoint_uuid}: {result.error}",
        }
    if now >= end_time:
        state = "still in progress" if result.state is SyncState.IN_PROGRESS else "unknown (not listed in the bucket)"
        return {
            **base,
            "status": "timeout",
            "message": f"checkpoint {checkpoint_uuid} of pipeline '{pipeline_name}' was {state} at the deadline",
        }
    return None


def read_sync_event(
    hook: FelderaHook, *, pipeline_name: str, checkpoint_uuid: str, incarnation_uuid: str | None, end_time: float
) -> dict[str, Any] | None:
    """One worker-side look at a sync (the operator's wait, the sensor's poke), decided by :func:`sync_wait_event`."""
    progress, error = None, None
    try:
        progress = hook.sync_progress(pipeline_name, checkpoint_uuid, incarnation_uuid)
    except Exception as exc:  # decided below, like the trigger does
        error = exc
    return sync_wait_event(
        pipeline_name=pipeline_name,
        checkpoint_uuid=checkpoint_uuid,
        incarnation_uuid=incarnation_uuid,
        progress=progress,
        error=error,
        end_time=end_time,
        now=time.time(),
    )


def validate_event(event: Any) -> dict[str, Any]:
    """Accept only well-formed sync events; anything else fails closed (lost payload, version skew)."""
    if not isinstance(event, Mapping) or event.get("status") not in EVENT_STATUSES:
        raise ValueError(f"unexpected event from CheckpointSyncTrigger: {event!r}")
    if not event.get("checkpoint_uuid") or not event.get("pipeline_name"):
        raise ValueError(f"event from CheckpointSyncTrigger lacks the pipeline or checkpoint: {event!r}")
    return dict(event)


class CheckpointSyncTrigger(FelderaPollingTrigger):
    """Wait in the triggerer until a checkpoint's sync succeeds, fails, or the deadline passes.

    It fires once with ``{"status": "success" | "failure" | "timeout" | "error" | "restarted", ...}``.

    :param feldera_conn_id: the ``feldera`` Airflow connection.
    :param pipeline_name: the pipeline that is syncing.
    :param checkpoint_uuid: the checkpoint being synced.
    :param incarnation_uuid: the pipeline process that started the sync; a restart is reported as ``restarted``.
    :param end_time: the deadline, in seconds since the epoch (wall clock: it crosses processes).
    :param poll_interval: seconds between status reads.
    """

    def __init__(
        self,
        *,
        feldera_conn_id: str,
        pipeline_name: str,
        checkpoint_uuid: str,
        incarnation_uuid: str | None,
        end_time: float,
        poll_interval: float,
    ) -> None:
        super().__init__(
            feldera_conn_id=feldera_conn_id, pipeline_name=pipeline_name, end_time=end_time, poll_interval=poll_interval
        )
        self.checkpoint_uuid = checkpoint_uuid
        self.incarnation_uuid = incarnation_uuid

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {**self._kwargs(), "checkpoint_uuid": self.checkpoint_uuid, "incarnation_uuid": self.incarnation_uuid},
        )

    async def read(self, session: FelderaAsyncSession) -> Any:
        return await session.sync_progress(self.pipeline_name, self.checkpoint_uuid, self.incarnation_uuid)

    def decide(self, result: Any, error: Exception | None, now: float) -> dict[str, Any] | None:
        return sync_wait_event(
            pipeline_name=self.pipeline_name,
            checkpoint_uuid=self.checkpoint_uuid,
            incarnation_uuid=self.incarnation_uuid,
            progress=result,
            error=error,
            end_time=self.end_time,
            now=now,
        )

    def failed_to_start(self, message: str) -> dict[str, Any]:
        return {
            "status": "error",
            "pipeline_name": self.pipeline_name,
            "checkpoint_uuid": self.checkpoint_uuid,
            "incarnation_uuid": self.incarnation_uuid,
            "message": message,
        }
