"""RestoreDrillOperator DAGs for the integration tests (dag.test()); only the provider's public API."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Asset

from airflow_checkpoint_sync.operators.drill import RestoreDrillOperator

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
#: An empty scratch or scratch_pipeline takes the drill's default (derived from its task instance).
PARAMS = {
    "pipeline": "prod",
    "scratch": "b/drill",
    "scratch_pipeline": "",
    "location": "",
    "checkpoint": "latest",
    "conn": "s3_dr",
}
DRILLS = Asset("x-feldera://prod/drills")
#: The tests' pipelines hold 12 records at the checkpoint they drill.
COUNT_IS_12 = [{"sql": "SELECT COUNT(*) AS n FROM orders", "expect": 12, "name": "all orders are back"}]


def drill_dag(dag_id: str, **kwargs: object) -> DAG:
    with DAG(dag_id, schedule=None, start_date=START, params=PARAMS) as dag:
        RestoreDrillOperator(
            task_id="drill",
            pipeline_name="{{ params.pipeline }}",
            scratch_bucket="{{ params.scratch }}",
            scratch_pipeline_name="{{ params.scratch_pipeline }}",
            location="{{ params.location }}",  # empty: the source pipeline's own sync bucket
            checkpoint="{{ params.checkpoint }}",
            bucket_conn_id="{{ params.conn }}",
            poll_interval=0.2,
            outlets=[DRILLS],
            **{"timeout": 60, **kwargs},  # type: ignore[arg-type]
        )
    return dag


def min_amount_positive(hook: object, scratch_pipeline_name: str) -> bool:
    """A user's own validation: the restored pipeline answers a query of its own."""
    rows = hook.query(scratch_pipeline_name, "SELECT MIN(amount) AS low FROM orders")  # type: ignore[attr-defined]
    return bool(rows[0]["low"] >= 0)


drill_worker = drill_dag(
    "drill_worker", sql_checks=[*COUNT_IS_12, {"sql": "SELECT MAX(id) FROM orders", "min": 1, "max": 11}]
)
drill_deferred = drill_dag("drill_deferred", sql_checks=COUNT_IS_12, validate=min_amount_positive, deferrable=True)
drill_failing = drill_dag("drill_failing", sql_checks=[{"sql": "SELECT COUNT(*) FROM orders", "expect": 999}])
drill_bad_sql = drill_dag("drill_bad_sql", sql_checks=[{"sql": "SELECT nonsense FROM nowhere", "expect": 1}])
drill_short_timeout = drill_dag("drill_short_timeout", sql_checks=COUNT_IS_12, timeout=3)
