"""ActivateStandbyOperator: the failover step."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from airflow.sdk import conf
from airflow.sdk.exceptions import AirflowFailException

from airflow_checkpoint_sync.exceptions import FelderaApiError, FelderaParameterError
from airflow_checkpoint_sync.operators.base import FelderaPipelineOperator
from airflow_checkpoint_sync.rules import params
from airflow_checkpoint_sync.rules.failover import (
    ConcernKind,
    FailoverReadiness,
    PrimaryState,
    Step,
    activation_step,
    approval_of,
    followed_location,
    primary_reading,
    standby_step,
)
from airflow_checkpoint_sync.rules.status import (
    INITIAL_STATUS,
    Freshness,
    deployment_error_message,
    freshness,
    newest_listed,
)
from airflow_checkpoint_sync.rules.sync_config import current_sync, effective_sync
from airflow_checkpoint_sync.task_support import (
    feldera_errors,
    feldera_template_fields,
    record_asset_events,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from airflow_checkpoint_sync.rules.failover import Approval, PrimaryReading, StandbyStep
    from airflow_checkpoint_sync.rules.status import FreshnessReport

#: Pull intervals an activation may take before the standby initializes (API notes, correction 13).
ACTIVATION_PULL_INTERVALS = 2


def pull_interval(pipeline: dict[str, Any]) -> float:
    """The standby's ``pull_interval`` in seconds (Feldera's default 10 when its sync block does not say)."""
    meaning = effective_sync(current_sync(pipeline.get("runtime_config"))) or {}
    value = meaning.get("pull_interval", 10)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else 10.0


class _FailoverOperator(FelderaPipelineOperator):
    """What the failover operators share: the primary's status and the standby's recovery point, both read only.

    :param pipeline_name: the standby pipeline. (templated)
    :param primary_pipeline_name: the pipeline the standby replaces. (templated)
    :param primary_conn_id: the ``feldera`` connection of the primary's Feldera; defaults to ``feldera_conn_id``.
        (templated)
    :param max_checkpoint_age: the recovery-point bound, in seconds or a timedelta. Off when None.
    :param feldera_conn_id: the ``feldera`` Airflow connection of the standby. (templated)
    """

    template_fields: Sequence[str] = feldera_template_fields("primary_pipeline_name", "primary_conn_id")

    # No __init__ here, as in FelderaPipelineOperator: each failover operator sets these in its own.
    primary_pipeline_name: str | None
    primary_conn_id: str | None
    max_checkpoint_age: float | None

    def set_failover_fields(
        self,
        pipeline_name: str,
        feldera_conn_id: str,
        primary_pipeline_name: str | None,
        primary_conn_id: str | None,
        max_checkpoint_age: float | dt.timedelta | None,
    ) -> None:
        """Set the parameters both failover operators take (their own __init__ calls this)."""
        self.pipeline_name = pipeline_name
        self.feldera_conn_id = feldera_conn_id
        self.primary_pipeline_name = primary_pipeline_name
        self.primary_conn_id = primary_conn_id
        self.max_checkpoint_age = params.optional_positive_seconds(max_checkpoint_age, "max_checkpoint_age")

    def check_names(self) -> None:
        """Both pipeline names, before any request (they are templated, so checked when the task runs)."""
        with feldera_errors("checking the parameters", self.pipeline_name):
            params.pipeline_name(self.pipeline_name)
            if self.primary_pipeline_name:
                params.pipeline_name(self.primary_pipeline_name, "primary_pipeline_name")

    def read_primary(self) -> PrimaryReading:
        """The primary as the split-brain guard reads it (:func:`~.rules.failover.primary_reading`):
        only a Feldera that cannot be reached counts as down; any answer but the pipeline's status (a wrong key, an
        unknown name) leaves it unknown."""
        from airflow_checkpoint_sync.hooks.feldera import FelderaHook
        from airflow_checkpoint_sync.hooks.feldera_api import BackoffPolicy

        name = str(self.primary_pipeline_name)
        # A quick look: during a failover the primary's side is often down, and that must not stall the task.
        primary = FelderaHook(self.primary_conn_id or self.feldera_conn_id, retry_policy=BackoffPolicy(max_attempts=2))
        try:
            return primary_reading(primary.get_pipeline(name))
        except FelderaApiError as exc:
            reading = primary_reading(error=exc)
            if reading.state is PrimaryState.DOWN:
                self.log.warning("Primary pipeline '%s' cannot be reached (%s); counting it as down", name, exc)
            else:
                self.log.warning("Primary pipeline '%s' cannot be checked: %s", name, exc)
            return reading
        finally:
            primary.close()

    def standby_step(self, pipeline: dict[str, Any]) -> StandbyStep:
        """What an activation does with the standby as ``pipeline`` (its payload) shows it: one rule for both
        operators."""
        return standby_step(
            self.pipeline_name,
            str(pipeline.get("deployment_status")),
            pipeline.get("deployment_initial"),
            pipeline.get("deployment_desired_status"),
            deployment_error_message(pipeline),
        )

    def read_recovery_point(self) -> FreshnessReport:
        """The newest checkpoint the standby holds, judged against ``max_checkpoint_age`` (always fresh without)."""
        with feldera_errors("listing the standby's checkpoints", self.pipeline_name):
            local = self.hook.list_checkpoints(self.pipeline_name)
        newest = newest_listed(local)
        return freshness(self.pipeline_name, newest, self.max_checkpoint_age or float("inf"), dt.datetime.now(dt.UTC))

    def read_readiness(self, *, report: bool) -> tuple[FailoverReadiness, dict[str, Any]]:
        """Everything a failover decision rests on, read the same way for the report and the activation: the
        primary (when named), the standby, and, when it can be activated, its recovery point. The ``report`` also
        shows an activated standby's recovery point and which location a standby pulls from. Returns the readiness
        and the standby's payload."""
        primary = self.read_primary() if self.primary_pipeline_name else None
        pipeline = self.read_pipeline()
        step = self.standby_step(pipeline)
        # A standby that is not deployed has no checkpoints to list (Feldera answers 503): it is refused for that.
        shown = (Step.ACTIVATE, Step.ALREADY_ACTIVE) if report else (Step.ACTIVATE,)
        point = self.read_recovery_point() if step.step in shown else None
        readiness = FailoverReadiness(
            standby=self.pipeline_name,
            standby_status=str(pipeline.get("deployment_status")),
            standby_initial=pipeline.get("deployment_initial"),
            standby_desired=pipeline.get("deployment_desired_status"),
            standby_error=deployment_error_message(pipeline),
            primary=self.primary_pipeline_name or None,
            primary_reading=primary,
            checkpoint_uuid=point.checkpoint_uuid if point else None,
            checkpoint_age_seconds=point.age_seconds if point else None,
            max_checkpoint_age_seconds=self.max_checkpoint_age,
            within_bound=self.within_bound(point) if point else True,
            follows=self._follows(pipeline) if point and report else None,
        )
        return readiness, pipeline

    def _follows(self, pipeline: dict[str, Any]) -> str | None:
        """Which location the standby really pulls from: its bucket's listing (``GET /checkpoints/remote``, which
        answers during Standby) tells whether Feldera reads ``read_bucket`` at all."""
        sync = current_sync(pipeline.get("runtime_config")) or {}
        own: list[str] | None = None
        if sync.get("read_bucket"):
            try:
                own = self.hook.remote_checkpoints(self.pipeline_name)
            except FelderaApiError as exc:
                self.log.warning("Could not list the standby's own bucket: %s", exc)
        return followed_location(sync.get("bucket"), sync.get("read_bucket"), own)

    def within_bound(self, point: FreshnessReport) -> bool:
        """Whether the recovery point meets ``max_checkpoint_age`` (always, without a bound)."""
        return self.max_checkpoint_age is None or point.state is Freshness.FRESH


