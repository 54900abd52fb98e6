"""Operators for Feldera checkpoint sync."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow.sdk import ResumableJobMixin, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_checkpoint_sync.operators.base import WAIT_STATE_KEY, FelderaPipelineOperator
from airflow_checkpoint_sync.status import (
    INCARNATION_MISMATCH,
    CheckpointState,
    PipelineGroup,
    checkpoint_result,
    pipeline_group,
)
from airflow_checkpoint_sync.task_errors import check_pipeline_name, check_positive_seconds, wait_settings

if TYPE_CHECKING:
    import datetime as dt

    from airflow.sdk import Context

    from airflow_checkpoint_sync.hooks.feldera import FelderaHook

#: Restarts of the pipeline during one task try after which the operator stops starting new syncs.
MAX_RESTARTS = 1
#: How long to look for the effect of a checkpoint request whose response was lost.
LOST_RESPONSE_GRACE_S = 30.0


class SyncCheckpointOperator(ResumableJobMixin, FelderaPipelineOperator):
    """Take a checkpoint of a Feldera pipeline, push it to the pipeline's bucket, and wait for the result.

    The pipeline must be running or paused, with checkpoint sync configured
    (``runtime_config.storage.backend.config.sync``). Scheduled, this is the push interval of a disaster-recovery
    plan: each run sets a recovery point and records its uuid.

    Before any wait the task pushes ``checkpoint_uuid``, ``incarnation_uuid`` and the console link to XCom, so they
    are there even if the wait fails. A pipeline restart during the sync starts one new sync (logged). A retry of
    the task after a worker crash reattaches to the sync it started instead of starting another one.

    .. seealso::
        :ref:`howto/operator:SyncCheckpointOperator`

    :param pipeline_name: the Feldera pipeline. (templated)
    :param feldera_conn_id: the ``feldera`` Airflow connection. (templated)
    :param take_checkpoint: first take a new checkpoint and wait for it (``POST /checkpoint``), so the recovery point
        is this run's; False pushes the newest existing checkpoint.
    :param wait_for_completion: wait until the sync succeeds or fails; False returns once the sync has started.
    :param deferrable: wait in the triggerer instead of holding a worker slot; defaults to
        ``[operators] default_deferrable``.
    :param poll_interval: seconds between status reads.
    :param timeout: how long the whole task may wait for the checkpoint and the sync, in seconds or a timedelta.
        It bounds the wait only; a sync still running at the deadline is left to finish in Feldera.
    :return: the uuid of the synced checkpoint. When the task has outlets, each asset event's extra carries the
        pipeline, the uuid and the bucket.
    """

    external_id_key = "feldera_checkpoint_sync"

    def __init__(
        self,
        *,
        take_checkpoint: bool = True,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 5.0,
        timeout: float | dt.timedelta = 3600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.take_checkpoint = take_checkpoint
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval, self.timeout = wait_settings(poll_interval, timeout)
        self._bucket: str | None = None
        self._end_time = 0.0
        self._synced_uuid: str | None = None

    # -- entry points --------------------------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        check_pipeline_name(self.pipeline_name)
        poll = check_positive_seconds(self.poll_interval, "poll_interval")
        wait_s = check_positive_seconds(self.timeout, "timeout")
        self.poll_interval = poll
        self._end_time = time.time() + wait_s
        self._preflight(context)
        return self.execute_resumable(context)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after the trigger fired: validate the event and finish, or start over after a restart."""
        from airflow_checkpoint_sync.triggers.checkpoint import validate_event

        try:
            checked = validate_event(event)
        except ValueError as exc:
            raise AirflowException(str(exc)) from exc
        # A resumed task is a new operator instance: what execute() learnt was saved in XCom before deferring
        # (defer kwargs would do on a real triggerer, but dag.test() replaces them with the event).
        state = context["ti"].xcom_pull(task_ids=self.task_id, key=WAIT_STATE_KEY) or {}
        self._end_time = float(state.get("end_time") or time.time())
        self._bucket = state.get("bucket")
        return self._finish(context, checked, int(state.get("restarts") or 0))

    def on_kill(self) -> None:
        # Feldera has no API to cancel a checkpoint push; the sync finishes (or fails) on its own.
        super().on_kill()

    # -- ResumableJobMixin ---------------------------------------------------------------------------------------
    def submit_job(self, context: Context) -> dict[str, Any]:
        hook = self.hook
        if self.take_checkpoint:
            self._checkpoint(hook)
        started = self._start_sync(hook)
        self._publish(context, started)
        return started

    def get_job_status(self, external_id: Any, context: Context) -> str:
        try:
            progress = self.hook.sync_progress(
                self.pipeline_name, external_id["checkpoint_uuid"], external_id.get("incarnation_uuid")
            )
        except Exception as exc:
            if getattr(exc, "error_code", None) == INCARNATION_MISMATCH:
                return "restarted"
            raise
        return progress.result.state.value

    def is_job_active(self, status: str) -> bool:
        return status in ("in_progress", "unknown")

    def is_job_succeeded(self, status: str) -> bool:
        return status == "success"

    # The mixin returns this method's value as the task's result when it reattaches to a running sync.
    def poll_until_complete(self, external_id: Any, context: Context) -> str | None:  # type: ignore[override]
        self._publish(context, external_id)
        if not self.wait_for_completion:
            return str(external_id["checkpoint_uuid"])
        return self._wait(context, external_id, restarts=0)

    def get_job_result(self, external_id: Any, context: Context) -> str:
        # After a restart the wait followed a newer sync than the one submitted first.
        uuid = self._synced_uuid or str(external_id["checkpoint_uuid"])
        if self.wait_for_completion:
            self._record_asset_event(context, uuid)
        return uuid

    # -- steps ---------------------------------------------------------------------------------------------------
    def _preflight(self, context: Context) -> None:
        """Everything that can be checked without changing anything: edition, pipeline, state, sync config."""
        pipeline = self.read_pipeline(context)
        group = pipeline_group(pipeline)
        status = pipeline.get("deployment_status")
        if group is PipelineGroup.STANDBY:
            raise AirflowFailException(
                f"pipeline '{self.pipeline_name}' is in Standby: a standby pulls checkpoints, it cannot take or push "
                "them. Sync on the primary, or activate the standby first (ActivateStandbyOperator)."
            )
        if group not in (PipelineGroup.RUNNING, PipelineGroup.PAUSED):
            raise AirflowFailException(
                f"pipeline '{self.pipeline_name}' is {status}: it must be Running or Paused to take and sync a "
                "checkpoint. Start it first."
            )
        from airflow_checkpoint_sync.sync_config import current_sync

        sync = current_sync(pipeline.get("runtime_config"))
        if sync is None:
            raise AirflowFailException(
                f"pipeline '{self.pipeline_name}' has no checkpoint sync configured "
                "(runtime_config.storage.backend.config.sync). Configure a bucket first, for example with "
                "ConfigureCheckpointSyncOperator."
            )
        self._bucket = str(sync.get("bucket") or "") or None

    def _checkpoint(self, hook: FelderaHook) -> None:
        """Take a checkpoint and wait until it is complete (a restart re-issues it once)."""
        baseline = self._newest_local(hook)
        for attempt in range(MAX_RESTARTS + 1):
            try:
                response = hook.take_checkpoint(self.pipeline_name)
            except Exception as exc:
                if _maybe_applied(exc):
                    self._adopt_lost_checkpoint(hook, baseline, exc)
                    return
                raise self.failure(exc, "taking a checkpoint") from exc
            seq = int(response["checkpoint_sequence_number"])
            incarnation = response.get("incarnation_uuid")
            self.log.info("Checkpoint %d of pipeline '%s' requested", seq, self.pipeline_name)
            while True:
                try:
                    result = checkpoint_result(seq, hook.checkpoint_status(self.pipeline_name, incarnation))
                except Exception as exc:
                    if getattr(exc, "error_code", None) == INCARNATION_MISMATCH and attempt < MAX_RESTARTS:
                        self.log.warning(
                            "Pipeline '%s' restarted during checkpoint %d; taking a new one", self.pipeline_name, seq
                        )
                        break
                    raise self.failure(exc, "waiting for the checkpoint") from exc
                if result.state is CheckpointState.SUCCESS:
                    self.log.info("Checkpoint %d of pipeline '%s' is complete", seq, self.pipeline_name)
                    return
                if result.state is CheckpointState.UNKNOWN:
                    self.log.info("A later checkpoint superseded %d; the newest one will be synced", seq)
                    return
                if result.state is CheckpointState.FAILURE:
                    raise AirflowException(f"Feldera failed to make checkpoint {seq}: {result.error}")
                self._sleep_or_timeout(min(self.poll_interval, 1.0), f"checkpoint {seq}")
        raise AirflowException(f"pipeline '{self.pipeline_name}' kept restarting while a checkpoint was taken")

    def _adopt_lost_checkpoint(self, hook: FelderaHook, baseline: str | None, error: Exception) -> None:
        """The checkpoint request may have reached Feldera: look for its effect instead of sending it again."""
        self.log.warning("The answer to the checkpoint request was lost (%s); looking for a new checkpoint", error)
        grace_end = time.time() + LOST_RESPONSE_GRACE_S
        while time.time() < min(grace_end, self._end_time):
            newest = self._newest_local(hook)
            if newest is not None and newest != baseline:
                self.log.info("Checkpoint %s appeared; using it", newest)
                return
            time.sleep(min(self.poll_interval, 1.0))
        raise AirflowException(
            f"the checkpoint request to pipeline '{self.pipeline_name}' got no answer and no new checkpoint appeared "
            f"within {LOST_RESPONSE_GRACE_S:.0f}s; not re-sending it blindly. The task will retry. ({error})"
        )

    def _start_sync(self, hook: FelderaHook) -> dict[str, Any]:
        """``POST /checkpoint/sync``; a lost answer is resolved by reading the sync status, never by re-sending."""
        try:
            response = hook.sync_checkpoint(self.pipeline_name)
        except Exception as exc:
            if _maybe_applied(exc):
                return self._adopt_lost_sync(hook, exc)
            if getattr(exc, "status", None) == 400 and "checkpoint" in str(getattr(exc, "message", "")).lower():
                raise AirflowFailException(
                    f"pipeline '{self.pipeline_name}' has no local checkpoint to sync ({exc}). Use "
                    "take_checkpoint=True, or enable fault tolerance so Feldera checkpoints periodically."
                ) from exc
            raise self.failure(exc, "starting the sync") from exc
        started = {
            "checkpoint_uuid": str(response["checkpoint_uuid"]),
            "incarnation_uuid": response.get("incarnation_uuid"),
        }
        self.log.info("Sync of checkpoint %s of pipeline '%s' started", started["checkpoint_uuid"], self.pipeline_name)
        return started

    def _adopt_lost_sync(self, hook: FelderaHook, error: Exception) -> dict[str, Any]:
        self.log.warning("The answer to the sync request was lost (%s); reading the sync status", error)
        try:
            newest = self._newest_local(hook)
            incarnation = hook.get_stats(self.pipeline_name)["global_metrics"].get("incarnation_uuid")
            status = hook.sync_status(self.pipeline_name, incarnation)
        except Exception as exc:
            raise self.failure(exc, "reading the sync status after a lost answer") from exc
        touched = {status.get("success"), (status.get("failure") or {}).get("uuid"), *(status.get("running") or [])}
        if newest is not None and newest in touched:
            self.log.info("The sync of %s had started; following it", newest)
            return {"checkpoint_uuid": newest, "incarnation_uuid": incarnation}
        if "running" in status:
            # This Feldera joins a repeated request to a sync already running (PR #6930), so asking again is safe.
            self.log.info("No sync of %s had started; asking again", newest)
            return self._start_sync(hook)
        raise AirflowException(
            f"the sync request to pipeline '{self.pipeline_name}' got no answer and this Feldera cannot say whether it "
            f"started; not re-sending it blindly. The task will retry. ({error})"
        )

    def _wait(self, context: Context, started: dict[str, Any], restarts: int) -> str:
        from airflow_checkpoint_sync.triggers.checkpoint import CheckpointSyncTrigger

        uuid, incarnation = started["checkpoint_uuid"], started.get("incarnation_uuid")
        while True:
            event = self._read_event(uuid, incarnation)
            if event is not None:
                return self._finish(context, event, restarts)
            if self.deferrable:
                context["ti"].xcom_push(
                    key=WAIT_STATE_KEY,
                    value={"restarts": restarts, "end_time": self._end_time, "bucket": self._bucket},
                )
                self.defer(
                    trigger=CheckpointSyncTrigger(
                        feldera_conn_id=self.feldera_conn_id,
                        pipeline_name=self.pipeline_name,
                        checkpoint_uuid=uuid,
                        incarnation_uuid=incarnation,
                        end_time=self._end_time,
                        poll_interval=self.poll_interval,
                    ),
                    method_name="execute_complete",
                    # The trigger enforces the deadline itself and reports it as an event.
                    timeout=None,
                )
            time.sleep(max(0.0, min(self.poll_interval, self._end_time - time.time())))

    def _read_event(self, uuid: str, incarnation: str | None) -> dict[str, Any] | None:
        from airflow_checkpoint_sync.triggers.checkpoint import read_sync_event

        return read_sync_event(
            self.hook,
            pipeline_name=self.pipeline_name,
            checkpoint_uuid=uuid,
            incarnation_uuid=incarnation,
            end_time=self._end_time,
        )

    def _finish(self, context: Context, event: dict[str, Any], restarts: int) -> str:
        status = event["status"]
        if status == "success":
            self.log.info("%s", event["message"])
            self._synced_uuid = str(event["checkpoint_uuid"])
            self._record_asset_event(context, self._synced_uuid)
            return self._synced_uuid
        if status == "restarted":
            if restarts >= MAX_RESTARTS:
                raise AirflowException(f"{event['message']}; it restarted again after a new sync was started")
            self.log.warning("%s; starting a new sync for the new process", event["message"])
            started = self._start_sync(self.hook)
            self._publish(context, started)
            return self._wait(context, started, restarts + 1)
        if status == "failure":
            raise AirflowException(event["message"])
        if status == "timeout":
            raise AirflowException(f"{event['message']} (timeout={self.timeout})")
        raise AirflowException(event["message"])

    # -- helpers -------------------------------------------------------------------------------------------------
    def _publish(self, context: Context, started: dict[str, Any]) -> None:
        ti = context["ti"]
        ti.xcom_push(key="checkpoint_uuid", value=started["checkpoint_uuid"])
        ti.xcom_push(key="incarnation_uuid", value=started.get("incarnation_uuid"))
        task_state_store = context.get("task_state_store")  # type: ignore[call-overload]
        if task_state_store is not None:
            task_state_store.set(self.external_id_key, started)

    def _record_asset_event(self, context: Context, uuid: str) -> None:
        outlet_events = context.get("outlet_events")  # type: ignore[call-overload]
        if outlet_events is None:
            return
        for outlet in self.outlets:
            if type(outlet).__name__ == "Asset":
                outlet_events[outlet].extra.update(
                    {"pipeline_name": self.pipeline_name, "checkpoint_uuid": uuid, "bucket": self._bucket}
                )

    def _newest_local(self, hook: FelderaHook) -> str | None:
        try:
            checkpoints = hook.list_checkpoints(self.pipeline_name)
        except Exception as exc:
            raise self.failure(exc, "listing local checkpoints") from exc
        return str(checkpoints[-1]["uuid"]) if checkpoints else None

    def _sleep_or_timeout(self, seconds: float, what: str) -> None:
        if time.time() >= self._end_time:
            raise AirflowException(f"{what} of pipeline '{self.pipeline_name}' did not finish within timeout")
        time.sleep(max(0.0, min(seconds, self._end_time - time.time())))


def _maybe_applied(error: Exception) -> bool:
    """True when a request failed in a way that does not tell whether Feldera acted on it."""
    from airflow_checkpoint_sync.hooks.feldera_api import FelderaApiError, FelderaConnectionError

    if isinstance(error, FelderaConnectionError):
        return error.sent
    return isinstance(error, FelderaApiError) and error.status in (502, 504)
