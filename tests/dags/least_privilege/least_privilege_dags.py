"""Every task of the provider run with a Read-role API key (tests/integration/test_least_privilege.py): the tasks
that only read in one DAG, those that change pipelines, each on its own, in another."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_checkpoint_sync.operators.checkpoint import SyncCheckpointOperator
from airflow_checkpoint_sync.operators.configure import ConfigureCheckpointSyncOperator
from airflow_checkpoint_sync.operators.drill import RestoreDrillOperator
from airflow_checkpoint_sync.operators.restore import RestoreCheckpointOperator
from airflow_checkpoint_sync.operators.standby import ActivateStandbyOperator, FailoverReadinessOperator
from airflow_checkpoint_sync.operators.verify import VerifyCheckpointsOperator
from airflow_checkpoint_sync.sensors.checkpoint import CheckpointStatusSensor
from airflow_checkpoint_sync.sensors.freshness import CheckpointFreshnessSensor

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PARAMS = {"bucket": "b", "uuid": ""}
FAST = {"poll_interval": 0.2, "timeout": 30}

with DAG("read_only_reads", schedule=None, start_date=START, params=PARAMS):
    CheckpointStatusSensor(
        task_id="status", pipeline_name="prod", checkpoint_uuid="{{ params.uuid }}", poke_interval=0.2, timeout=30
    )
    CheckpointFreshnessSensor(task_id="freshness", pipeline_name="prod", max_age=3600, poke_interval=0.2)
    VerifyCheckpointsOperator(
        task_id="verify", store_conn_id="s3_dr", location="{{ params.bucket }}/prod", pipeline_name="prod"
    )
    FailoverReadinessOperator(task_id="readiness", pipeline_name="standby", primary_pipeline_name="prod")

with DAG("read_only_writes", schedule=None, start_date=START, params=PARAMS):
    SyncCheckpointOperator(task_id="sync", pipeline_name="prod", **FAST)  # type: ignore[arg-type]
    ConfigureCheckpointSyncOperator(
        task_id="configure", pipeline_name="spare", bucket="{{ params.bucket }}/spare", bucket_conn_id="s3_dr"
    )
    RestoreCheckpointOperator(
        task_id="restore",
        pipeline_name="spare",
        bucket="{{ params.bucket }}/spare",
        read_bucket="{{ params.bucket }}/prod",
        bucket_conn_id="s3_dr",
        **FAST,  # type: ignore[arg-type]
    )
    ActivateStandbyOperator(task_id="activate", pipeline_name="standby", **FAST)  # type: ignore[arg-type]
    RestoreDrillOperator(
        task_id="drill",
        pipeline_name="prod",
        scratch_bucket="{{ params.bucket }}/drill",
        bucket_conn_id="s3_dr",
        sql_checks=[{"sql": "SELECT COUNT(*) FROM orders", "min": 0}],
        **FAST,  # type: ignore[arg-type]
    )