class FailoverReadinessOperator(_FailoverOperator):
    """Read what a failover would do, for the person who approves it; changes nothing.

    It reads the primary's status (only a primary whose Feldera cannot be reached counts as down; one whose Feldera
    answers without its status, e.g. a 401 for a wrong key or a 404 for a wrong name, cannot be checked, and the
    activation would refuse), the standby's status, and the newest checkpoint the standby holds with its age against
    ``max_checkpoint_age``, and lists every concern: a primary still up or that cannot be checked (split brain), a
    standby not in Standby, a recovery point older than the bound. Each is judged by the rule the activation
    follows, so a concern here is a refusal there, and the other way round. Put it before
    Airflow's ``ApprovalOperator`` and show its ``summary`` as the approval's body; ``ActivateStandbyOperator``
    checks everything again when it runs. Only a standby that cannot be read fails the task.

    .. seealso::
        :ref:`howto/operator:ActivateStandbyOperator`

    :param pipeline_name: the standby pipeline. (templated)
    :param primary_pipeline_name: the pipeline the standby replaces. (templated)
    :param primary_conn_id: the ``feldera`` connection of the primary's Feldera; defaults to ``feldera_conn_id``.
        (templated)
    :param max_checkpoint_age: the recovery-point bound the activation will apply, in seconds or a timedelta.
    :param feldera_conn_id: the ``feldera`` Airflow connection of the standby. (templated)
    :return: ``{"standby_pipeline_name", "standby_status", "primary_pipeline_name", "primary_status", "primary_state",
        "checkpoint_uuid", "checkpoint_age_seconds", "max_checkpoint_age_seconds", "follows", "ready", "concerns",
        "summary"}``; ``summary`` is Markdown. ``follows`` says which location the standby really pulls from:
        Feldera reads ``read_bucket`` only while the standby's own ``bucket`` holds no checkpoint.
    """

    def __init__(
        self,
        *,
        pipeline_name: str,
        feldera_conn_id: str = "feldera_default",
        primary_pipeline_name: str | None = None,
        primary_conn_id: str | None = None,
        max_checkpoint_age: float | dt.timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.set_failover_fields(
            pipeline_name, feldera_conn_id, primary_pipeline_name, primary_conn_id, max_checkpoint_age
        )

    def execute(self, context: Context) -> dict[str, Any]:
        self.check_names()
        readiness, _ = self.read_readiness(report=True)
        for concern in readiness.concerns():
            self.log.warning("%s", concern)
        self.log.info("Failover to %s:\n%s", self.pipeline_name, readiness.summary())
        return readiness.as_dict()


class ActivateStandbyOperator(_FailoverOperator):
    """Activate a standby pipeline: it pulls the newest checkpoint once more, then runs (or pauses).

    A standby that is already Running or Paused (started as a standby, activated since) counts as done (logged), so
    a retry, or a second run, is safe. A running pipeline that was never a standby, a Stopped pipeline, or one in
    any other state, is a clear error (Feldera's own ``/activate`` would pause a running pipeline); a failed
    activation fails with the pipeline's deployment error.

    With ``primary_pipeline_name`` set, the task first makes sure the primary is not still up: two pipelines
    processing the same input is the split brain a failover must avoid. The primary counts as down only when it is
    Stopped (or in Standby), or when its Feldera cannot be reached (connection refused, timeout, a gateway's 502,
    503 or 504: the usual reason for a failover). Any status on the way to running, and any other answer (401 or
    403 for a wrong or read-only key, 404 for a wrong ``primary_pipeline_name``), is refused, naming the cause:
    the guard never counts what it cannot see as down. ``allow_split_brain=True`` overrides, with a warning.

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
    :param approval_task_id: the task id of an Airflow ``ApprovalOperator`` that must have approved this failover
        (when both are mapped, each activation reads the approval of its own map index). The task refuses, before
        any change, unless that task's answer is "Approve"; the approver's user name and time go into the result
        and the asset event, and an approval form field ``allow_stale_checkpoint`` set to true is the override
        above. (templated)
    :param wait_for_completion: wait until the pipeline reaches ``initial``'s status.
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poll_interval: seconds between status reads.
    :param timeout: how long the activation's downloads and initialization may take, in seconds or a timedelta.
        Twice the standby's ``pull_interval`` is added to it: Feldera activates a standby only after its pull loop
        has woken twice (it pulls, notices the activation, sleeps and pulls once more).
    :param feldera_conn_id: the ``feldera`` Airflow connection of the standby. (templated)
    :return: ``{"pipeline_name", "status", "already_active"}``; an activation adds the newest checkpoint the standby
        held before it (``checkpoint_uuid``, ``checkpoint_age_seconds``): the recovery point it started from, or an
        older one if its last pull at activation found a newer one, and ``activated_at``. With ``approval_task_id``,
        ``approved_by``, ``approved_at`` and ``accepted_stale_checkpoint`` too. When the task has outlets, each asset
        event's extra carries the result: the record of who approved which recovery point, and when.
    """

    template_fields: Sequence[str] = feldera_template_fields(
        "primary_pipeline_name", "primary_conn_id", "initial", "allow_stale_checkpoint", "approval_task_id"
    )

    def __init__(
        self,
        *,
        pipeline_name: str,
        feldera_conn_id: str = "feldera_default",
        primary_pipeline_name: str | None = None,
        primary_conn_id: str | None = None,
        max_checkpoint_age: float | dt.timedelta | None = None,
        initial: str = "running",
        allow_split_brain: bool = False,
        allow_stale_checkpoint: bool = False,
        approval_task_id: str | None = None,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 2.0,
        timeout: float | dt.timedelta = 900.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.set_failover_fields(
            pipeline_name, feldera_conn_id, primary_pipeline_name, primary_conn_id, max_checkpoint_age
        )
        self.initial = initial
        self.allow_split_brain = allow_split_brain
        self.allow_stale_checkpoint = allow_stale_checkpoint
        self.approval_task_id = approval_task_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval, self.timeout = params.wait_settings(poll_interval, timeout)

    def execute(self, context: Context) -> dict[str, Any]:
        self.check_names()
        with feldera_errors("checking the parameters", self.pipeline_name):
            params.choice(self.initial, "initial", ("running", "paused"))
            allow_stale = params.flag(self.allow_stale_checkpoint, "allow_stale_checkpoint")
        poll = self.poll_interval
        end_time = time.time() + self.timeout
        result: dict[str, Any] = {"pipeline_name": self.pipeline_name, "already_active": False}
        if self.approval_task_id is not None:
            approval = self._approval(context)
            allow_stale = allow_stale or approval.allow_stale
            result.update(approved_by=approval.by, approved_at=approval.at, accepted_stale_checkpoint=allow_stale)
        self.hook.deadline = end_time
        readiness, pipeline = self.read_readiness(report=False)
        # Feldera activates a standby only after its pull loop has woken twice (one to two pull_intervals: it pulls,
        # notices the activation, sleeps and pulls once more): the wait allows two on top of `timeout`, which covers
        # the downloads and the initialization.
        end_time += ACTIVATION_PULL_INTERVALS * pull_interval(pipeline)
        self.hook.deadline = end_time
        status = str(pipeline.get("deployment_status"))
        step = activation_step(readiness, allow_split_brain=self.allow_split_brain, allow_stale=allow_stale)
        if step.step is Step.REFUSE:
            raise AirflowFailException(step.refusal)
        for concern in step.accepted:
            override = "allow_split_brain" if concern.kind is ConcernKind.SPLIT_BRAIN else "allow_stale_checkpoint"
            self.log.warning("Activating '%s' although: %s (%s=True)", self.pipeline_name, concern.sentence, override)
        if readiness.primary_reading is not None and not step.accepted:
            self.log.info("Primary pipeline '%s' is %s; safe to activate", self.primary_pipeline_name,
                          readiness.primary_reading.status or "unreachable")  # fmt: skip
        if step.step is Step.ALREADY_ACTIVE:
            self.log.info(
                "Pipeline '%s' is already %s: this standby was activated before; nothing to do",
                self.pipeline_name,
                status,
            )
            return self._finish(context, {**result, "status": status, "already_active": True})
        if step.step is Step.ACTIVATE:
            result.update(
                checkpoint_uuid=readiness.checkpoint_uuid, checkpoint_age_seconds=readiness.checkpoint_age_seconds
            )
            self.log.info(
                "Standby '%s' holds checkpoint %s (%s s old)",
                self.pipeline_name,
                readiness.checkpoint_uuid,
                readiness.checkpoint_age_seconds,
            )
            result["activated_at"] = dt.datetime.now(dt.UTC).isoformat()
            with feldera_errors("activating the standby", self.pipeline_name):
                self.hook.activate_pipeline(self.pipeline_name, self.initial)
            self.log.info("Activating standby pipeline '%s' (%s)", self.pipeline_name, self.initial)
        else:
            self.log.info(
                "Pipeline '%s' is %s on its way to %s; waiting",
                self.pipeline_name,
                status,
                pipeline.get("deployment_desired_status"),
            )
        if not self.wait_for_completion:
            return self._finish(context, {**result, "status": "activating"})
        done = self.wait_for_status(
            [INITIAL_STATUS[self.initial]],
            deferrable=self.deferrable,
            poll_interval=poll,
            end_time=end_time,
            result=result,
        )
        return self._finish(context, done)

    def resume_after_status(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the status trigger fired: the activation's result, recorded as in :meth:`execute`."""
        return self._finish(context, super().resume_after_status(context, event))

    def status_reached(self, result: dict[str, Any]) -> dict[str, Any]:
        """The standby reached its status: the activation's duration goes to the metrics (one this try asked for)."""
        from airflow_checkpoint_sync import metrics

        if "activated_at" in result:
            metrics.recovery_ended(metrics.ACTIVATION_DURATION, self.pipeline_name, result["activated_at"])
        return result

    def _finish(self, context: Context, result: dict[str, Any]) -> dict[str, Any]:
        record_asset_events(context, self.outlets, result)
        return result

    def _approval(self, context: Context) -> Approval:
        """The approver's answer, or a refusal (before any change) when there is no approving one."""
        task_id = self.approval_task_id
        if not isinstance(task_id, str) or not task_id:
            raise AirflowFailException(
                str(FelderaParameterError("approval_task_id", task_id, "the task id of an ApprovalOperator"))
            )
        ti = context["ti"]
        # A mapped activation has its own approval when the approval is mapped too (one per pipeline); otherwise
        # the one approval of the run covers every mapped activation.
        index = ti.map_index if ti.map_index is not None else -1
        value = ti.xcom_pull(task_ids=task_id, map_indexes=index) if index >= 0 else None
        answer = approval_of(value if value is not None else ti.xcom_pull(task_ids=task_id))
        if answer is None:
            raise AirflowFailException(
                f"refusing to activate '{self.pipeline_name}': task '{task_id}' recorded no approval (it did not "
                "run, or is not an ApprovalOperator). A failover that needs approval waits for it."
            )
        if not answer.approved:
            raise AirflowFailException(
                f"refusing to activate '{self.pipeline_name}': the failover was not approved in task '{task_id}'"
                + (f" (answered by {answer.by})" if answer.by else "")
            )
        self.log.info("Failover approved by %s at %s (task '%s')", answer.by, answer.at, task_id)
        return answer
