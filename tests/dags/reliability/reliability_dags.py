"""The three DR flows the fault matrix (tests/reliability) drives, each in a worker-bound and a deferred variant.

They mirror the example DAGs (scheduled DR, migration, failover) with short polls and one retry, as a DR DAG is
usually configured; only the provider's documented public API is used.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_checkpoint_sync.operators.checkpoint import SyncCheckpointOperator
from airflow_checkpoint_sync.operators.restore import RestoreCheckpointOperator
from airflow_checkpoint_sync.operators.standby import ActivateStandbyOperator

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PARAMS = {"primary": "prod", "standby": "staging", "bucket": "b/staging", "read_bucket": "b/prod", "bucket_conn": "s3"}
#: Per task try; the matrix's deadline for a whole run is derived from it.
TASK_TIMEOUT = 30
RETRY = {"retries": 1, "retry_delay": dt.timedelta(seconds=0)}


def _dag(dag_id: str) -> DAG:
    return DAG(
        dag_id, schedule=None, start_date=START, catchup=False, params=PARAMS, render_template_as_native_obj=True
    )


def _sync(deferrable: bool) -> SyncCheckpointOperator:
    return SyncCheckpointOperator(
        task_id="sync",
        pipeline_name="{{ params.primary }}",
        poll_interval=0.2,
        timeout=TASK_TIMEOUT,
        deferrable=deferrable,
        **RETRY,  # type: ignore[arg-type]
    )


for deferrable in (False, True):
    suffix = "_deferred" if deferrable else ""

    with _dag(f"reliability_scheduled_dr{suffix}"):
        _sync(deferrable)

    with _dag(f"reliability_migration{suffix}"):
        _sync(deferrable) >> RestoreCheckpointOperator(
            task_id="restore",
            pipeline_name="{{ params.standby }}",
            checkpoint="{{ ti.xcom_pull(task_ids='sync') }}",
            bucket="{{ params.bucket }}",
            read_bucket="{{ params.read_bucket }}",
            bucket_conn_id="{{ params.bucket_conn }}",
            poll_interval=0.2,
            timeout=TASK_TIMEOUT,
            deferrable=deferrable,
            **RETRY,  # type: ignore[arg-type]
        )

    with _dag(f"reliability_failover{suffix}"):
        ActivateStandbyOperator(
            task_id="activate",
            pipeline_name="{{ params.standby }}",
            primary_pipeline_name="{{ params.primary }}",
            poll_interval=0.2,
            timeout=TASK_TIMEOUT,
            deferrable=deferrable,
            **RETRY,  # type: ignore[arg-type]
        )
