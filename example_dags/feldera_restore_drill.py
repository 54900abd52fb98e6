"""A weekly restore drill: prove that the recovery points restore, from the primary's bucket and from the replica in
another cloud, without touching production.

``feldera_restore_drill`` (weekly, and by hand from the UI):

- ``verify_bucket``: every checkpoint the pipeline's sync bucket names is there in full; the report says which
  checkpoints Feldera's retention deletes at the next push.
- ``drill_from_bucket``: a scratch copy of the pipeline starts from a checkpoint of the last seven days, drawn at
  random (a drill of only the newest would never notice that older ones no longer restore), passes its SQL check,
  and is deleted. The recovery time and the checkpoint's age are the drill's result, recorded as an asset event.
- ``copy_replica_back`` and ``drill_from_replica``: Feldera restores only from S3-compatible storage, so the Azure
  replica is copied back to an S3 prefix, and a second scratch copy starts from the newest checkpoint there.

A failed drill fails its task: see the "Proving recovery" page of the docs for what each failure means.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Asset, Param

from airflow_checkpoint_sync.operators.drill import RestoreDrillOperator
from airflow_checkpoint_sync.operators.replicate import ReplicateCheckpointsOperator
from airflow_checkpoint_sync.operators.verify import VerifyCheckpointsOperator

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
# A retry deletes what a killed try left (its scratch pipeline) and drills again, so retries are safe.
RETRIES = {"retries": 2, "retry_delay": dt.timedelta(minutes=1)}
# The drills' results, one asset event per drill.
DRILLS = Asset("x-feldera://prod/restore-drills")
# The checks a restored copy must pass: your own tables and the bounds you know they keep.
CHECKS = [{"sql": "SELECT COUNT(*) AS n FROM orders", "min": 1, "name": "orders are back"}]

# [START howto_restore_drill]
with DAG(
    "feldera_restore_drill",
    schedule="@weekly",
    start_date=START,
    catchup=False,
    default_args=RETRIES,
    max_active_runs=1,
    params={
        "pipeline": Param("prod", type="string", description="The pipeline whose recovery points are drilled"),
        "bucket": Param("feldera-dr/prod", type="string", description="Its sync bucket/prefix"),
        "replica": Param("feldera-replica/prod", type="string", description="Its Azure replica, container/prefix"),
        "replica_copy": Param(
            "feldera-dr/prod-replica-copy", type="string", description="Where to copy the replica back (S3)"
        ),
    },
    tags=["feldera", "disaster-recovery"],
) as drill:
    verify = VerifyCheckpointsOperator(
        task_id="verify_bucket",
        store_conn_id="feldera_bucket",
        location="{{ params.bucket }}",
        pipeline_name="{{ params.pipeline }}",  # its retention settings, for the forecast
    )
    from_bucket = RestoreDrillOperator(
        task_id="drill_from_bucket",
        pipeline_name="{{ params.pipeline }}",
        scratch_pipeline_name="{{ params.pipeline }}-drill",
        bucket_conn_id="feldera_bucket",
        checkpoint="random",
        random_within_days=7,
        sql_checks=CHECKS,
        deferrable=True,
        outlets=[DRILLS],
    )
    back = ReplicateCheckpointsOperator(
        task_id="copy_replica_back",
        source_conn_id="feldera_azure",
        source="{{ params.replica }}",
        destination_conn_id="feldera_bucket",
        destination="{{ params.replica_copy }}",
    )
    from_replica = RestoreDrillOperator(
        task_id="drill_from_replica",
        pipeline_name="{{ params.pipeline }}",
        scratch_pipeline_name="{{ params.pipeline }}-replica-drill",
        location="{{ params.replica_copy }}",
        bucket_conn_id="feldera_bucket",
        sql_checks=CHECKS,
        deferrable=True,
        outlets=[DRILLS],
    )
    verify >> from_bucket
    back >> from_replica
# [END howto_restore_drill]
