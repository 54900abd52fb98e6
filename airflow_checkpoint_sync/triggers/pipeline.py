"""PipelineStatusTrigger: wait in the triggerer for a pipeline to reach a status (after a restore or activation)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_checkpoint_sync.rules.waits import PIPELINE_STATUSES, pipeline_wait
from airflow_checkpoint_sync.triggers.polling import FelderaPollingTrigger

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_checkpoint_sync.hooks.feldera_api import Flow


class PipelineStatusTrigger(FelderaPollingTrigger):
    """Wait until a pipeline's ``field`` (its deployment status by default) is one of ``targets``.

    It fires once with ``{"status": "success" | "failure" | "timeout" | "error", ...}``, decided by
    :func:`airflow_checkpoint_sync.rules.waits.pipeline_wait`.

    :param feldera_conn_id: the ``feldera`` Airflow connection.
    :param pipeline_name: the pipeline.
    :param targets: values that end the wait successfully, e.g. ``["Running"]``.
    :param end_time: the deadline, in seconds since the epoch.
    :param poll_interval: seconds between reads.
    :param field: the pipeline field to watch: ``deployment_status`` or ``storage_status``.
    :param echo: returned unchanged in the event (the deferring task's state).
    :param on_kill_cleanup: what to undo if a user kills the deferred task (see the base class), or None.
    """

    fields = ("targets", "field")
    event_statuses = PIPELINE_STATUSES

    def __init__(
        self,
        *,
        feldera_conn_id: str,
        pipeline_name: str,
        targets: Sequence[str],
        end_time: float,
        poll_interval: float,
        field: str = "deployment_status",
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
        self.targets = list(targets)
        self.field = field

    def reads(self) -> Flow[Any]:
        from airflow_checkpoint_sync.hooks.feldera_api import read_pipeline

        # A compilation's errors are in program_error, which only the full view carries.
        return read_pipeline(self.pipeline_name, "all" if self.field == "program_status" else "status")

    def decide(self, result: Any, error: BaseException | None, now: float) -> dict[str, Any] | None:
        return pipeline_wait(
            pipeline_name=self.pipeline_name,
            pipeline=result,
            error=error,
            targets=self.targets,
            end_time=self.end_time,
            now=now,
            field=self.field,
        )
