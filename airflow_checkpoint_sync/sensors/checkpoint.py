"""CheckpointStatusSensor: wait for the result of a checkpoint sync, in poke, reschedule or deferrable mode."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowSensorTimeout

from airflow_checkpoint_sync.links import FelderaPipelineLink
from airflow_checkpoint_sync.rules import params
from airflow_checkpoint_sync.task_support import (
    FelderaTaskMixin,
    feldera_errors,
    feldera_template_fields,
    outcome,
    validate_event,
)

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Mapping, Sequence

    from airflow.sdk import Context

    from airflow_checkpoint_sync.triggers.checkpoint import CheckpointSyncTrigger


class CheckpointStatusSensor(FelderaTaskMixin, BaseSensorOperator):
    """Wait until the sync of a checkpoint uuid succeeds; fail with Feldera's error if it failed.

    Typically fed from a :class:`~airflow_checkpoint_sync.operators.checkpoint.SyncCheckpointOperator` started with
    ``wait_for_completion=False``::

        CheckpointStatusSensor(
            task_id="wait",
            pipeline_name="prod",
            checkpoint_uuid="{{ ti.xcom_pull(task_ids='sync', key='checkpoint_uuid') }}",
            incarnation_uuid="{{ ti.xcom_pull(task_ids='sync', key='incarnation_uuid') }}",
        )

    It decides with the same rule as the operator and its trigger: a uuid in ``success`` or ``periodic`` is synced;
    when Feldera's status cannot tell, a uuid listed in the bucket (``/checkpoints/remote``) is synced too.

    .. seealso::
        :ref:`howto/operator:CheckpointStatusSensor`

    :param pipeline_name: the Feldera pipeline. (templated)
    :param checkpoint_uuid: the checkpoint whose sync to wait for. (templated)
    :param incarnation_uuid: the pipeline process that started the sync, if known; a restart since then fails the
        sensor instead of leaving it waiting on a status that is gone. (templated)
    :param feldera_conn_id: the ``feldera`` Airflow connection. (templated)
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``. ``poke_interval`` is
        its poll interval and ``timeout`` its deadline.
    :param unknown_grace: how long a uuid that Feldera neither syncs nor lists in the bucket may stay so before the
        sensor fails for good (a uuid of another pipeline, a typo, a sync lost in a restart), in seconds or a
        timedelta; the sync started just before the sensor is given this long to show up.
    :return: the checkpoint uuid, once synced. ``soft_fail`` turns a failed or timed-out wait into a skip.
    """

    template_fields: Sequence[str] = feldera_template_fields("checkpoint_uuid", "incarnation_uuid")
    operator_extra_links = (FelderaPipelineLink(),)
    ui_color = "#c7e3ff"

    def __init__(
        self,
        *,
        pipeline_name: str,
        checkpoint_uuid: str,
        incarnation_uuid: str | None = None,
        feldera_conn_id: str = "feldera_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        unknown_grace: float | dt.timedelta = 60.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.unknown_grace = params.positive_seconds(unknown_grace, "unknown_grace")
        self._grace_until: float | None = None
        self._started = 0.0
        self.pipeline_name = pipeline_name
        self.checkpoint_uuid = checkpoint_uuid
        self.incarnation_uuid = incarnation_uuid
        self.feldera_conn_id = feldera_conn_id
        self.deferrable = deferrable

    def _validate(self) -> None:
        with feldera_errors("checking the parameters", self.pipeline_name):
            params.pipeline_name(self.pipeline_name)
            params.checkpoint_uuid(self.checkpoint_uuid)
            self.incarnation_uuid = params.optional_uuid(self.incarnation_uuid, "incarnation_uuid")

    def execute(self, context: Context) -> Any:
        started = time.time()
        self._validate()
        self.check_connection()
        if not self.deferrable:
            self._started = started
            return super().execute(context)
        self._grace_until = time.time() + self.unknown_grace
        return self._outcome(self.wait_for(self._trigger(time.time() + float(self.timeout)), deferrable=True))

    def poke(self, context: Context) -> PokeReturnValue | bool:
        if self._grace_until is None:
            # In reschedule mode each poke is a new process: the grace counts from the first one.
            first = context["ti"].get_first_reschedule_date(context) if self.reschedule else None
            self._started = first.timestamp() if first else self._started or time.time()
            self._grace_until = self._started + self.unknown_grace
        # The wait rule decides the deadline too, so a timeout says what the checkpoint was (in progress, or a uuid
        # Feldera does not know) rather than the base sensor's bare "timed out"; this clock starts before the base
        # sensor's, so the rule sees the deadline no later than the base sensor does.
        event = self._trigger(self._started + float(self.timeout)).look(self.hook)
        if event is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._outcome(event))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after the trigger fired; any outcome but success fails (or skips, with ``soft_fail``)."""
        from airflow_checkpoint_sync.triggers.checkpoint import CheckpointSyncTrigger

        return self._outcome(validate_event(event, CheckpointSyncTrigger))

    def _trigger(self, end_time: float) -> CheckpointSyncTrigger:
        from airflow_checkpoint_sync.triggers.checkpoint import CheckpointSyncTrigger

        return CheckpointSyncTrigger(
            feldera_conn_id=self.feldera_conn_id,
            pipeline_name=self.pipeline_name,
            checkpoint_uuid=self.checkpoint_uuid,
            incarnation_uuid=self.incarnation_uuid,
            end_time=end_time,
            poll_interval=float(self.poke_interval),
            unknown_grace_until=self._grace_until,
        )

    def _outcome(self, event: Mapping[str, Any]) -> str:
        outcome(event, on_timeout=AirflowSensorTimeout, rereads=True)
        self.log.info("%s", event["message"])
        return str(event["checkpoint_uuid"])
