"""What every Feldera operator shares: the hook, error mapping, the preflight read and the wait for a status."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_checkpoint_sync.links import PIPELINE_URL_KEY, FelderaPipelineLink
from airflow_checkpoint_sync.task_errors import task_failure
from airflow_checkpoint_sync.task_hook import FelderaHookMixin

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

    from airflow.sdk import Context


def feldera_requests() -> ModuleType:
    """Feldera's request builders, loaded when a task runs rather than when its DAG file is parsed."""
    from airflow_checkpoint_sync.hooks import feldera_api

    return feldera_api


#: XCom key of a deferred wait's state, read back when the task resumes (dag.test() drops defer kwargs).
WAIT_STATE_KEY = "feldera_wait"


class FelderaPipelineOperator(FelderaHookMixin, BaseOperator):
    """Base for operators that act on one Feldera pipeline.

    :param pipeline_name: the Feldera pipeline. (templated)
    :param feldera_conn_id: the ``feldera`` Airflow connection. (templated)
    """

    template_fields: Sequence[str] = ("pipeline_name", "feldera_conn_id")
    operator_extra_links = (FelderaPipelineLink(),)
    ui_color = "#c7e3ff"

    def __init__(self, *, pipeline_name: str, feldera_conn_id: str = "feldera_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline_name = pipeline_name
        self.feldera_conn_id = feldera_conn_id

    def on_kill(self) -> None:
        self.close_hook()

    def failure(self, error: Exception, action: str) -> Exception:
        """The Airflow exception for a failed Feldera call (final when retrying cannot help)."""
        from airflow_checkpoint_sync.hooks.feldera import FelderaConnectionConfigError
        from airflow_checkpoint_sync.hooks.feldera_api import FelderaApiError

        if isinstance(error, FelderaConnectionConfigError):
            return AirflowFailException(str(error))
        if isinstance(error, FelderaApiError):
            return task_failure(error, action, self.pipeline_name)
        return error

    def read_pipeline(self, context: Context, *, pipeline_name: str | None = None) -> dict[str, Any]:
        """Check the edition and read the pipeline (``selector=all``); publish the console link first."""
        name = pipeline_name or self.pipeline_name
        hook = self.hook
        try:
            config = hook.get_config()
            if name == self.pipeline_name:
                context["ti"].xcom_push(key=PIPELINE_URL_KEY, value=hook.pipeline_url(name))
            pipeline = hook.get_pipeline(name, selector="all")
        except Exception as exc:
            raise self.failure(exc, "reading the pipeline") from exc
        if str(config.get("edition", "")).lower() != "enterprise":
            raise AirflowFailException(
                f"Feldera at {hook.settings.base_url} is the {config.get('edition')} edition: checkpoint sync, "
                "standby and activation need Feldera Enterprise"
            )
        return pipeline

    def call(self, action: str, request: Any) -> Any:
        """Send one request; a failure becomes the right Airflow exception."""
        try:
            return self.hook.send(request)
        except Exception as exc:
            raise self.failure(exc, action) from exc

    # -- waiting for a status ------------------------------------------------------------------------------------
    def wait_for_status(
        self,
        context: Context,
        targets: Sequence[str],
        *,
        deferrable: bool,
        poll_interval: float,
        end_time: float,
        result: dict[str, Any],
    ) -> dict[str, Any]:
        """Wait (in the worker, or deferred) until the pipeline is in one of ``targets``; returns ``result``."""
        # Trigger modules load Airflow's trigger machinery: imported when a task runs, not when a DAG is parsed.
        from airflow_checkpoint_sync.triggers.pipeline import PipelineStatusTrigger, pipeline_wait_event

        while True:
            pipeline, error = None, None
            try:
                pipeline = self.hook.get_pipeline(self.pipeline_name)
            except Exception as exc:
                error = exc
            event = pipeline_wait_event(
                pipeline_name=self.pipeline_name,
                pipeline=pipeline,
                error=error,
                targets=targets,
                end_time=end_time,
                now=time.time(),
            )
            if event is not None:
                return self._status_outcome(event, result)
            if deferrable:
                context["ti"].xcom_push(key=WAIT_STATE_KEY, value={"result": result})
                self.defer(
                    trigger=PipelineStatusTrigger(
                        feldera_conn_id=self.feldera_conn_id,
                        pipeline_name=self.pipeline_name,
                        targets=list(targets),
                        end_time=end_time,
                        poll_interval=poll_interval,
                    ),
                    method_name="resume_after_status",
                    # The trigger enforces the deadline itself and reports it as an event.
                    timeout=None,
                )
            time.sleep(max(0.0, min(poll_interval, end_time - time.time())))

    def resume_after_status(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the status trigger fired."""
        from airflow_checkpoint_sync.triggers.pipeline import validate_pipeline_event

        try:
            checked = validate_pipeline_event(event)
        except ValueError as exc:
            raise AirflowException(str(exc)) from exc
        state = context["ti"].xcom_pull(task_ids=self.task_id, key=WAIT_STATE_KEY) or {}
        return self._status_outcome(checked, dict(state.get("result") or {}))

    def _status_outcome(self, event: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        if event["status"] == "success":
            self.log.info("%s", event["message"])
            return {**result, "status": event["deployment_status"]}
        if event["status"] == "error" and event.get("transient"):
            raise AirflowException(event["message"])
        if event["status"] == "timeout":
            raise AirflowException(event["message"])
        raise AirflowFailException(event["message"])
