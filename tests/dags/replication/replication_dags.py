"""ReplicateCheckpointsOperator DAGs for the integration tests (dag.test()); only the provider's public API."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_checkpoint_sync.operators.replicate import ReplicateCheckpointsOperator

PARAMS = {"source_conn": "s3_dr", "source": "b/prod", "destination_conn": "azure_dr", "destination": "dr/prod"}


def replicate_dag(dag_id: str, **kwargs: object) -> DAG:
    with DAG(dag_id, schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), params=PARAMS) as dag:
        ReplicateCheckpointsOperator(
            task_id="replicate",
            source_conn_id="{{ params.source_conn }}",
            source="{{ params.source }}",
            destination_conn_id="{{ params.destination_conn }}",
            destination="{{ params.destination }}",
            **kwargs,  # type: ignore[arg-type]
        )
    return dag


replicate = replicate_dag("replicate")
replicate_pruning = replicate_dag("replicate_pruning", delete_removed=True)
replicate_repairing = replicate_dag("replicate_repairing", repair=True)
replicate_to_another_store = replicate_dag("replicate_to_another_store", destination_is_another_store=True)
