"""CheckpointStatusSensor: wait for the result of a checkpoint sync, in poke, reschedule or deferrable mode."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout

from airflow_checkpoint_sync.links import FelderaPipelineLink
from airflow_checkpoint_sync.status import is_uuid
from airflow_checkpoint_sync.task_errors import check_pipeline_name
from airflow_checkpoint_sync.task_hook import FelderaHookMixin

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class CheckpointStatusSensor(FelderaHookMixin, BaseSensorOperator):
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
    :return: the checkpoint uuid, once synced. ``soft_fail`` turns a failed or timed-out wait into a skip.
    """

    template_fields: Sequence[str] = ("pipeline_name", "checkpoint_uuid", "incarnation_uuid", "feldera_conn_id")
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline_name = pipeline_name
        self.checkpoint_uuid = checkpoint_uuid
        self.incarnation_uuid = incarnation_uuid
        self.feldera_conn_id = feldera_conn_id
        self.deferrable = deferrable

    def _validate(self) -> None:
        check_pipeline_name(self.pipeline_name)
        if not is_uuid(self.checkpoint_uuid):
            raise AirflowFailException(
                f"checkpoint_uuid={self.checkpoint_uuid!r} is not valid: a checkpoint uuid (lower case), e.g. the "
                "'checkpoint_uuid' XCom of a SyncCheckpointOperator task"
            )
        if self.incarnation_uuid in ("", "None"):
            self.incarnation_uuid = None  # an XCom template that rendered nothing
        if self.incarnation_uuid is not None and not is_uuid(self.incarnation_uuid):
            raise AirflowFailException(
                f"incarnation_uuid={self.incarnation_uuid!r} is not valid: None or a uuid (lower case), e.g. the "
                "'incarnation_uuid' XCom of a SyncCheckpointOperator task"
            )

    def execute(self, context: Context) -> Any:
        self._validate()
        self.publish_pipeline_link(context)
        if not self.deferrable:
            return super().execute(context)
        from airflow_checkpoint_sync.triggers.checkpoint import CheckpointSyncTrigger

        event = self._event(math.inf)
        if event is not None:
            return self._outcome(event)
        self.defer(
            trigger=CheckpointSyncTrigger(
                feldera_conn_id=self.feldera_conn_id,
                pipeline_name=self.pipeline_name,
                checkpoint_uuid=self.checkpoint_uuid,
                incarnation_uuid=self.incarnation_uuid,
                end_time=time.time() + float(self.timeout),
                poll_interval=float(self.poke_interval),
            ),
            method_name="execute_complete",
            timeout=None,
        )

    def poke(self, context: Context) -> PokeReturnValue | bool:
        event = self._event(math.inf)
        if event is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._outcome(event))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after the trigger fired; any outcome but success fails (or skips, with ``soft_fail``)."""
        from airflow_checkpoint_sync.triggers.checkpoint import validate_event

        try:
            checked = validate_event(event)
        except ValueError as exc:
            raise AirflowException(str(exc)) from exc
        if checked["status"] == "timeout":
            raise AirflowSensorTimeout(checked["message"])
        return self._outcome(checked)

    def _event(self, end_time: float) -> dict[str, Any] | None:
        from airflow_checkpoint_sync.triggers.checkpoint import read_sync_event

        return read_sync_event(
            self.hook,
            pipeline_name=self.pipeline_name,
            checkpoint_uuid=self.checkpoint_uuid,
            incarnation_uuid=self.incarnation_uuid,
            end_time=end_time,
        )

    def _outcome(self, event: dict[str, Any]) -> str:
        if event["status"] == "success":
            self.log.info("%s", event["message"])
            return str(event["checkpoint_uuid"])
        if event["status"] == "error" and event.get("transient"):
            # Feldera unreachable after the hook's retries: a task retry may well succeed.
            raise AirflowException(event["message"])
        raise AirflowFailException(event["message"])
