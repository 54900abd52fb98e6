"""FelderaPipelineOperator: what every operator on one Feldera pipeline shares (the preflight read, status waits)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_checkpoint_sync.links import FelderaPipelineLink
from airflow_checkpoint_sync.task_support import FelderaTaskMixin, outcome, read_enterprise_pipeline, validate_event

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.sdk import Context


class FelderaPipelineOperator(FelderaTaskMixin, BaseOperator):
    """Base for operators that act on one Feldera pipeline.

    :param pipeline_name: the Feldera pipeline. (templated)
    :param feldera_conn_id: the ``feldera`` Airflow connection. (templated)
    """

    template_fields: Sequence[str] = ("pipeline_name", "feldera_conn_id")
    operator_extra_links = (FelderaPipelineLink(),)
    ui_color = "#c7e3ff"

    # No __init__ here: Airflow wraps every __init__ of an operator class, and each wrapper deep-copies the DAG's
    # params again when a task is built, on every parse of every DAG file. Each concrete operator takes
    # ``pipeline_name`` and ``feldera_conn_id`` in its own __init__ (which also lets ``default_args`` supply them).

    def read_pipeline(self) -> dict[str, Any]:
        """Check the edition and read the pipeline (``selector=all``)."""
        return read_enterprise_pipeline(self.hook, self.pipeline_name)

    def wait_for_status(
        self,
        targets: Sequence[str],
        *,
        deferrable: bool,
        poll_interval: float,
        end_time: float,
        result: Mapping[str, Any] | None = None,
        field: str = "deployment_status",
    ) -> dict[str, Any]:
        """Wait (in the worker, or deferred) until the pipeline's ``field`` is one of ``targets``.

        Returns ``result`` with the pipeline's ``status``; a deferred wait carries ``result`` in its trigger's echo
        and :meth:`resume_after_status` returns it.
        """
        from airflow_checkpoint_sync.triggers.pipeline import PipelineStatusTrigger

        trigger = PipelineStatusTrigger(
            feldera_conn_id=self.feldera_conn_id,
            pipeline_name=self.pipeline_name,
            targets=list(targets),
            end_time=end_time,
            poll_interval=poll_interval,
            field=field,
            echo={"result": dict(result or {})},
        )
        return self._status_result(self.wait_for(trigger, deferrable=deferrable, method_name="resume_after_status"))

    def resume_after_status(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the status trigger fired."""
        from airflow_checkpoint_sync.triggers.pipeline import PipelineStatusTrigger

        return self._status_result(validate_event(event, PipelineStatusTrigger))

    def _status_result(self, event: Mapping[str, Any]) -> dict[str, Any]:
        outcome(event)
        self.log.info("%s", event["message"])
        return self.status_reached({**event["echo"].get("result", {}), "status": event["deployment_status"]})

    def status_reached(self, result: dict[str, Any]) -> dict[str, Any]:
        """Called with the result of each wait that reached its status, worker-side or deferred; returns it. A
        subclass records what finished here (its metrics)."""
        return result
