"""Cross-environment migration: sync production, then start staging from exactly that checkpoint.

Staging reads production's bucket as its ``read_bucket`` (never written) and keeps its own ``bucket`` for its own
checkpoints, so the two environments never share a location.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param

from airflow_checkpoint_sync.operators.checkpoint import SyncCheckpointOperator
from airflow_checkpoint_sync.operators.restore import RestoreCheckpointOperator

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
# A retry follows the sync, the start or the activation its first try made instead of repeating it, so retries are
# safe; they also cover Airflow 3.3.2 sometimes failing a deferred task whose trigger fired success
# (apache/airflow#67287), which would otherwise lose the run (and its asset event) silently.
RETRIES = {"retries": 2, "retry_delay": dt.timedelta(minutes=1)}

# [START howto_restore_checkpoint]
with DAG(
    "feldera_migration",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args=RETRIES,
    render_template_as_native_obj=True,
    params={
        "production": Param("prod", type="string"),
        "staging": Param("staging", type="string"),
        "production_bucket": Param("feldera-dr/prod", type="string"),
        "staging_bucket": Param("feldera-dr/staging", type="string"),
        "bucket_conn_id": Param("feldera_bucket", type=["string", "null"]),
        "feldera_conn_id": Param("feldera_default", type="string"),
    },
    tags=["feldera", "migration"],
) as migration:
    sync_production = SyncCheckpointOperator(
        task_id="sync_production",
        pipeline_name="{{ params.production }}",
        feldera_conn_id="{{ params.feldera_conn_id }}",
    )
    restore_staging = RestoreCheckpointOperator(
        task_id="restore_staging",
        pipeline_name="{{ params.staging }}",
        feldera_conn_id="{{ params.feldera_conn_id }}",
        checkpoint="{{ ti.xcom_pull(task_ids='sync_production') }}",
        bucket="{{ params.staging_bucket }}",
        read_bucket="{{ params.production_bucket }}",
        bucket_conn_id="{{ params.bucket_conn_id }}",
        stop_if_running=True,  # staging is disposable: stop it if it runs
        clear_storage=True,  # start from production's checkpoint, not staging's own local state
        initial="running",  # the restore waits until staging is Running: the check that it runs
    )
    sync_production >> restore_staging
# [END howto_restore_checkpoint]
