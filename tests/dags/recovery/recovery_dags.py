"""Recovery DAGs for the integration tests (dag.test()); only the provider's documented public API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Asset, Param
from airflow.sdk.exceptions import AirflowException

from airflow_checkpoint_sync.operators.checkpoint import SyncCheckpointOperator
from airflow_checkpoint_sync.operators.configure import ConfigureCheckpointSyncOperator
from airflow_checkpoint_sync.operators.restore import RestoreCheckpointOperator
from airflow_checkpoint_sync.operators.standby import ActivateStandbyOperator, FailoverReadinessOperator

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PARAMS = {
    "pipeline": "staging",
    "source": "prod",
    "bucket": "bucket/staging",
    "read_bucket": None,
    "bucket_conn": None,
    "checkpoint": "latest",
    "primary": None,
    "primary_conn": None,
}
FAST = {"poll_interval": 0.2, "timeout": 30}


def dag(dag_id: str) -> DAG:
    return DAG(
        dag_id, schedule=None, start_date=START, catchup=False, params=PARAMS, render_template_as_native_obj=True
    )


with dag("configure_sync") as configure_sync:
    ConfigureCheckpointSyncOperator(
        task_id="configure",
        pipeline_name="{{ params.pipeline }}",
        bucket="{{ params.bucket }}",
        bucket_conn_id="{{ params.bucket_conn }}",
        read_bucket="{{ params.read_bucket }}",
        retention_min_count=3,
    )

with dag("migration") as migration:
    sync = SyncCheckpointOperator(task_id="sync", pipeline_name="{{ params.source }}", poll_interval=0.2, timeout=30)
    RestoreCheckpointOperator(
        task_id="restore",
        pipeline_name="{{ params.pipeline }}",
        checkpoint="{{ ti.xcom_pull(task_ids='sync') }}",
        bucket="{{ params.bucket }}",
        read_bucket="{{ params.read_bucket }}",
        bucket_conn_id="{{ params.bucket_conn }}",
        **FAST,  # type: ignore[arg-type]
    ).set_upstream(sync)


def restore_dag(dag_id: str, **kwargs: object) -> DAG:
    with dag(dag_id) as d:
        RestoreCheckpointOperator(
            task_id="restore",
            pipeline_name="{{ params.pipeline }}",
            checkpoint="{{ params.checkpoint }}",
            bucket="{{ params.bucket }}",
            read_bucket="{{ params.read_bucket }}",
            bucket_conn_id="{{ params.bucket_conn }}",
            **{**FAST, **kwargs},  # type: ignore[arg-type]
        )
    return d


restore_running = restore_dag("restore_running")
restore_deferred = restore_dag("restore_deferred", deferrable=True)
restore_standby = restore_dag("restore_standby", initial="standby", pull_interval=1)
restore_standby_clear = restore_dag("restore_standby_clear", initial="standby", pull_interval=1, clear_storage=True)
restore_stop_if_running = restore_dag("restore_stop_if_running", stop_if_running=True)
restore_with_retries = restore_dag("restore_with_retries", retries=1, retry_delay=dt.timedelta(seconds=0))


def failover_dag(dag_id: str, **kwargs: object) -> DAG:
    with dag(dag_id) as d:
        ActivateStandbyOperator(
            task_id="activate",
            pipeline_name="{{ params.pipeline }}",
            primary_pipeline_name="{{ params.primary }}",
            **{**FAST, **kwargs},  # type: ignore[arg-type]
        )
    return d


failover = failover_dag("failover")
failover_deferred = failover_dag("failover_deferred", deferrable=True, initial="paused")
failover_split_brain = failover_dag("failover_split_brain", allow_split_brain=True)
failover_short_timeout = failover_dag("failover_short_timeout", timeout=3)
failover_60s_pull = failover_dag("failover_60s_pull", timeout=30)
# Any checkpoint is older than a millisecond by the time the task looks: the bound always refuses.
failover_rpo = failover_dag("failover_rpo", max_checkpoint_age=0.001)
failover_rpo_override = failover_dag("failover_rpo_override", max_checkpoint_age=0.001, allow_stale_checkpoint=True)
failover_rpo_met = failover_dag("failover_rpo_met", max_checkpoint_age=dt.timedelta(hours=1))


with dag("split_brain_guard") as split_brain_guard:
    # The report an approver reads, then the activation, each reading the primary for itself: the guard's table test
    # runs both on every row and compares their verdicts.
    FailoverReadinessOperator(
        task_id="check",
        pipeline_name="{{ params.pipeline }}",
        primary_pipeline_name="{{ params.primary }}",
        primary_conn_id="{{ params.primary_conn }}",
    ) >> ActivateStandbyOperator(
        task_id="activate",
        pipeline_name="{{ params.pipeline }}",
        primary_pipeline_name="{{ params.primary }}",
        primary_conn_id="{{ params.primary_conn }}",
        trigger_rule="all_done",
        **FAST,  # type: ignore[arg-type]
    )


#: The approved failover's record.
FAILOVERS = Asset("x-feldera://staging/failovers")


def approved_failover_dag(dag_id: str, max_checkpoint_age: float) -> DAG:
    """Read, ask a person (Airflow's ApprovalOperator), activate: the guarded failover of the example."""
    with dag(dag_id) as d:
        check = FailoverReadinessOperator(
            task_id="check",
            pipeline_name="{{ params.pipeline }}",
            primary_pipeline_name="{{ params.primary }}",
            max_checkpoint_age=max_checkpoint_age,
        )
        approve = ApprovalOperator(
            task_id="approve",
            subject="Fail over to {{ params.pipeline }}?",
            body="{{ ti.xcom_pull(task_ids='check')['summary'] }}",
            params={"allow_stale_checkpoint": Param(False, type="boolean")},
        )
        activate = ActivateStandbyOperator(
            task_id="activate",
            pipeline_name="{{ params.pipeline }}",
            primary_pipeline_name="{{ params.primary }}",
            max_checkpoint_age=max_checkpoint_age,
            approval_task_id="approve",
            outlets=[FAILOVERS],
            **FAST,  # type: ignore[arg-type]
        )
        check >> approve >> activate
    return d


failover_approved = approved_failover_dag("failover_approved", max_checkpoint_age=3600)


class RacedApproval(ApprovalOperator):
    """An approval whose answer was recorded and whose task then failed: the state Airflow 3.3.2's deferral race
    (apache/airflow#67287) leaves when it fails a resumed approval right after the person answered. No server here
    can make that race happen on demand, so this stands in for its outcome, answer and failure as Airflow records
    them."""

    def execute(self, context: Any) -> Any:
        answer = {
            "chosen_options": ["Approve"],
            "params_input": {"allow_stale_checkpoint": False},
            "responded_by_user": {"id": "u1", "name": "night-shift"},
            "responded_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        context["ti"].xcom_push(key="return_value", value=answer)
        raise AirflowException("finished with state success, but the task instance's state attribute is queued")


with dag("failover_approval_raced") as failover_approval_raced:
    RacedApproval(task_id="approve", subject="Fail over?", retries=0) >> ActivateStandbyOperator(
        task_id="activate",
        pipeline_name="{{ params.pipeline }}",
        primary_pipeline_name="{{ params.primary }}",
        approval_task_id="approve",
        trigger_rule="all_done",  # as the example does: the recorded answer decides, not the approval task's state
        **FAST,  # type: ignore[arg-type]
    )
# Any checkpoint is older than a millisecond by the time the task looks: only the approver's override activates.
failover_approved_rpo = approved_failover_dag("failover_approved_rpo", max_checkpoint_age=0.001)
