"""ActivateStandbyOperator: the failover step."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow.sdk import conf
from airflow.sdk.exceptions import AirflowFailException

from airflow_checkpoint_sync.operators.base import FelderaPipelineOperator
from airflow_checkpoint_sync.status import PipelineGroup, deployment_error_message, pipeline_group
from airflow_checkpoint_sync.task_support import (
    check_bool,
    check_pipeline_name,
    check_positive_seconds,
    feldera_errors,
    wait_settings,
)

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Sequence

    from airflow.sdk import Context

TARGET = {"running": "Running", "paused": "Paused"}


def pull_interval(pipeline: dict[str, Any]) -> float:
    """The standby's ``pull_interval`` in seconds (Feldera's default 10 when its sync block does not say)."""
    from airflow_checkpoint_sync.sync_config import current_sync, effective_sync

    meaning = effective_sync(current_sync(pipeline.get("runtime_config"))) or {}
    value = meaning.get("pull_interval", 10)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else 10.0


class ActivateStandbyOperator(FelderaPipelineOperator):
    """Activate a standby pipeline: it pulls the newest checkpoint once more, then runs (or pauses).

    A standby that is already Running or Paused (started as a standby, activated since) counts as done (logged), so
    a retry, or a second run, is safe. A running pipeline that was never a standby, a Stopped pipeline, or one in
    any other state, is a clear error (Feldera's own ``/activate`` would pause a running pipeline); a failed
    activation fails with the pipeline's deployment error.

    With ``primary_pipeline_name`` set, the task first makes sure the primary is not still up: two pipelines
    processing the same input is the split brain a failover must avoid. A primary that cannot be reached, or no
    longer exists, counts as down (the usual reason for a failover).

    .. seealso::
        :ref:`howto/operator:ActivateStandbyOperator`

    :param pipeline_name: the standby pipeline. (templated)
    :param initial: ``"running"`` or ``"paused"``, the status after activation. (templated)
    :param primary_pipeline_name: the pipeline the standby replaces, checked first. (templated)
    :param primary_conn_id: the ``feldera`` connection of the primary's Feldera; defaults to ``feldera_conn_id``.
        (templated)
    :param allow_split_brain: activate even though the primary is still up (logged as a warning).
    :param max_checkpoint_age: the recovery-point bound, in seconds or a timedelta: refuse to activate when the newest
        checkpoint the standby holds is older than this (or there is none), since activating it would lose what
        happened since. Off when None.
    :param allow_stale_checkpoint: activate even though the newest checkpoint is older than ``max_checkpoint_age``
        (logged as a warning): the on-call engineer's override, when an old recovery point beats no service.
        (templated: with ``render_template_as_native_obj=True``, a boolean Param of the trigger form can set it)
    :param wait_for_completion: wait until the pipeline reaches ``initial``'s status.
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poll_interval: seconds between status reads.
    :param timeout: how long to wait for the activation, in seconds or a timedelta. The standby's
        ``pull_interval`` is added to it: Feldera activates a standby only when its pull loop next wakes, after a
        last pull of the newest checkpoint.
    :param feldera_conn_id: the ``feldera`` Airflow connection of the standby. (templated)
    :return: ``{"pipeline_name", "status", "already_active"}``; an activation adds the newest checkpoint the standby
        held before it (``checkpoint_uuid``, ``checkpoint_age_seconds``): the recovery point it started from, or an
        older one if its last pull at activation found a newer one.
    """

    template_fields: Sequence[str] = (
        "pipeline_name",
        "feldera_conn_id",
        "primary_pipeline_name",
        "primary_conn_id",
        "initial",
        "allow_stale_checkpoint",
    )

    def __init__(
        self,
        *,
        initial: str = "running",
        primary_pipeline_name: str | None = None,
        primary_conn_id: str | None = None,
        allow_split_brain: bool = False,
        max_checkpoint_age: float | dt.timedelta | None = None,
        allow_stale_checkpoint: bool = False,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 2.0,
        timeout: float | dt.timedelta = 900.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.initial = initial
        self.primary_pipeline_name = primary_pipeline_name
        self.primary_conn_id = primary_conn_id
        self.allow_split_brain = allow_split_brain
        self.max_checkpoint_age = (
            None if max_checkpoint_age is None else check_positive_seconds(max_checkpoint_age, "max_checkpoint_age")
        )
        self.allow_stale_checkpoint = allow_stale_checkpoint
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval, self.timeout = wait_settings(poll_interval, timeout)

    def execute(self, context: Context) -> dict[str, Any]:
        check_pipeline_name(self.pipeline_name)
        if self.initial not in TARGET:
            raise AirflowFailException(f"initial={self.initial!r} is not valid: 'running' or 'paused'")
        if self.primary_pipeline_name:
            check_pipeline_name(self.primary_pipeline_name, "primary_pipeline_name")
        poll = check_positive_seconds(self.poll_interval, "poll_interval")
        end_time = time.time() + check_positive_seconds(self.timeout, "timeout")
        self.hook.deadline = end_time
        if self.primary_pipeline_name:
            self._guard_split_brain()
        pipeline = self.read_pipeline()
        # Feldera activates a standby when its pull loop next wakes (up to one pull_interval), after one last pull:
        # the wait allows for that on top of `timeout`.
        end_time += pull_interval(pipeline)
        self.hook.deadline = end_time
        status = str(pipeline.get("deployment_status"))
        group = pipeline_group(pipeline)
        result = {"pipeline_name": self.pipeline_name, "already_active": False}
        if group in (PipelineGroup.RUNNING, PipelineGroup.PAUSED):
            initial = str(pipeline.get("deployment_initial") or "")
            if initial.lower() != "standby":
                # Feldera's /activate accepts any transition (it would pause a running pipeline): refuse here.
                raise AirflowFailException(
                    f"pipeline '{self.pipeline_name}' is {status} but was not started as a standby (it was started "
                    f"{initial or 'with no recorded initial state'}): there is no standby to activate. Check "
                    "pipeline_name; a standby is started with RestoreCheckpointOperator(initial='standby')."
                )
            self.log.info(
                "Pipeline '%s' is already %s: this standby was activated before; nothing to do",
                self.pipeline_name,
                status,
            )
            return {**result, "status": status, "already_active": True}
        if group is PipelineGroup.STANDBY:
            result.update(self._guard_recovery_point())
            with feldera_errors("activating the standby", self.pipeline_name):
                self.hook.activate_pipeline(self.pipeline_name, self.initial)
            self.log.info("Activating standby pipeline '%s' (%s)", self.pipeline_name, self.initial)
        elif group is PipelineGroup.TRANSITIONAL and pipeline.get("deployment_desired_status") in ("Running", "Paused"):
            self.log.info(
                "Pipeline '%s' is %s on its way to %s; waiting",
                self.pipeline_name,
                status,
                pipeline.get("deployment_desired_status"),
            )
        else:
            reason = deployment_error_message(pipeline)
            raise AirflowFailException(
                f"pipeline '{self.pipeline_name}' is {status}, not in Standby"
                + (f" (deployment error: {reason})" if reason else "")
                + ": start it as a standby first, e.g. RestoreCheckpointOperator(initial='standby')"
            )
        if not self.wait_for_completion:
            return {**result, "status": "activating"}
        return self.wait_for_status(
            [TARGET[self.initial]],
            deferrable=self.deferrable,
            poll_interval=poll,
            end_time=end_time,
            result=result,
        )

    def _guard_recovery_point(self) -> dict[str, Any]:
        """The newest checkpoint the standby holds and its age; refused when older than ``max_checkpoint_age``."""
        import datetime as dt

        from airflow_checkpoint_sync.status import Freshness, freshness, newest_uuid

        with feldera_errors("listing the standby's checkpoints", self.pipeline_name):
            local = self.hook.list_checkpoints(self.pipeline_name)
        newest = newest_uuid(entry.get("uuid") for entry in local)
        bound = self.max_checkpoint_age
        report = freshness(self.pipeline_name, newest, bound or float("inf"), dt.datetime.now(dt.UTC))
        point = {"checkpoint_uuid": newest, "checkpoint_age_seconds": report.age_seconds}
        if bound is None or report.state is Freshness.FRESH:
            self.log.info("Standby '%s' holds checkpoint %s (%s s old)", self.pipeline_name, newest, report.age_seconds)
            return point
        what = report.message.replace(f"newest synced checkpoint of '{self.pipeline_name}'", "the newest checkpoint")
        if not check_bool(self.allow_stale_checkpoint, "allow_stale_checkpoint"):
            raise AirflowFailException(
                f"refusing to activate '{self.pipeline_name}': {what} (max_checkpoint_age). Activating would lose "
                "everything since that recovery point. Check that the primary's syncs and the standby's pulls work; "
                "set allow_stale_checkpoint=True to accept this recovery point."
            )
        self.log.warning("Activating '%s' although %s (allow_stale_checkpoint=True)", self.pipeline_name, what)
        return point

    def _guard_split_brain(self) -> None:
        from airflow_checkpoint_sync.hooks.feldera import FelderaHook
        from airflow_checkpoint_sync.hooks.feldera_api import BackoffPolicy, FelderaApiError

        name = self.primary_pipeline_name
        # A quick look: during a failover the primary's side is often down, and that must not stall the task.
        primary = FelderaHook(self.primary_conn_id or self.feldera_conn_id, retry_policy=BackoffPolicy(max_attempts=2))
        try:
            status = primary.get_pipeline(str(name)).get("deployment_status")
        except FelderaApiError as exc:
            self.log.warning("Primary pipeline '%s' cannot be read (%s); treating it as down", name, exc)
            return
        finally:
            primary.close()
        if status in ("Running", "Paused"):
            if not self.allow_split_brain:
                raise AirflowFailException(
                    f"refusing to activate '{self.pipeline_name}': the primary pipeline '{name}' is still {status}. "
                    "Two active pipelines would both process input (split brain). Stop the primary first, or set "
                    "allow_split_brain=True if you really mean it."
                )
            self.log.warning("The primary '%s' is still %s; activating anyway (allow_split_brain=True)", name, status)
        else:
            self.log.info("Primary pipeline '%s' is %s; safe to activate", name, status)
