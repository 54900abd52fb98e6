"""Cross-cloud replicas of the recovery points, and a DR drill that restores from one.

Three DAGs:

- ``feldera_replicate_checkpoints``: each time the scheduled-DR DAG records a new recovery point (its asset),
  copy the pipeline's sync bucket to a replica in another cloud: Azure Blob here; GCS or another S3 region work
  the same way. The replica's catalog is written last, so the replica is restorable at every moment. Then verify
  the replica: every checkpoint its catalog names is there in full, and the newest is recent.
- ``feldera_replicate_every_push``: the same, for a pipeline that pushes its checkpoints by itself
  (``push_interval``), which no Airflow task sees: an asset watcher (``RemoteCheckpointTrigger``) turns each new
  checkpoint in the bucket into an asset event. Use one of the two replication DAGs per source, not both.
- ``feldera_restore_from_azure`` (by hand: a DR drill, or the real thing when the primary's cloud is gone): Feldera
  restores only from S3-compatible storage, so copy the Azure replica back to an S3-compatible prefix, then start a
  pipeline from it with that prefix as ``read_bucket``.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Asset, AssetWatcher, Param

from airflow_checkpoint_sync.operators.replicate import ReplicateCheckpointsOperator
from airflow_checkpoint_sync.operators.restore import RestoreCheckpointOperator
from airflow_checkpoint_sync.operators.verify import VerifyCheckpointsOperator
from airflow_checkpoint_sync.triggers.remote_checkpoints import RemoteCheckpointTrigger

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
# A retry follows the sync, the start or the activation its first try made instead of repeating it, so retries are
# safe; they also cover Airflow 3.3.2 sometimes failing a deferred task whose trigger fired success
# (apache/airflow#67287), which would otherwise lose the run (and its asset event) silently.
RETRIES = {"retries": 2, "retry_delay": dt.timedelta(minutes=1)}
# The asset feldera_scheduled_dr updates after every synced recovery point.
CHECKPOINTS = Asset("x-feldera://prod/checkpoints")
PARAMS = {
    "source": Param("feldera-dr/prod", type="string", description="The pipeline's sync bucket/prefix"),
    "replica": Param("feldera-replica/prod", type="string", description="Azure container/prefix"),
}


# [START howto_replicate_checkpoints]
def replication_dag(dag_id: str, schedule: list[Asset]) -> DAG:
    """Each time an asset of ``schedule`` has an event: copy the sync bucket to the Azure replica, then verify it."""
    with DAG(
        dag_id,
        schedule=schedule,
        start_date=START,
        catchup=False,
        default_args=RETRIES,
        max_active_runs=1,
        params=PARAMS,
        tags=["feldera", "disaster-recovery"],
    ) as dag:
        copy = ReplicateCheckpointsOperator(
            task_id="replicate_to_azure",
            source_conn_id="feldera_bucket",  # aws
            source="{{ params.source }}",
            destination_conn_id="feldera_azure",  # wasb
            destination="{{ params.replica }}",
            delete_removed=True,  # follow the source's retention, after the new catalog is in place
        )
        # [START howto_verify_checkpoints]
        verify = VerifyCheckpointsOperator(
            task_id="verify_replica",
            store_conn_id="feldera_azure",
            location="{{ params.replica }}",
            max_checkpoint_age=dt.timedelta(hours=2),  # the replica's recovery-point objective
        )
        # [END howto_verify_checkpoints]
        copy >> verify
    return dag


replicate = replication_dag("feldera_replicate_checkpoints", [CHECKPOINTS])
# [END howto_replicate_checkpoints]

# [START howto_remote_checkpoint_trigger]
# Every new checkpoint in prod's sync bucket, whoever pushed it: a sync task, or Feldera's own push_interval. The
# watcher runs in the triggerer while a DAG scheduled on the asset is unpaused; its watermark is kept in Airflow's
# asset state store, so a triggerer restart neither loses nor repeats a checkpoint. Each asset event's
# extra["payload"] has the checkpoint_uuid and its checkpoint_time; key on the uuid (Airflow does not deduplicate
# watcher events).
RECOVERY_POINTS = Asset(
    "x-feldera://prod/recovery-points",
    watchers=[
        AssetWatcher(
            name="prod_recovery_points",
            trigger=RemoteCheckpointTrigger(pipeline_name="prod", feldera_conn_id="feldera_default", poll_interval=10),
        )
    ],
)

replicate_every_push = replication_dag("feldera_replicate_every_push", [RECOVERY_POINTS])
# [END howto_remote_checkpoint_trigger]

# [START howto_restore_from_replica]
with DAG(
    "feldera_restore_from_azure",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args=RETRIES,
    params={
        "replica": Param("feldera-replica/prod", type="string", description="Azure container/prefix to restore"),
        "staging_prefix": Param(
            "feldera-dr/from-azure", type="string", description="S3-compatible bucket/prefix to copy it back to"
        ),
        "pipeline": Param("drill", type="string", description="The (stopped) pipeline to start from the replica"),
        "bucket": Param("feldera-dr/drill", type="string", description="That pipeline's own sync bucket/prefix"),
        "checkpoint": Param("latest", type="string", description="'latest' or a checkpoint uuid"),
    },
    tags=["feldera", "disaster-recovery"],
) as restore_from_azure:
    back_to_s3 = ReplicateCheckpointsOperator(
        task_id="copy_back_to_s3",
        source_conn_id="feldera_azure",
        source="{{ params.replica }}",
        destination_conn_id="feldera_bucket",
        destination="{{ params.staging_prefix }}",
    )
    restore = RestoreCheckpointOperator(
        task_id="restore",
        pipeline_name="{{ params.pipeline }}",
        checkpoint="{{ params.checkpoint }}",
        bucket="{{ params.bucket }}",
        read_bucket="{{ params.staging_prefix }}",
        bucket_conn_id="feldera_bucket",
        deferrable=True,
    )
    back_to_s3 >> restore
# [END howto_restore_from_replica]
