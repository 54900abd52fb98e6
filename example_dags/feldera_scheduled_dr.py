"""Scheduled disaster recovery: every run sets a recovery point of a Feldera pipeline in object storage.

Three DAGs:

- ``feldera_dr_setup`` (run once, by hand, while the pipeline is stopped): point the pipeline's checkpoint sync at
  the DR bucket, with credentials from an Airflow connection.
- ``feldera_scheduled_dr``: on every run, take a checkpoint, push it to the bucket and wait (deferred, so no worker
  slot is held). The schedule is the push interval, and the synced uuid is recorded as an asset event.
- ``feldera_rpo_monitor``: every 15 minutes, check the recovery-point objective: the newest synced checkpoint
  must be under an hour old. It gives a sync on its way five minutes, then raises the alarm and fails.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.sdk import DAG, Asset, Context, Param

from airflow_checkpoint_sync.operators.checkpoint import SyncCheckpointOperator
from airflow_checkpoint_sync.operators.configure import ConfigureCheckpointSyncOperator
from airflow_checkpoint_sync.sensors.freshness import CheckpointFreshnessSensor

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
# A retry follows the sync, the start or the activation its first try made instead of repeating it, so retries are
# safe; they also cover Airflow 3.3.2 sometimes failing a deferred task whose trigger fired success
# (apache/airflow#67287), which would otherwise lose the run (and its asset event) silently.
RETRIES = {"retries": 2, "retry_delay": dt.timedelta(minutes=1)}
PARAMS = {
    "pipeline": Param("prod", type="string", description="The Feldera pipeline to protect"),
    "feldera_conn_id": Param("feldera_default", type="string", description="The Feldera connection"),
    "bucket": Param("feldera-dr/prod", type="string", description="bucket-name/prefix for the checkpoints"),
    "bucket_conn_id": Param(
        "feldera_bucket",
        type=["string", "null"],
        description="aws or google_cloud_platform connection; null: Feldera's own credentials",
    ),
}
# The asset downstream DAGs (a migration, a report) can be scheduled on. Airflow leaves "x-" schemes alone; a
# provider's scheme (s3://, say) would make it load every provider's asset handlers, and boto3, at each parse.
CHECKPOINTS = Asset("x-feldera://prod/checkpoints")

# [START howto_configure_checkpoint_sync]
with DAG(
    "feldera_dr_setup",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args=RETRIES,
    params=PARAMS,
    render_template_as_native_obj=True,
    tags=["feldera", "disaster-recovery"],
) as setup:
    ConfigureCheckpointSyncOperator(
        task_id="configure_sync",
        pipeline_name="{{ params.pipeline }}",
        feldera_conn_id="{{ params.feldera_conn_id }}",
        bucket="{{ params.bucket }}",
        bucket_conn_id="{{ params.bucket_conn_id }}",
        retention_min_count=48,  # keep two days of half-hourly recovery points
        retention_min_age=2,
    )
# [END howto_configure_checkpoint_sync]

# [START howto_sync_checkpoint]
with DAG(
    "feldera_scheduled_dr",
    schedule=dt.timedelta(minutes=30),  # the push interval: one recovery point per run
    start_date=START,
    catchup=False,
    default_args=RETRIES,
    max_active_runs=1,
    params={k: PARAMS[k] for k in ("pipeline", "feldera_conn_id")},
    tags=["feldera", "disaster-recovery"],
) as scheduled:
    SyncCheckpointOperator(
        task_id="sync_checkpoint",
        pipeline_name="{{ params.pipeline }}",
        feldera_conn_id="{{ params.feldera_conn_id }}",
        deferrable=True,
        timeout=dt.timedelta(minutes=20),
        outlets=[CHECKPOINTS],
    )
# [END howto_sync_checkpoint]


# [START howto_checkpoint_freshness_sensor]
def page_the_on_call(context: Context, measurement: dict[str, Any]) -> None:
    """Replace with your paging or incident tool; ``measurement`` has the uuid, its age and the objective."""
    logging.getLogger(__name__).critical("Feldera RPO missed: %s", measurement["message"])


with DAG(
    "feldera_rpo_monitor",
    schedule=dt.timedelta(minutes=15),
    start_date=START,
    catchup=False,
    default_args=RETRIES,
    max_active_runs=1,
    params={k: PARAMS[k] for k in ("pipeline", "feldera_conn_id")},
    tags=["feldera", "disaster-recovery"],
) as monitor:
    CheckpointFreshnessSensor(
        task_id="recovery_point_objective",
        pipeline_name="{{ params.pipeline }}",
        feldera_conn_id="{{ params.feldera_conn_id }}",
        max_age=dt.timedelta(hours=1),  # the RPO
        timeout=dt.timedelta(minutes=5),  # a sync on its way may still land
        poke_interval=30,
        deferrable=True,
        on_stale=page_the_on_call,
    )
# [END howto_checkpoint_freshness_sensor]
