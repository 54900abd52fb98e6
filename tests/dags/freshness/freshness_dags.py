"""CheckpointFreshnessSensor DAGs for the integration tests (dag.test()); only the provider's public API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, Context

from airflow_checkpoint_sync.sensors.freshness import CheckpointFreshnessSensor

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def raise_the_alarm(context: Context, measurement: dict[str, Any]) -> None:
    """The user callback: here it leaves the measurement where the test can see it."""
    context["ti"].xcom_push(key="alarm", value=measurement)


def freshness_dag(dag_id: str, **sensor_kwargs: Any) -> DAG:
    with DAG(dag_id, schedule=None, start_date=START, catchup=False, params={"pipeline": "prod"}) as dag:
        CheckpointFreshnessSensor(
            task_id="rpo",
            pipeline_name="{{ params.pipeline }}",
            on_stale=raise_the_alarm,
            poke_interval=0.2,
            **sensor_kwargs,
        )
    return dag


fresh_poke = freshness_dag("freshness_poke", max_age=3600, mode="poke")
fresh_reschedule = freshness_dag("freshness_reschedule", max_age=3600, mode="reschedule")
fresh_deferred = freshness_dag("freshness_deferred", max_age=dt.timedelta(hours=1), deferrable=True)
strict_poke = freshness_dag("freshness_strict_poke", max_age=1)
strict_deferred = freshness_dag("freshness_strict_deferred", max_age=1, deferrable=True)
strict_waiting = freshness_dag("freshness_strict_waiting", max_age=5, deferrable=True, timeout=30)
strict_waiting_reschedule = freshness_dag(
    "freshness_strict_waiting_reschedule", max_age=5, mode="reschedule", timeout=30
)
