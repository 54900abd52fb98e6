"""CheckpointFreshnessSensor: is the newest synced checkpoint within the recovery-point objective?"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowFailException

from airflow_checkpoint_sync import metrics
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
    from collections.abc import Callable, Mapping, Sequence

    from airflow.sdk import Context

    from airflow_checkpoint_sync.triggers.freshness import CheckpointFreshnessTrigger

#: The XCom key of the measurement, pushed whatever the verdict, for dashboards and alerts.
FRESHNESS_KEY = "freshness"


class CheckpointFreshnessSensor(FelderaTaskMixin, BaseSensorOperator):
    """Succeed while a pipeline's newest synced checkpoint is younger than ``max_age``; fail when it is older.

    The age comes from the checkpoint uuid itself (a UUIDv7 carries its creation time), measured against the
    worker's clock. The newest synced checkpoint is the one Feldera's sync status names, or, after a restart, the
    newest one listed in the bucket; reading either needs the pipeline to be running.

    By default the sensor looks once (``timeout=0``): a recovery-point check on a schedule. With a ``timeout`` it
    keeps looking that long for a fresh checkpoint, in poke, reschedule or deferrable mode, so a sync on its way can
    still arrive. When it gives up, it calls ``on_stale`` (if set) and fails; ``soft_fail`` makes that a skip.

    The measurement is in XCom under ``freshness`` whatever the verdict (and is the return value on success)::

        {"pipeline_name": "prod", "checkpoint_uuid": "0199...", "age_seconds": 42.0, "max_age_seconds": 900.0,
         "state": "fresh", "message": "..."}

    .. seealso::
        :ref:`howto/operator:CheckpointFreshnessSensor`

    :param pipeline_name: the Feldera pipeline. (templated)
    :param max_age: the recovery-point objective: how old the newest synced checkpoint may be, in seconds or as a
        timedelta.
    :param on_stale: called as ``on_stale(context, measurement)`` when the sensor gives up on a stale checkpoint or
        on none at all, before it fails: page someone, open an incident. Not called when Feldera cannot be read.
    :param feldera_conn_id: the ``feldera`` Airflow connection. (templated)
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``. ``poke_interval`` is
        its poll interval and ``timeout`` its deadline.
    :param timeout: how long to keep looking for a fresh checkpoint, in seconds or as a timedelta; 0 looks once.
    """

    template_fields: Sequence[str] = feldera_template_fields()
    operator_extra_links = (FelderaPipelineLink(),)
    ui_color = "#c7e3ff"

    def __init__(
        self,
        *,
        pipeline_name: str,
        max_age: float | dt.timedelta,
        on_stale: Callable[[Context, dict[str, Any]], None] | None = None,
        feldera_conn_id: str = "feldera_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        timeout: float | dt.timedelta = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(timeout=timeout, **kwargs)
        self.pipeline_name = pipeline_name
        self.max_age_seconds = params.positive_seconds(max_age, "max_age")
        self.on_stale = on_stale
        self.feldera_conn_id = feldera_conn_id
        self.deferrable = deferrable
        self._give_up_at: float | None = None

    def execute(self, context: Context) -> Any:
        with feldera_errors("checking the parameters", self.pipeline_name):
            params.pipeline_name(self.pipeline_name)
        self.check_connection()
        if not self.deferrable:
            return super().execute(context)
        trigger = self._trigger(time.time() + float(self.timeout))
        return self._outcome(context, self.wait_for(trigger, deferrable=True))

    def poke(self, context: Context) -> PokeReturnValue | bool:
        event = self._trigger(self._poke_deadline(context)).look(self.hook)
        if event is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._outcome(context, event))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: a fresh checkpoint succeeds, anything else fails (or skips)."""
        from airflow_checkpoint_sync.triggers.freshness import CheckpointFreshnessTrigger

        return self._outcome(context, validate_event(event, CheckpointFreshnessTrigger))

    def _trigger(self, end_time: float) -> CheckpointFreshnessTrigger:
        from airflow_checkpoint_sync.triggers.freshness import CheckpointFreshnessTrigger

        return CheckpointFreshnessTrigger(
            feldera_conn_id=self.feldera_conn_id,
            pipeline_name=self.pipeline_name,
            max_age_seconds=self.max_age_seconds,
            end_time=end_time,
            poll_interval=float(self.poke_interval),
        )

    def _poke_deadline(self, context: Context) -> float:
        # The last poke that still fits in `timeout` gives up with the measurement, before the base class would
        # time out with a generic message; in reschedule mode the wait began at the first reschedule.
        if self._give_up_at is None:
            started = time.time()
            if self.reschedule:
                first = context["ti"].get_first_reschedule_date(context)
                started = first.timestamp() if first else started
            self._give_up_at = started + float(self.timeout) - float(self.poke_interval)
        return self._give_up_at

    def _outcome(self, context: Context, event: Mapping[str, Any]) -> dict[str, Any]:
        if event["status"] == "error":
            outcome(event, rereads=True)  # Feldera could not be read: no measurement, no on_stale
        measurement = dict(event["measurement"])
        metrics.freshness_measured(measurement)
        context["ti"].xcom_push(key=FRESHNESS_KEY, value=measurement)
        if event["status"] == "fresh":
            self.log.info("%s", event["message"])
            return measurement
        self.log.warning("Recovery point objective missed: %s", event["message"])
        if self.on_stale is not None:
            self.on_stale(context, measurement)
        raise AirflowFailException(f"recovery point objective missed: {event['message']}")
