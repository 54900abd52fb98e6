"""DAGs the integration tests run with dag.test(); they use only the provider's documented public API."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Asset

from airflow_checkpoint_sync.operators.checkpoint import SyncCheckpointOperator
from airflow_checkpoint_sync.sensors.checkpoint import CheckpointStatusSensor

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PARAMS = {"pipeline": "prod", "timeout": 60}
CHECKPOINTS = Asset("s3://dr-bucket/prod")


def sync_dag(dag_id: str, **operator_kwargs: object) -> DAG:
    with DAG(dag_id, schedule=None, start_date=START, catchup=False, params=PARAMS) as dag:
        SyncCheckpointOperator(
            task_id="sync",
            pipeline_name="{{ params.pipeline }}",
            poll_interval=0.2,
            outlets=[CHECKPOINTS],
            **{"timeout": 30, **operator_kwargs},  # type: ignore[arg-type]
        )
    return dag


sync_in_worker = sync_dag("sync_in_worker", deferrable=False)
sync_short_timeout = sync_dag("sync_short_timeout", deferrable=False, timeout=3)
sync_deferred = sync_dag("sync_deferred", deferrable=True)
sync_deferred_short_timeout = sync_dag("sync_deferred_short_timeout", deferrable=True, timeout=3)
# Long enough to wait out a restarted process that initializes for a while.
sync_patient = sync_dag("sync_patient", deferrable=False, timeout=90)
sync_patient_deferred = sync_dag("sync_patient_deferred", deferrable=True, timeout=90)
sync_existing = sync_dag("sync_existing_checkpoint", deferrable=False, take_checkpoint=False)
sync_retried = sync_dag("sync_with_retries", deferrable=False, retries=1, retry_delay=dt.timedelta(seconds=0))


def sensor_dag(dag_id: str, **sensor_kwargs: object) -> DAG:
    with DAG(dag_id, schedule=None, start_date=START, catchup=False, params=PARAMS) as dag:
        # [START howto_checkpoint_status_sensor]
        start = SyncCheckpointOperator(
            task_id="sync",
            pipeline_name="{{ params.pipeline }}",
            wait_for_completion=False,
            deferrable=False,
        )
        wait = CheckpointStatusSensor(
            task_id="wait",
            pipeline_name="{{ params.pipeline }}",
            checkpoint_uuid="{{ ti.xcom_pull(task_ids='sync', key='checkpoint_uuid') }}",
            incarnation_uuid="{{ ti.xcom_pull(task_ids='sync', key='incarnation_uuid') }}",
            poke_interval=0.2,
            timeout=30,
            **sensor_kwargs,  # type: ignore[arg-type]
        )
        start >> wait
        # [END howto_checkpoint_status_sensor]
    return dag


with DAG("sync_retried_then_wait", schedule=None, start_date=START, catchup=False, params=PARAMS) as sync_then_wait:
    # The documented sync -> status-sensor pattern, with a retry that may find the first try's sync already done.
    SyncCheckpointOperator(
        task_id="sync",
        pipeline_name="{{ params.pipeline }}",
        poll_interval=0.2,
        timeout=30,
        retries=1,
        retry_delay=dt.timedelta(seconds=0),
    ) >> CheckpointStatusSensor(
        task_id="wait",
        pipeline_name="{{ params.pipeline }}",
        checkpoint_uuid="{{ ti.xcom_pull(task_ids='sync', key='checkpoint_uuid') }}",
        incarnation_uuid="{{ ti.xcom_pull(task_ids='sync', key='incarnation_uuid') }}",
        poke_interval=0.2,
        timeout=30,
    )

sensor_poke = sensor_dag("sensor_poke", mode="poke")
sensor_reschedule = sensor_dag("sensor_reschedule", mode="reschedule")
sensor_deferred = sensor_dag("sensor_deferred", deferrable=True)
sensor_soft_fail = sensor_dag("sensor_soft_fail", mode="poke", soft_fail=True)


def unknown_uuid_dag(dag_id: str, **sensor_kwargs: object) -> DAG:
    with DAG(dag_id, schedule=None, start_date=START, catchup=False, params={**PARAMS, "uuid": ""}) as dag:
        CheckpointStatusSensor(
            task_id="wait",
            pipeline_name="{{ params.pipeline }}",
            checkpoint_uuid="{{ params.uuid }}",
            poke_interval=0.2,
            **{"timeout": 120, "unknown_grace": 1, **sensor_kwargs},  # type: ignore[arg-type]
        )
    return dag


unknown_poke = unknown_uuid_dag("sensor_unknown_uuid_poke", mode="poke")
# Its timeout ends before its grace: the timeout must still say what the uuid was.
unknown_poke_short = unknown_uuid_dag("sensor_unknown_uuid_poke_short", mode="poke", timeout=2, unknown_grace=60)
unknown_reschedule_short = unknown_uuid_dag(
    "sensor_unknown_uuid_reschedule_short", mode="reschedule", timeout=2, unknown_grace=60
)
unknown_deferred = unknown_uuid_dag("sensor_unknown_uuid_deferred", deferrable=True)
