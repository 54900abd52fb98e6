"""Hot standby: a standby pipeline keeps pulling the primary's newest checkpoint; failover activates it.

- ``feldera_standby_setup``: start the standby (``initial="standby"``, ``"latest"``) reading the primary's bucket.
- ``feldera_failover`` (triggered by hand, from the UI at 3 a.m.): check that the primary is not running, activate
  the standby, and wait until it runs.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param

from airflow_checkpoint_sync.operators.restore import RestoreCheckpointOperator
from airflow_checkpoint_sync.operators.standby import ActivateStandbyOperator

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
# A retry follows the sync, the start or the activation its first try made instead of repeating it, so retries are
# safe; they also cover Airflow 3.3.2 sometimes failing a deferred task whose trigger fired success
# (apache/airflow#67287), which would otherwise lose the run (and its asset event) silently.
RETRIES = {"retries": 2, "retry_delay": dt.timedelta(minutes=1)}

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
        "accept_stale_recovery_point": Param(
            False,
            type="boolean",
            description="Activate even if the standby's newest checkpoint is over an hour old (losing what came since)",
        ),
        "feldera_conn_id": Param("feldera_default", type="string"),
    },
    tags=["feldera", "standby", "failover"],
) as failover:
    ActivateStandbyOperator(
        task_id="activate_standby",
        pipeline_name="{{ params.standby }}",
        feldera_conn_id="{{ params.feldera_conn_id }}",
        primary_pipeline_name="{{ params.primary }}",
        initial="{{ params.initial }}",
        max_checkpoint_age=dt.timedelta(hours=1),  # the recovery-point objective a failover may accept
        allow_stale_checkpoint="{{ params.accept_stale_recovery_point }}",
    )
# [END howto_activate_standby]
