"""CheckpointFreshnessTrigger: wait in the triggerer for a synced checkpoint within the recovery-point objective."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_checkpoint_sync.rules.waits import FRESHNESS_STATUSES, freshness_wait
from airflow_checkpoint_sync.triggers.polling import FelderaPollingTrigger

if TYPE_CHECKING:
    from airflow_checkpoint_sync.hooks.feldera_api import Flow


class CheckpointFreshnessTrigger(FelderaPollingTrigger):
    """Wait until a pipeline's newest synced checkpoint is younger than ``max_age_seconds``.

    It fires once with ``{"status": "fresh" | "stale" | "none" | "error", ...}`` (``stale`` and ``none`` only at
    the deadline), decided by :func:`airflow_checkpoint_sync.rules.waits.freshness_wait`.

    :param feldera_conn_id: the ``feldera`` Airflow connection.
    :param pipeline_name: the pipeline whose synced checkpoints are watched.
    :param max_age_seconds: the recovery-point objective: how old the newest synced checkpoint may be.
    :param end_time: the deadline, in seconds since the epoch (wall clock: it crosses processes).
    :param poll_interval: seconds between reads.
    :param echo: returned unchanged in the event (the deferring task's state).
    :param on_kill_cleanup: what to undo if a user kills the deferred task (see the base class), or None.
    """

    fields = ("max_age_seconds",)
    event_statuses = FRESHNESS_STATUSES

    def __init__(
        self,
        *,
        feldera_conn_id: str,
        pipeline_name: str,
        max_age_seconds: float,
        end_time: float,
        poll_interval: float,
        echo: dict[str, Any] | None = None,
        on_kill_cleanup: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            feldera_conn_id=feldera_conn_id,
            pipeline_name=pipeline_name,
            end_time=end_time,
            poll_interval=poll_interval,
            echo=echo,
            on_kill_cleanup=on_kill_cleanup,
        )
        self.max_age_seconds = float(max_age_seconds)

    def reads(self) -> Flow[Any]:
        from airflow_checkpoint_sync.hooks.feldera_api import read_newest_synced

        return read_newest_synced(self.pipeline_name)

    def decide(self, result: Any, error: BaseException | None, now: float) -> dict[str, Any] | None:
        return freshness_wait(
            pipeline_name=self.pipeline_name,
            newest=result,
            error=error,
            max_age_seconds=self.max_age_seconds,
            end_time=self.end_time,
            now=now,
        )
