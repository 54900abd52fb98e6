"""CheckpointSyncTrigger: wait in the triggerer for the sync of one checkpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_checkpoint_sync.rules.waits import SYNC_STATUSES, sync_wait
from airflow_checkpoint_sync.triggers.polling import FelderaPollingTrigger

if TYPE_CHECKING:
    from airflow_checkpoint_sync.hooks.feldera_api import Flow


class CheckpointSyncTrigger(FelderaPollingTrigger):
    """Wait in the triggerer until a checkpoint's sync succeeds, fails, or the deadline passes.

    It fires once with ``{"status": "success" | "failure" | "timeout" | "error" | "restarted", ...}``, decided by
    :func:`airflow_checkpoint_sync.rules.waits.sync_wait`.

    :param feldera_conn_id: the ``feldera`` Airflow connection.
    :param pipeline_name: the pipeline that is syncing.
    :param checkpoint_uuid: the checkpoint being synced.
    :param incarnation_uuid: the pipeline process that started the sync; a restart is reported as ``restarted``.
    :param end_time: the deadline, in seconds since the epoch (wall clock: it crosses processes).
    :param poll_interval: seconds between status reads.
    :param echo: returned unchanged in the event (the deferring task's state).
    :param on_kill_cleanup: what to undo if a user kills the deferred task (see the base class), or None.
    :param unknown_grace_until: from this time (seconds since the epoch) on, a uuid Feldera neither syncs nor lists
        in the bucket fails the wait for good; None waits for it until ``end_time``.
    :param stale_failure: the error a 0.337-era Feldera showed for this uuid before this push was asked for; it is
        not this push's outcome.
    """

    fields = ("checkpoint_uuid", "incarnation_uuid", "unknown_grace_until", "stale_failure")
    event_statuses = SYNC_STATUSES

    def __init__(
        self,
        *,
        feldera_conn_id: str,
        pipeline_name: str,
        checkpoint_uuid: str,
        incarnation_uuid: str | None,
        end_time: float,
        poll_interval: float,
        echo: dict[str, Any] | None = None,
        on_kill_cleanup: dict[str, Any] | None = None,
        unknown_grace_until: float | None = None,
        stale_failure: str | None = None,
    ) -> None:
        super().__init__(
            feldera_conn_id=feldera_conn_id,
            pipeline_name=pipeline_name,
            end_time=end_time,
            poll_interval=poll_interval,
            echo=echo,
            on_kill_cleanup=on_kill_cleanup,
        )
        self.checkpoint_uuid = checkpoint_uuid
        self.incarnation_uuid = incarnation_uuid
        self.unknown_grace_until = unknown_grace_until
        self.stale_failure = stale_failure

    def reads(self) -> Flow[Any]:
        from airflow_checkpoint_sync.hooks.feldera_api import read_sync_progress

        return read_sync_progress(self.pipeline_name, self.checkpoint_uuid, self.incarnation_uuid, self.stale_failure)

    def decide(self, result: Any, error: BaseException | None, now: float) -> dict[str, Any] | None:
        return sync_wait(
            pipeline_name=self.pipeline_name,
            checkpoint_uuid=self.checkpoint_uuid,
            incarnation_uuid=self.incarnation_uuid,
            result=result,
            error=error,
            end_time=self.end_time,
            now=now,
            unknown_grace_until=self.unknown_grace_until,
        )
