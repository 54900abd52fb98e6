"""Hot standby: a standby pipeline keeps pulling the primary's newest checkpoint; failover activates it.

- ``feldera_standby_setup``: start the standby (``initial="standby"``, ``"latest"``) reading the primary's bucket.
- ``feldera_failover`` (triggered by hand, from the UI at 3 a.m.): read the primary's and the standby's status and
  the age of the standby's newest checkpoint, ask a person to approve (Airflow's ``ApprovalOperator``: the run waits
  in Required Actions, showing what was read), then activate the standby, which checks everything again, and wait
  until it runs. The activation's asset event records who approved which recovery point, and when.
"""

from __future__ import annotations

import datetime as dt

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Asset, Param

from airflow_checkpoint_sync.operators.restore import RestoreCheckpointOperator
from airflow_checkpoint_sync.operators.standby import ActivateStandbyOperator, FailoverReadinessOperator

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
# A retry follows the sync, the start or the activation its first try made instead of repeating it, so retries are
# safe; they also cover Airflow 3.3.2 sometimes failing a deferred task whose trigger fired success
# (apache/airflow#67287), which would otherwise lose the run (and its asset event) silently.
RETRIES = {"retries": 2, "retry_delay": dt.timedelta(minutes=1)}
#: The recovery-point objective a failover may accept without the approver's explicit override.
RPO = dt.timedelta(hours=1)
#: Each activation's event: who approved, which checkpoint it started from, when.
FAILOVERS = Asset("x-feldera://standby/failovers")

with DAG(
    "feldera_standby_setup",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args=RETRIES,
    render_template_as_native_obj=True,
    params={
        "standby": Param("standby", type="string"),
        "primary_bucket": Param("feldera-dr/prod", type="string"),
        "standby_bucket": Param("feldera-dr/standby", type="string"),
        "bucket_conn_id": Param("feldera_bucket", type=["string", "null"]),
        "feldera_conn_id": Param("feldera_default", type="string"),
    },
    tags=["feldera", "standby"],
) as standby_setup:
    # [START howto_standby]
    RestoreCheckpointOperator(
        task_id="start_standby",
        pipeline_name="{{ params.standby }}",
        feldera_conn_id="{{ params.feldera_conn_id }}",
        checkpoint="latest",
        bucket="{{ params.standby_bucket }}",
        read_bucket="{{ params.primary_bucket }}",
        bucket_conn_id="{{ params.bucket_conn_id }}",
        initial="standby",
        pull_interval=10,
        clear_storage=True,  # a standby may run once per storage lifetime
        stop_if_running=True,
    )
    # [END howto_standby]

# [START howto_activate_standby]
with DAG(
    "feldera_failover",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args=RETRIES,
    render_template_as_native_obj=True,
    params={
        "standby": Param("standby", type="string", description="The standby pipeline to activate"),
        "primary": Param("prod", type="string", description="The primary it replaces; it must not be running"),
        "initial": Param("running", enum=["running", "paused"], description="Status after activation"),
        "feldera_conn_id": Param("feldera_default", type="string"),
    },
    tags=["feldera", "standby", "failover"],
) as failover:
    check = FailoverReadinessOperator(
        task_id="check_failover",
        pipeline_name="{{ params.standby }}",
        feldera_conn_id="{{ params.feldera_conn_id }}",
        primary_pipeline_name="{{ params.primary }}",
        max_checkpoint_age=RPO,
    )
    approve = ApprovalOperator(
        task_id="approve_failover",
        subject="Fail over from {{ params.primary }} to the standby {{ params.standby }}?",
        body="{{ ti.xcom_pull(task_ids='check_failover')['summary'] }}",
        params={
            "allow_stale_checkpoint": Param(
                False,
                type="boolean",
                description="Accept a recovery point older than the one-hour bound (losing what came since)",
            ),
        },
        response_timeout=dt.timedelta(hours=4),
        retries=0,  # a retry would ask again; the run waits for one answer
    )
    activate = ActivateStandbyOperator(
        task_id="activate_standby",
        pipeline_name="{{ params.standby }}",
        feldera_conn_id="{{ params.feldera_conn_id }}",
        primary_pipeline_name="{{ params.primary }}",
        initial="{{ params.initial }}",
        max_checkpoint_age=RPO,  # refused when older, unless the approver set allow_stale_checkpoint
        approval_task_id="approve_failover",
        # Runs even if the approval task failed after its answer was recorded (Airflow 3.3.2 can fail a resumed
        # approval right after a person answered, apache/airflow#67287): the recorded answer decides, and the
        # activation refuses without an Approve. A Reject skips it, as ever.
        trigger_rule="all_done",
        outlets=[FAILOVERS],
    )
    check >> approve >> activate
# [END howto_activate_standby]
