"""SyncCheckpointOperator: take a checkpoint, push it to the pipeline's bucket, and wait for the result."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow.sdk import ResumableJobMixin, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_checkpoint_sync import metrics
from airflow_checkpoint_sync.exceptions import Failure, classify
from airflow_checkpoint_sync.operators.base import FelderaPipelineOperator
from airflow_checkpoint_sync.rules import params
from airflow_checkpoint_sync.rules.status import (
    ACTIVE_STATUSES,
    PipelineGroup,
    newest_listed,
    pipeline_group,
)
from airflow_checkpoint_sync.rules.sync_config import current_sync
from airflow_checkpoint_sync.rules.waits import checkpoint_wait, look, new_checkpoint_wait, other_pushes_wait
from airflow_checkpoint_sync.task_support import (
    feldera_errors,
    outcome,
    poll,
    record_asset_events,
    task_error,
    validate_event,
)

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Mapping

    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from airflow_checkpoint_sync.triggers.checkpoint import CheckpointSyncTrigger
    from airflow_checkpoint_sync.triggers.pipeline import PipelineStatusTrigger

#: Restarts of the pipeline during one task try after which the operator stops starting new syncs.
MAX_RESTARTS = 1
#: How long to look for the effect of a checkpoint request whose response was lost.
LOST_RESPONSE_GRACE_S = 30.0


class SyncCheckpointOperator(ResumableJobMixin, FelderaPipelineOperator):
    """Take a checkpoint of a Feldera pipeline, push it to the pipeline's bucket, and wait for the result.

    The pipeline must be running or paused, with checkpoint sync configured
    (``runtime_config.storage.backend.config.sync``). Scheduled, this is the push interval of a disaster-recovery
    plan: each run sets a recovery point and records its uuid.

    Before any wait the task pushes ``checkpoint_uuid`` and ``incarnation_uuid`` to XCom, so they are there even if
    the wait fails. A pipeline restart during the sync starts one new sync (logged). A retry of the task after a
    worker crash reattaches to the sync it started instead of starting another one. Mapped over many pipelines
    (``partial().expand()``), each mapped task follows its own sync.

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
        pipeline_name: str,
        feldera_conn_id: str = "feldera_default",
        take_checkpoint: bool = True,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 5.0,
        timeout: float | dt.timedelta = 3600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline_name = pipeline_name
        self.feldera_conn_id = feldera_conn_id
        self.take_checkpoint = take_checkpoint
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval, self.timeout = params.wait_settings(poll_interval, timeout)
        self._bucket: str | None = None
        self._end_time = 0.0
        self._synced_uuid: str | None = None
        self._published: dict[str, Any] | None = None

    # -- entry points --------------------------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        with feldera_errors("checking the parameters", self.pipeline_name):
            params.pipeline_name(self.pipeline_name)
        self._end_time = time.time() + self.timeout
        self.hook.deadline = self._end_time
        self._preflight()
        return self.execute_resumable(context)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """OpenLineage: the pipeline was read, its sync location written."""
        from airflow_checkpoint_sync import lineage

        written = lineage.location(self._bucket) if self._bucket else None
        return lineage.operator_lineage([lineage.pipeline(self.feldera_conn_id, self.pipeline_name)], [written])

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after the trigger fired: finish, or start over once after a pipeline restart."""
        from airflow_checkpoint_sync.triggers.checkpoint import CheckpointSyncTrigger

        checked = validate_event(event, CheckpointSyncTrigger)
        # A resumed task is a new operator instance: what execute() knew comes back in the trigger's echo.
        self._end_time = self.hook.deadline = float(checked["echo"]["end_time"])
        self._bucket = checked["echo"].get("bucket")
        return self._finish(context, checked)

    # -- ResumableJobMixin ---------------------------------------------------------------------------------------
    def submit_job(self, context: Context) -> dict[str, Any]:
        if self.take_checkpoint:
            self._checkpoint()
        started = self._start_sync()
        self._publish(context, started)
        return started

    def get_job_status(self, external_id: Any, context: Context) -> str:
        event = self._trigger(external_id, restarts=0).look(self.hook)
        if event is None or event["status"] == "timeout":
            return "in_progress"
        if event["status"] == "error":
            outcome(event)
        return str(event["status"])

    def is_job_active(self, status: str) -> bool:
        return status == "in_progress"

    def is_job_succeeded(self, status: str) -> bool:
        return status == "success"

    # The mixin returns this method's value as the task's result when it reattaches to a running sync.
    def poll_until_complete(self, external_id: Any, context: Context) -> str | None:  # type: ignore[override]
        self._publish(context, external_id)
        if not self.wait_for_completion:
            return str(external_id["checkpoint_uuid"])
        return self._wait(context, external_id, restarts=0)

    def get_job_result(self, external_id: Any, context: Context) -> str:
        if self._published is None:
            # A retry that found an earlier try's sync already done: Airflow clears a try's XComs, so this one
            # publishes what every try does (a downstream status sensor templated on them reads it).
            self._publish(context, external_id)
        # After a restart the wait followed a newer sync than the one submitted first.
        uuid = self._synced_uuid or str(external_id["checkpoint_uuid"])
        if self.wait_for_completion:
            self._record_asset_event(context, uuid)
        return uuid

    # -- steps ---------------------------------------------------------------------------------------------------
    def _preflight(self) -> None:
        """Everything that can be checked without changing anything: edition, pipeline, state, sync config."""
        pipeline = self.read_pipeline()
        hosts = (pipeline.get("runtime_config") or {}).get("hosts") or 1
        if isinstance(hosts, int) and hosts > 1:
            raise AirflowFailException(
                f"pipeline '{self.pipeline_name}' runs on {hosts} hosts: Feldera refuses POST /checkpoint/sync on a "
                "multihost pipeline, whose checkpoints its coordinator syncs host by host; this operator syncs "
                "single-host pipelines only"
            )
        group = pipeline_group(pipeline)
        status = pipeline.get("deployment_status")
        if group is PipelineGroup.STANDBY:
            raise AirflowFailException(
                f"pipeline '{self.pipeline_name}' is in Standby: a standby pulls checkpoints, it cannot take or push "
                "them. Sync on the primary, or activate the standby first (ActivateStandbyOperator)."
            )
        if group is PipelineGroup.TRANSITIONAL and pipeline.get("deployment_desired_status") in ACTIVE_STATUSES:
            # Restarting, replaying, bootstrapping or unreachable for a while: a scheduled sync waits for it within
            # its timeout, and a timeout leaves the task's retries to try again.
            self.log.info(
                "Pipeline '%s' is %s on its way to %s; waiting for it before the checkpoint",
                self.pipeline_name,
                status,
                pipeline.get("deployment_desired_status"),
            )
            outcome(self.wait_for(self._running_trigger(0), deferrable=False))
        elif group not in (PipelineGroup.RUNNING, PipelineGroup.PAUSED):
            raise AirflowFailException(
                f"pipeline '{self.pipeline_name}' is {status}: it must be Running or Paused to take and sync a "
                "checkpoint. Start it first."
            )

        sync = current_sync(pipeline.get("runtime_config"))
        if sync is None:
            raise AirflowFailException(
                f"pipeline '{self.pipeline_name}' has no checkpoint sync configured "
                "(runtime_config.storage.backend.config.sync). Configure a bucket first, for example with "
                "ConfigureCheckpointSyncOperator."
            )
        self._bucket = str(sync.get("bucket") or "") or None

    def _checkpoint(self) -> None:
        """Take a checkpoint and wait until it is complete (a restart re-issues it once)."""
        baseline = self._newest_local()
        for attempt in range(MAX_RESTARTS + 1):
            try:
                response = self.hook.take_checkpoint(self.pipeline_name)
            except Exception as exc:
                if classify(exc, idempotent=False) is Failure.MAYBE_APPLIED:
                    self._adopt_lost_checkpoint(baseline, exc)
                    return
                raise task_error(exc, "taking a checkpoint", self.pipeline_name, idempotent=False) from exc
            seq, incarnation = int(response["checkpoint_sequence_number"]), response.get("incarnation_uuid")
            self.log.info("Checkpoint %d of pipeline '%s' requested", seq, self.pipeline_name)
            event = poll(
                lambda: self._checkpoint_look(seq, incarnation),  # noqa: B023 - called only in this iteration
                poll_interval=min(self.poll_interval, 1.0),
                end_time=self._end_time,
            )
            if event["status"] == "restarted" and attempt < MAX_RESTARTS:
                self.log.warning("%s; taking a new one", event["message"])
                continue
            outcome(event)
            self.log.info("%s", event["message"])
            return

    def _checkpoint_look(self, seq: int, incarnation: str | None) -> dict[str, Any] | None:
        from airflow_checkpoint_sync.hooks.feldera_api import read_checkpoint_status

        return look(
            lambda: self.hook.run(read_checkpoint_status(self.pipeline_name, incarnation)),
            lambda payload, error, now: checkpoint_wait(
                pipeline_name=self.pipeline_name,
                sequence_number=seq,
                payload=payload,
                error=error,
                end_time=self._end_time,
                now=now,
            ),
        )

    def _adopt_lost_checkpoint(self, baseline: str | None, error: Exception) -> None:
        """The checkpoint request may have reached Feldera: look for its effect instead of sending it again."""
        self.log.warning("The answer to the checkpoint request was lost (%s); looking for a new checkpoint", error)
        end_time = min(time.time() + LOST_RESPONSE_GRACE_S, self._end_time)
        event = poll(
            lambda: look(
                self._newest_local,
                lambda newest, err, now: new_checkpoint_wait(
                    pipeline_name=self.pipeline_name,
                    baseline=baseline,
                    newest=newest,
                    error=err,
                    end_time=end_time,
                    now=now,
                ),
            ),
            poll_interval=min(self.poll_interval, 1.0),
            end_time=end_time,
        )
        if event["status"] == "timeout":
            raise AirflowException(f"{event['message']} within {LOST_RESPONSE_GRACE_S:.0f}s. ({error})")
        outcome(event)
        self.log.info("%s", event["message"])

    def _start_sync(self) -> dict[str, Any]:
        """``POST /checkpoint/sync``; a lost answer is resolved by reading the sync status, never by re-sending."""
        before = self._status_before()
        stale = None if self.take_checkpoint else _failure_of(before)
        self._after_other_pushes(before)
        try:
            response = self.hook.sync_checkpoint(self.pipeline_name)
        except Exception as exc:
            if classify(exc, idempotent=False) is Failure.MAYBE_APPLIED:
                return self._adopt_lost_sync(exc, before)
            if getattr(exc, "status", None) == 400 and "checkpoint" in str(getattr(exc, "message", "")).lower():
                raise AirflowFailException(
                    f"pipeline '{self.pipeline_name}' has no local checkpoint to sync ({exc}). Use "
                    "take_checkpoint=True, or enable fault tolerance so Feldera checkpoints periodically."
                ) from exc
            raise task_error(exc, "starting the sync", self.pipeline_name, idempotent=False) from exc
        started = {
            "checkpoint_uuid": str(response["checkpoint_uuid"]),
            "incarnation_uuid": response.get("incarnation_uuid"),
        }
        if stale is not None and stale[0] == started["checkpoint_uuid"]:
            started["stale_failure"] = stale[1]
        self.log.info("Sync of checkpoint %s of pipeline '%s' started", started["checkpoint_uuid"], self.pipeline_name)
        return started

    def _status_before(self) -> dict[str, Any] | None:
        """The sync status before this task asks for a push, or None if it cannot be read (the push decides)."""
        try:
            return self.hook.sync_status(self.pipeline_name)
        except Exception as exc:  # only guards (a stale failure, another run's push); the sync itself decides
            self.log.info("Could not read the sync status before the sync (%s)", exc)
            return None

    def _after_other_pushes(self, before: Mapping[str, Any] | None) -> None:
        """Another run's push under way on this pipeline: join it if it is this checkpoint, else wait until it ends.

        Feldera 0.347+ lists the manual pushes under way (``running``); older servers do not, and two runs' pushes
        may then overlap, as Feldera itself allows.
        """
        running = (before or {}).get("running")
        if not isinstance(running, list) or not running:
            return
        mine = self._newest_local()
        if mine in running:
            self.log.info(
                "Checkpoint %s of pipeline '%s' is already being pushed (by another run, or an earlier try); "
                "joining that push instead of starting a second",
                mine,
                self.pipeline_name,
            )
            return
        others = [str(uuid) for uuid in running]
        self.log.warning(
            "Pipeline '%s' is already pushing %s (started by another run); waiting for that push to end before "
            "pushing %s, so that the two runs do not write its bucket at once",
            self.pipeline_name,
            ", ".join(others),
            mine,
        )
        event = poll(
            lambda: look(
                lambda: self.hook.sync_status(self.pipeline_name),
                lambda status, error, now: other_pushes_wait(
                    pipeline_name=self.pipeline_name,
                    mine=mine,
                    others=others,
                    status=status,
                    error=error,
                    end_time=self._end_time,
                    now=now,
                ),
            ),
            poll_interval=self.poll_interval,
            end_time=self._end_time,
        )
        outcome(event)
        self.log.info("%s", event["message"])

    def _adopt_lost_sync(self, error: Exception, before: Mapping[str, Any] | None) -> dict[str, Any]:
        self.log.warning("The answer to the sync request was lost (%s); reading the sync status", error)
        newest = self._newest_local()
        with feldera_errors("reading the sync status after a lost answer", self.pipeline_name):
            incarnation = self.hook.get_stats(self.pipeline_name)["global_metrics"].get("incarnation_uuid")
            status = self.hook.sync_status(self.pipeline_name, incarnation)
        failure = status.get("failure") or {}
        # A failure that was there before the request is an earlier push's (Feldera 0.337 keeps it visible while
        # the same checkpoint is pushed again): no evidence that this request started anything.
        earlier = failure and failure == ((before or {}).get("failure") or {})
        touched = {status.get("success"), None if earlier else failure.get("uuid"), *(status.get("running") or [])}
        if newest is not None and newest in touched:
            self.log.info("The sync of %s had started; following it", newest)
            return {"checkpoint_uuid": newest, "incarnation_uuid": incarnation}
        if "running" in status:
            # This Feldera joins a repeated request to a sync already running (PR #6930), so asking again is safe.
            self.log.info("No sync of %s had started; asking again", newest)
            return self._start_sync()
        if earlier and newest is not None and failure.get("uuid") == newest and failure.get("error") is not None:
            # Most likely pushing again behind the failure it still shows: follow it, that failure excluded, so the
            # wait ends on this push's own outcome (or at the deadline, for the task's retry, if none started).
            self.log.info(
                "The sync of %s may have started behind an earlier failure of it that Feldera still shows; following "
                "it, not taking that failure for its outcome",
                newest,
            )
            return {"checkpoint_uuid": newest, "incarnation_uuid": incarnation, "stale_failure": str(failure["error"])}
        raise AirflowException(
            f"the sync request to pipeline '{self.pipeline_name}' got no answer and this Feldera cannot say whether it "
            f"started; not re-sending it blindly. The task will retry. ({error})"
        )

    def _trigger(self, started: dict[str, Any], restarts: int) -> CheckpointSyncTrigger:
        from airflow_checkpoint_sync.triggers.checkpoint import CheckpointSyncTrigger

        return CheckpointSyncTrigger(
            feldera_conn_id=self.feldera_conn_id,
            pipeline_name=self.pipeline_name,
            checkpoint_uuid=str(started["checkpoint_uuid"]),
            incarnation_uuid=started.get("incarnation_uuid"),
            end_time=self._end_time,
            poll_interval=self.poll_interval,
            echo={"restarts": restarts, "end_time": self._end_time, "bucket": self._bucket},
            stale_failure=started.get("stale_failure"),
        )

    def _wait(self, context: Context, started: dict[str, Any], restarts: int) -> str:
        return self._finish(context, self.wait_for(self._trigger(started, restarts), deferrable=self.deferrable))

    def _finish(self, context: Context, event: dict[str, Any]) -> str:
        restarts = int(event["echo"].get("restarts") or 0)
        if event["status"] == "restarted":
            if restarts >= MAX_RESTARTS:
                raise AirflowException(f"{event['message']}; it restarted again after a new sync was started")
            # Feldera tells of a restart at once, while the new process may initialize and replay for minutes: wait
            # for its controller within the task's deadline (in the triggerer when deferrable), then push again.
            self.log.warning("%s; waiting for the new process to run, then starting a new sync", event["message"])
            ready = self.wait_for(
                self._running_trigger(restarts + 1), deferrable=self.deferrable, method_name="resume_after_restart"
            )
            return self._sync_again(context, ready)
        outcome(event)
        self.log.info("%s", event["message"])
        self._synced_uuid = str(event["checkpoint_uuid"])
        metrics.sync_ended(self.pipeline_name, self._synced_uuid)
        self._record_asset_event(context, self._synced_uuid)
        return self._synced_uuid

    def resume_after_restart(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after the restarted pipeline reached Running or Paused (or did not) in the triggerer."""
        from airflow_checkpoint_sync.triggers.pipeline import PipelineStatusTrigger

        checked = validate_event(event, PipelineStatusTrigger)
        self._end_time = self.hook.deadline = float(checked["echo"]["end_time"])
        self._bucket = checked["echo"].get("bucket")
        return self._sync_again(context, checked)

    def _running_trigger(self, restarts: int) -> PipelineStatusTrigger:
        from airflow_checkpoint_sync.triggers.pipeline import PipelineStatusTrigger

        return PipelineStatusTrigger(
            feldera_conn_id=self.feldera_conn_id,
            pipeline_name=self.pipeline_name,
            targets=list(ACTIVE_STATUSES),
            end_time=self._end_time,
            poll_interval=self.poll_interval,
            echo={"restarts": restarts, "end_time": self._end_time, "bucket": self._bucket},
        )

    def _sync_again(self, context: Context, ready: dict[str, Any]) -> str:
        """The restarted pipeline runs again (``ready``'s outcome): push its newest checkpoint and wait for it."""
        outcome(ready)  # not back by the deadline: a timeout, which the task's retries may outlast
        started = self._start_sync()
        self._publish(context, started)
        return self._wait(context, started, int(ready["echo"]["restarts"]))

    # -- helpers -------------------------------------------------------------------------------------------------
    def _publish(self, context: Context, started: dict[str, Any]) -> None:
        self._published = started
        ti = context["ti"]
        ti.xcom_push(key="checkpoint_uuid", value=started["checkpoint_uuid"])
        ti.xcom_push(key="incarnation_uuid", value=started.get("incarnation_uuid"))
        task_state_store = context.get("task_state_store")  # type: ignore[call-overload]
        if task_state_store is not None:
            task_state_store.set(self.external_id_key, started)

    def _record_asset_event(self, context: Context, uuid: str) -> None:
        extra = {"pipeline_name": self.pipeline_name, "checkpoint_uuid": uuid, "bucket": self._bucket}
        record_asset_events(context, self.outlets, extra)

    def _newest_local(self) -> str | None:
        with feldera_errors("listing local checkpoints", self.pipeline_name):
            checkpoints = self.hook.list_checkpoints(self.pipeline_name)
        return newest_listed(checkpoints)


def _failure_of(status: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """The failure Feldera shows before a push of an existing checkpoint is asked for: on a 0.337-era server it stays
    visible while the same checkpoint is pushed again, and must not be taken for that push's outcome."""
    failure = (status or {}).get("failure") or {}
    if failure.get("uuid") and failure.get("error") is not None:
        return str(failure["uuid"]), str(failure["error"])
    return None
