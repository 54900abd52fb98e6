"""Deadline Alerts (Airflow 3.1+) for the recovery-point and recovery-time objectives.

A deadline is checked by the scheduler, so it fires even when the run is stuck in a queue, a worker died or a task
never started, which a task-level check cannot see. The callback must be importable where it runs (here the
triggerer), so it lives in a module on its path, not in the DAG file.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.sdk import DAG, AsyncCallback, DeadlineAlert, DeadlineReference

from airflow_checkpoint_sync.operators.checkpoint import SyncCheckpointOperator
from airflow_checkpoint_sync.operators.standby import ActivateStandbyOperator

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CALLBACK = "dr_alerts.page_the_on_call"  # an async function in dr_alerts.py, on the triggerer's path


async def page_the_on_call(objective: str, **context: Any) -> None:
    """What ``dr_alerts.page_the_on_call`` could be: replace the log line with your paging tool."""
    logging.getLogger(__name__).critical("Feldera %s missed for %s", objective, context.get("dag_run"))


# RPO: each scheduled run sets a recovery point; if one has not landed 20 minutes after its run was queued, the
# newest recovery point is already one push interval plus 20 minutes old.
with DAG(
    "feldera_scheduled_dr_with_rpo_deadline",
    schedule=dt.timedelta(minutes=30),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=dt.timedelta(minutes=20),
        callback=AsyncCallback(CALLBACK, kwargs={"objective": "RPO"}),
    ),
) as scheduled_dr:
    SyncCheckpointOperator(task_id="sync_checkpoint", pipeline_name="prod", deferrable=True, retries=2)

# RTO: a failover must have the standby running within 15 minutes of someone pressing Trigger.
with DAG(
    "feldera_failover_with_rto_deadline",
    schedule=None,
    start_date=START,
    catchup=False,
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=dt.timedelta(minutes=15),
        callback=AsyncCallback(CALLBACK, kwargs={"objective": "RTO"}),
    ),
) as failover:
    ActivateStandbyOperator(
        task_id="activate_standby", pipeline_name="standby", primary_pipeline_name="prod", retries=2
    )
