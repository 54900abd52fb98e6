"""CheckpointFreshnessSensor: is the newest synced checkpoint within the recovery-point objective?"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_checkpoint_sync.links import FelderaPipelineLink
from airflow_checkpoint_sync.task_errors import check_pipeline_name, check_positive_seconds
from airflow_checkpoint_sync.task_hook import FelderaHookMixin

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable, Sequence

    from airflow.sdk import Context

#: The XCom key of the measurement, pushed whatever the verdict, for dashboards and alerts.
FRESHNESS_KEY = "freshness"


class CheckpointFreshnessSensor(FelderaHookMixin, BaseSensorOperator):
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

    template_fields: Sequence[str] = ("pipeline_name", "feldera_conn_id")
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
        self.max_age_seconds = check_positive_seconds(max_age, "max_age")
        self.on_stale = on_stale
        self.feldera_conn_id = feldera_conn_id
        self.deferrable = deferrable
        self._give_up_at: float | None = None

    def execute(self, context: Context) -> Any:
        check_pipeline_name(self.pipeline_name)
        self.publish_pipeline_link(context)
        if not self.deferrable:
            return super().execute(context)
        from airflow_checkpoint_sync.triggers.freshness import CheckpointFreshnessTrigger

        end_time = time.time() + float(self.timeout)
        event = self._look(end_time)
        if event is not None:
            return self._outcome(context, event)
        self.defer(
            trigger=CheckpointFreshnessTrigger(
                feldera_conn_id=self.feldera_conn_id,
                pipeline_name=self.pipeline_name,
                max_age_seconds=self.max_age_seconds,
                end_time=end_time,
                poll_interval=float(self.poke_interval),
            ),
            method_name="execute_complete",
            timeout=None,
        )

    def poke(self, context: Context) -> PokeReturnValue | bool:
        event = self._look(self._poke_deadline(context))
        if event is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._outcome(context, event))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: a fresh checkpoint succeeds, anything else fails (or skips)."""
        from airflow_checkpoint_sync.triggers.freshness import validate_freshness_event

        try:
            checked = validate_freshness_event(event)
        except ValueError as exc:
            raise AirflowException(str(exc)) from exc
        return self._outcome(context, checked)

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

    def _look(self, end_time: float) -> dict[str, Any] | None:
        from airflow_checkpoint_sync.triggers.freshness import read_freshness_event

        return read_freshness_event(
            self.hook, pipeline_name=self.pipeline_name, max_age_seconds=self.max_age_seconds, end_time=end_time
        )

    def _outcome(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        status = event["status"]
        if status == "error":
            # Feldera unreachable after the hook's retries is worth a task retry; a 4xx answer will not change.
            raise (AirflowException if event.get("transient") else AirflowFailException)(event["message"])
        measurement = {key: value for key, value in event.items() if key != "status"}
        context["ti"].xcom_push(key=FRESHNESS_KEY, value=measurement)
        if status == "fresh":
            self.log.info("%s", event["message"])
            return measurement
        self.log.warning("Recovery point objective missed: %s", event["message"])
        if self.on_stale is not None:
            self.on_stale(context, measurement)
        raise AirflowFailException(f"recovery point objective missed: {event['message']}")
