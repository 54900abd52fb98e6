"""FelderaPipelineOperator: what every operator on one Feldera pipeline shares (the preflight read, status waits,
stopping and clearing, and the steps of writing a sync configuration)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_checkpoint_sync.exceptions import SyncConfigError
from airflow_checkpoint_sync.links import FelderaPipelineLink
from airflow_checkpoint_sync.rules.bucket_layout import OWNER
from airflow_checkpoint_sync.rules.sync_config import merge_sync_config
from airflow_checkpoint_sync.task_support import (
    FelderaTaskMixin,
    feldera_errors,
    feldera_template_fields,
    outcome,
    read_enterprise_pipeline,
    validate_event,
)

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

    from airflow.sdk import BaseOperatorLink, Context

    from airflow_checkpoint_sync.object_stores.base import ObjectStore
    from airflow_checkpoint_sync.rules.sync_config import SyncConfig


class FelderaPipelineOperator(FelderaTaskMixin, BaseOperator):
    """Base for operators that act on one Feldera pipeline.

    :param pipeline_name: the Feldera pipeline. (templated)
    :param feldera_conn_id: the ``feldera`` Airflow connection. (templated)
    """

    template_fields: Sequence[str] = feldera_template_fields()
    operator_extra_links: Collection[BaseOperatorLink] = (FelderaPipelineLink(),)
    ui_color = "#c7e3ff"
    #: The stores this task has built, by connection and location (see :meth:`bucket_store`).
    _stores: dict[tuple[str, str], ObjectStore] | None = None

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
        """Called with the result of each :meth:`wait_for_status` that reached its status, worker-side or deferred;
        returns it. A subclass records what finished here (its metrics)."""
        return result

    # -- stop and clear --------------------------------------------------------------------------------------------
    def stop_and_wait(
        self,
        *,
        force: bool,
        poll_interval: float,
        end_time: float,
        pipeline_name: str | None = None,
        action: str = "stopping the pipeline",
    ) -> None:
        """Stop the pipeline and wait until it is Stopped. ``force`` stops it at once, without the final checkpoint
        a graceful stop makes (a standby cannot make one).

        ``pipeline_name`` is another pipeline the task owns (a drill's scratch pipeline); ``action`` words a failed
        request. The wait stays in the worker: it is a step in the middle of a task, with nothing to resume at.
        """
        name = pipeline_name or self.pipeline_name
        with feldera_errors(action, name):
            self.hook.stop_pipeline(name, force=force)
        self._wait_in_worker(name, "deployment_status", "Stopped", poll_interval, end_time)

    def clear_and_wait(
        self,
        *,
        poll_interval: float,
        end_time: float,
        pipeline_name: str | None = None,
        action: str = "clearing storage",
        under_way: bool = False,
    ) -> None:
        """Delete the stopped pipeline's storage and wait until it is Cleared; arguments as in
        :meth:`stop_and_wait`. ``under_way``: the pipeline is Clearing already, so only wait (Feldera refuses a
        second clear while one runs)."""
        name = pipeline_name or self.pipeline_name
        if not under_way:
            with feldera_errors(action, name):
                self.hook.clear_storage(name)
        self._wait_in_worker(name, "storage_status", "Cleared", poll_interval, end_time)

    def _wait_in_worker(self, name: str, field: str, target: str, poll_interval: float, end_time: float) -> None:
        from airflow_checkpoint_sync.triggers.pipeline import PipelineStatusTrigger

        trigger = PipelineStatusTrigger(
            feldera_conn_id=self.feldera_conn_id,
            pipeline_name=name,
            targets=[target],
            end_time=end_time,
            poll_interval=poll_interval,
            field=field,
        )
        self.log.info("%s", outcome(self.wait_for(trigger, deferrable=False))["message"])

    # -- sync locations --------------------------------------------------------------------------------------------
    def bucket_store(self, bucket_conn_id: str, location: str, location_parameter: str = "bucket") -> ObjectStore:
        """The store at sync ``location`` through ``bucket_conn_id``, built once per task and location: every read
        and write there shares its client. A connection that does not resolve or is not ``aws``, or a malformed
        location, is a ValueError naming ``bucket_conn_id`` or ``location_parameter``.

        Only ``aws`` connections are read: Feldera reaches every bucket through the S3 protocol, and a
        ``google_cloud_platform`` connection here holds HMAC keys for that protocol, not what Google's SDK needs.
        """
        from airflow_checkpoint_sync.object_stores import store_for

        if self._stores is None:
            self._stores = {}
        key = (bucket_conn_id, location)
        if key not in self._stores:
            self._stores[key] = store_for(bucket_conn_id, location, "bucket_conn_id", ("aws",), location_parameter)
        return self._stores[key]

    def check_bucket_owner(self, pipeline: Mapping[str, Any], sync: SyncConfig, bucket_conn_id: str | None) -> None:
        """Refuse a ``bucket`` that another pipeline owns, before anything is written.

        Feldera locks a location to the first pipeline that pushes there (``owner.json``, by the pipeline's system
        name ``pipeline-<id>``) and refuses the others, but only at their first push, long after the configuration
        was written and the pipeline started. Read through ``bucket_conn_id`` (an ``aws`` connection); without one,
        or when the lock cannot be read, Feldera's own check at the first push remains (logged).
        """
        import json

        from airflow_checkpoint_sync.object_stores import read_object

        if not bucket_conn_id:
            self.log.info(
                "Who owns %s is checked by Feldera at its first push (no bucket_conn_id to read it)", sync.bucket
            )
            return
        try:
            body = read_object(self.bucket_store(bucket_conn_id, sync.bucket), OWNER)
        except Exception as exc:  # the check is an early warning; Feldera's own lock still holds
            self.log.warning(
                "Could not read %s/%s to see who owns it (%s); Feldera checks it at its first push",
                sync.bucket,
                OWNER,
                exc,
            )
            return
        if body is None:
            return  # nobody owns it yet: the first push claims it
        try:
            owner = json.loads(body).get("pipeline_name")
        except (ValueError, AttributeError):
            owner = None
        me = f"pipeline-{pipeline.get('id')}"
        # Compared on the id's hex digits, so that a different spelling of the same system name is never refused.
        if owner and pipeline.get("id") and _hex(str(pipeline["id"])) not in _hex(str(owner)):
            raise AirflowFailException(
                f"bucket={sync.bucket!r} belongs to another pipeline ({owner}, says its {OWNER}); pipeline "
                f"'{self.pipeline_name}' is {me}, and Feldera refuses to push there. Give this pipeline its own "
                "location; to start from the other's checkpoints, pass that location as read_bucket."
            )

    def write_sync_config(self, pipeline: Mapping[str, Any], sync: SyncConfig) -> bool:
        """PATCH the pipeline's runtime config with ``sync`` merged in, unless it already says exactly that; returns
        whether it changed."""
        try:
            merged = merge_sync_config(pipeline.get("runtime_config"), sync)
        except SyncConfigError as exc:
            raise AirflowFailException(f"pipeline '{self.pipeline_name}': {exc}") from exc
        for warning in merged.warnings:
            self.log.warning("%s", warning)
        if not merged.changed:
            self.log.info("Pipeline '%s' already has this sync configuration; nothing to change", self.pipeline_name)
            return False
        with feldera_errors("updating the runtime config", self.pipeline_name):
            self.hook.patch_runtime_config(self.pipeline_name, merged.runtime_config)
        self.log.info("Pipeline '%s' now syncs with %s", self.pipeline_name, sync.redacted())
        return True


def _hex(text: str) -> str:
    return "".join(c for c in text.lower() if c in "0123456789abcdef")
