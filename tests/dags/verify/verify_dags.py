"""VerifyCheckpointsOperator DAGs for the integration tests (dag.test()); only the provider's public API."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_checkpoint_sync.operators.replicate import ReplicateCheckpointsOperator
from airflow_checkpoint_sync.operators.verify import VerifyCheckpointsOperator

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

# A pipeline's sync location replicated to Azure Blob and to GCS, then all three verified by one mapped task.
with DAG(
    "verify_everywhere", schedule=None, start_date=START, params={"bucket": "b", "container": "c", "pipeline": "p"}
):
    to_azure = ReplicateCheckpointsOperator(
        task_id="to_azure",
        source_conn_id="s3_dr",
        source="{{ params.bucket }}/{{ params.pipeline }}",
        destination_conn_id="azure_dr",
        destination="{{ params.container }}/{{ params.pipeline }}",
    )
    to_gcs = ReplicateCheckpointsOperator(
        task_id="to_gcs",
        source_conn_id="s3_dr",
        source="{{ params.bucket }}/{{ params.pipeline }}",
        destination_conn_id="gcs_dr",
        destination="{{ params.container }}/{{ params.pipeline }}",
    )
    verify = VerifyCheckpointsOperator.partial(
        task_id="verify", pipeline_name="{{ params.pipeline }}", verify_content=True, retries=1
    ).expand_kwargs(
        [
            {"store_conn_id": "s3_dr", "location": "{{ params.bucket }}/{{ params.pipeline }}"},
            {"store_conn_id": "azure_dr", "location": "{{ params.container }}/{{ params.pipeline }}"},
            {"store_conn_id": "gcs_dr", "location": "{{ params.container }}/{{ params.pipeline }}"},
        ]
    )
    [to_azure, to_gcs] >> verify

with DAG("verify_one", schedule=None, start_date=START, params={"conn": "s3_dr", "location": "b/p"}):
    VerifyCheckpointsOperator(
        task_id="verify",
        store_conn_id="{{ params.conn }}",
        location="{{ params.location }}",
        retention_min_count=1,
        retention_min_age=0,
        max_checkpoint_age=3600,
    )

# With a retry: a store error a retry cannot change must fail it at once, a passing one be retried.
with DAG("verify_retried", schedule=None, start_date=START, params={"conn": "s3_dr", "location": "b/p"}):
    VerifyCheckpointsOperator(
        task_id="verify",
        store_conn_id="{{ params.conn }}",
        location="{{ params.location }}",
        retention_min_count=1,
        retention_min_age=0,
        retries=1,
        retry_delay=dt.timedelta(seconds=0),
    )
