"""Every operator and sensor mapped over pipelines (``partial().expand()`` and ``expand_kwargs``), in every mode it
offers, with retries: the way DR DAGs for a fleet are written. Only the provider's documented public API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Asset, task

from airflow_checkpoint_sync.operators.checkpoint import SyncCheckpointOperator
from airflow_checkpoint_sync.operators.configure import ConfigureCheckpointSyncOperator
from airflow_checkpoint_sync.operators.drill import RestoreDrillOperator
from airflow_checkpoint_sync.operators.replicate import ReplicateCheckpointsOperator
from airflow_checkpoint_sync.operators.restore import RestoreCheckpointOperator
from airflow_checkpoint_sync.operators.standby import ActivateStandbyOperator
from airflow_checkpoint_sync.operators.verify import VerifyCheckpointsOperator
from airflow_checkpoint_sync.sensors.checkpoint import CheckpointStatusSensor
from airflow_checkpoint_sync.sensors.freshness import CheckpointFreshnessSensor

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PIPELINES = ["fleet-a", "fleet-b", "fleet-c"]
COPIES = ["copy-a", "copy-b"]
RETRY: dict[str, Any] = {"retries": 1, "retry_delay": dt.timedelta(seconds=0)}
FAST: dict[str, Any] = {"poll_interval": 0.2, "timeout": 30, **RETRY}
SENSOR: dict[str, Any] = {"poke_interval": 0.2, "timeout": 30, **RETRY}


def dag(dag_id: str) -> DAG:
    return DAG(dag_id, schedule=None, start_date=START, catchup=False, params={"bucket": "bucket", "conn": "s3_dr"})


for mode in ("worker", "deferred"):
    with dag(f"mapped_sync_{mode}"):
        # [START howto_mapped_sync]
        SyncCheckpointOperator.partial(
            task_id="sync", deferrable=mode == "deferred", outlets=[Asset("x-feldera://fleet")], **FAST
        ).expand(pipeline_name=PIPELINES)
        # [END howto_mapped_sync]

    with dag(f"mapped_sync_kwargs_{mode}"):
        SyncCheckpointOperator.partial(task_id="sync", deferrable=mode == "deferred", **FAST).expand_kwargs(
            [{"pipeline_name": "fleet-a"}, {"pipeline_name": "fleet-b", "take_checkpoint": False}]
        )

    with dag(f"mapped_restore_{mode}"):
        RestoreCheckpointOperator.partial(
            task_id="restore", bucket_conn_id="{{ params.conn }}", deferrable=mode == "deferred", **FAST
        ).expand_kwargs(
            [
                {
                    "pipeline_name": copy,
                    "bucket": "{{ params.bucket }}/" + copy,
                    "read_bucket": "{{ params.bucket }}/" + source,
                    "checkpoint": "latest",
                }
                for copy, source in zip(COPIES, PIPELINES, strict=False)
            ]
        )

    with dag(f"mapped_activate_{mode}"):
        ActivateStandbyOperator.partial(task_id="activate", deferrable=mode == "deferred", **FAST).expand(
            pipeline_name=COPIES
        )

# A fleet failover with one approval per standby: the mapped activation reads its own map index's answer.
with dag("mapped_approved_activate"):
    approvals = ApprovalOperator.partial(task_id="approve", params={"allow_stale_checkpoint": False}).expand(
        subject=[f"Fail over to {name}?" for name in COPIES]
    )
    activations = ActivateStandbyOperator.partial(task_id="activate", approval_task_id="approve", **FAST).expand(
        pipeline_name=COPIES
    )
    approvals >> activations


@task
def uuids_by_pipeline(uuids: list[str]) -> list[dict[str, str]]:
    return [{"pipeline_name": name, "checkpoint_uuid": uuid} for name, uuid in zip(PIPELINES, uuids, strict=True)]


for mode in ("poke", "reschedule", "deferred"):
    waits = {"deferrable": True} if mode == "deferred" else {"mode": mode}
    with dag(f"mapped_status_{mode}"):
        started = SyncCheckpointOperator.partial(task_id="start", wait_for_completion=False, **RETRY).expand(
            pipeline_name=PIPELINES
        )
        CheckpointStatusSensor.partial(task_id="wait", **SENSOR, **waits).expand_kwargs(
            uuids_by_pipeline(started.output)
        )

    with dag(f"mapped_freshness_{mode}"):
        CheckpointFreshnessSensor.partial(task_id="rpo", max_age=3600, **SENSOR, **waits).expand(
            pipeline_name=PIPELINES
        )

with dag("mapped_configure"):
    ConfigureCheckpointSyncOperator.partial(
        task_id="configure", bucket_conn_id="{{ params.conn }}", retention_min_count=3, **RETRY
    ).expand_kwargs([{"pipeline_name": copy, "bucket": "{{ params.bucket }}/" + copy} for copy in COPIES])

with dag("mapped_replicate"):
    ReplicateCheckpointsOperator.partial(
        task_id="replicate", source_conn_id="{{ params.conn }}", destination_conn_id="{{ params.conn }}", **RETRY
    ).expand_kwargs(
        [
            {"source": "{{ params.bucket }}/" + name, "destination": "{{ params.bucket }}/replicas/" + name}
            for name in PIPELINES[:2]
        ]
    )

with dag("mapped_verify"):
    VerifyCheckpointsOperator.partial(task_id="verify", store_conn_id="{{ params.conn }}", **RETRY).expand_kwargs(
        [{"location": "{{ params.bucket }}/" + name, "pipeline_name": name} for name in PIPELINES[:2]]
    )

with dag("mapped_drill"):
    RestoreDrillOperator.partial(
        task_id="drill", bucket_conn_id="{{ params.conn }}", poll_interval=0.2, timeout=60, deferrable=True, **RETRY
    ).expand_kwargs(
        [
            {"pipeline_name": name, "sql_checks": [{"sql": "SELECT COUNT(*) FROM orders", "expect": 10 * (i + 1)}]}
            for i, name in enumerate(PIPELINES[:2])
        ]
    )
