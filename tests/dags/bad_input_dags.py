"""The bad-input battery: one table of cases across every operator, the sensor, SyncConfig and the connections,
and one DAG per run-stage case, named ``bad_input_<case id>``, built by :func:`add_dags` in its class's bundle.

Each case builds one task. ``stage="parse"`` cases must be refused when the task is built (the DAG file would not
import); ``stage="run"`` cases when it runs. ``expect`` is a regex the error must match: it names the parameter
(or connection field) and what is accepted. tests/integration/test_bad_input_battery.py runs them.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Literal

from airflow.sdk import DAG

from airflow_checkpoint_sync.operators.checkpoint import SyncCheckpointOperator
from airflow_checkpoint_sync.operators.configure import ConfigureCheckpointSyncOperator
from airflow_checkpoint_sync.operators.drill import RestoreDrillOperator
from airflow_checkpoint_sync.operators.replicate import ReplicateCheckpointsOperator
from airflow_checkpoint_sync.operators.restore import RestoreCheckpointOperator
from airflow_checkpoint_sync.operators.standby import ActivateStandbyOperator, FailoverReadinessOperator
from airflow_checkpoint_sync.operators.verify import VerifyCheckpointsOperator
from airflow_checkpoint_sync.sensors.checkpoint import CheckpointStatusSensor
from airflow_checkpoint_sync.sensors.freshness import CheckpointFreshnessSensor

UPPER_UUID = "01890000-0000-7000-8000-0000000000AB"
SOME_UUID = "01890000-0000-7000-8000-0000000000ab"
V4_UUID = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
#: What a server that is not Feldera's API answers instead, by the connection that reaches it.
NOT_FELDERA = {
    "feldera_html": r"GET /v0/config at http://127\.0\.0\.1:\d+: HTTP 200 UnexpectedResponse: .*not JSON \(text/html",
    "feldera_invalid_json": r"at http://127\.0\.0\.1:\d+: HTTP 200 UnexpectedResponse: .*invalid JSON",
    "feldera_wrong_shape": r"HTTP 200 UnexpectedResponse: .*a JSON list where a JSON object was expected",
    "feldera_redirect": r"HTTP 302: redirected to http://127\.0\.0\.1:9/elsewhere: Feldera's API does not redirect",
    "feldera_echo": r"API key was rejected \(HTTP 401: bad credentials: Authorization='Bearer \*\*\*'\)",
}


@dataclass(frozen=True)
class Case:
    """One bad input: which class, its arguments, and the words the refusal must contain."""

    id: str
    operator: str  # sync, sensor, configure, restore, activate, readiness, replicate, verify, drill, freshness
    kwargs: dict[str, Any]
    expect: str
    stage: Literal["parse", "run"] = "run"


def _configure(case_id: str, expect: str, stage: Literal["parse", "run"] = "run", **kwargs: Any) -> Case:
    base = {"pipeline_name": "staging", "bucket": "dr/staging", "bucket_conn_id": "s3_dr"}
    return Case(case_id, "configure", {**base, **kwargs}, expect, stage)


def _restore(case_id: str, expect: str, stage: Literal["parse", "run"] = "run", **kwargs: Any) -> Case:
    base = {"pipeline_name": "staging", "bucket": "dr/staging", "read_bucket": "dr/prod", "bucket_conn_id": "s3_dr"}
    return Case(case_id, "restore", {**base, **kwargs}, expect, stage)


REPLICA = {"source_conn_id": "s3_dr", "source": "dr/prod", "destination_conn_id": "azure_dr", "destination": "x/y"}

CASES: list[Case] = [
    # -- SyncCheckpointOperator ------------------------------------------------------------------------------
    Case("sync_bad_name", "sync", {"pipeline_name": "not a name"}, r"pipeline_name='not a name'.*letters"),
    Case("sync_unknown_pipeline", "sync", {"pipeline_name": "ghost"}, r"no pipeline named 'ghost'"),
    Case(
        "sync_not_configured",
        "sync",
        {"pipeline_name": "nosync"},
        r"'nosync' has no checkpoint sync configured \(runtime_config\.storage\.backend\.config\.sync\)",
    ),
    Case(
        "sync_multihost",
        "sync",
        {"pipeline_name": "multi"},
        r"pipeline 'multi' runs on 2 hosts: Feldera refuses POST /checkpoint/sync on a multihost pipeline",
    ),
    Case(
        "sync_zero_poll",
        "sync",
        {"pipeline_name": "prod", "poll_interval": 0},
        r"poll_interval=0 is not valid: a positive number of seconds",
        "parse",
    ),
    Case(
        "sync_negative_timeout",
        "sync",
        {"pipeline_name": "prod", "timeout": -5},
        r"timeout=-5 is not valid: a positive number of seconds",
        "parse",
    ),
    # -- connections ------------------------------------------------------------------------------------------
    Case(
        "conn_wrong_type",
        "sync",
        {"pipeline_name": "prod", "feldera_conn_id": "s3_dr"},
        r"connection 's3_dr': conn_type 'aws' is not valid; expected 'feldera'",
    ),
    Case(
        "conn_missing",
        "sync",
        {"pipeline_name": "prod", "feldera_conn_id": "no_such_conn"},
        r"The conn_id `no_such_conn` isn't defined",
    ),
    Case(
        "conn_no_host",
        "sync",
        {"pipeline_name": "prod", "feldera_conn_id": "feldera_no_host"},
        r"'feldera_no_host': host is empty; set it to the Feldera API URL",
    ),
    Case(
        "conn_bad_timeout",
        "sync",
        {"pipeline_name": "prod", "feldera_conn_id": "feldera_bad_timeout"},
        r"extra 'timeout' 'soon' is not valid; expected a number of seconds greater than 0",
    ),
    Case(
        "conn_bad_verify",
        "sync",
        {"pipeline_name": "prod", "feldera_conn_id": "feldera_bad_verify"},
        r"extra 'verify' 'maybe' is not valid; expected true, false or the path of a CA bundle readable on this worker",
    ),
    Case(
        "conn_wrong_api_key",
        "sync",
        {"pipeline_name": "prod", "feldera_conn_id": "feldera_wrong_key"},
        r"the API key was rejected \(HTTP 401: .+\)\. Check the connection's password",
    ),
    Case(
        "conn_unreachable",
        "sync",
        {"pipeline_name": "prod", "feldera_conn_id": "feldera_unreachable"},
        r"cannot connect to http://127\.0\.0\.1:\d+ \(the connection's host\)",
    ),
    Case(
        "conn_tls_failure",
        "sync",
        {"pipeline_name": "prod", "feldera_conn_id": "feldera_tls"},
        r"TLS handshake with https://127\.0\.0\.1:\d+ failed.*set the connection's 'verify' extra",
    ),
    Case(
        "conn_key_with_inner_space",
        "sync",
        {"pipeline_name": "prod", "feldera_conn_id": "feldera_key_inner_space"},
        r"'feldera_key_inner_space': the password \(the API key\) has spaces, line breaks or other characters",
    ),
    Case(
        "conn_host_with_query",
        "sync",
        {"pipeline_name": "prod", "feldera_conn_id": "feldera_query_host"},
        r"host 'http://127\.0\.0\.1:\d+/\?tenant=x' is not valid; expected a URL without '\?query' or '#fragment'",
    ),
    Case(
        "conn_host_with_userinfo",
        "sync",
        {"pipeline_name": "prod", "feldera_conn_id": "feldera_userinfo_host"},
        r"'feldera_userinfo_host': host carries a user or password before '@'; put the API key in the connection's",
    ),
    Case(
        "conn_port_out_of_range",
        "sync",
        {"pipeline_name": "prod", "feldera_conn_id": "feldera_bad_port"},
        r"'feldera_bad_port': port 'http://127\.0\.0\.1:70000' is not valid; expected a port from 1 to 65535",
    ),
    Case(
        "conn_https_to_http_server",
        "sync",
        {"pipeline_name": "prod", "feldera_conn_id": "feldera_https_to_http"},
        r"https://127\.0\.0\.1:\d+ does not speak TLS.*use http:// in the connection's host",
    ),
    *[
        Case(f"sync_via_{conn}", "sync", {"pipeline_name": "prod", "feldera_conn_id": conn}, expect)
        for conn, expect in NOT_FELDERA.items()
    ],
    Case(
        "sensor_via_feldera_html",
        "sensor",
        {"pipeline_name": "prod", "checkpoint_uuid": SOME_UUID, "feldera_conn_id": "feldera_html"},
        r"GET /v0/pipelines/prod/checkpoint/sync_status at http://127\.0\.0\.1:\d+: HTTP 200 UnexpectedResponse",
    ),
    Case(
        "restore_via_feldera_invalid_json",
        "restore",
        {"pipeline_name": "staging", "bucket": "dr/staging", "feldera_conn_id": "feldera_invalid_json"},
        r"HTTP 200 UnexpectedResponse: .*invalid JSON",
    ),
    Case(
        "activate_via_feldera_wrong_shape",
        "activate",
        {"pipeline_name": "staging", "feldera_conn_id": "feldera_wrong_shape"},
        r"a JSON list where a JSON object was expected",
    ),
    Case(
        "configure_via_feldera_echo",
        "configure",
        {"pipeline_name": "staging", "bucket": "dr/staging", "feldera_conn_id": "feldera_echo"},
        r"Authorization='Bearer \*\*\*'",
    ),
    Case(
        "freshness_via_feldera_redirect",
        "freshness",
        {"pipeline_name": "prod", "max_age": 60, "feldera_conn_id": "feldera_redirect"},
        r"redirected to http://127\.0\.0\.1:9/elsewhere",
    ),
    Case(
        "community_edition",
        "sync",
        {"pipeline_name": "prod", "feldera_conn_id": "feldera_community"},
        r"is the Open source edition: checkpoint sync, standby and activation need Feldera Enterprise",
    ),
    # -- CheckpointStatusSensor -------------------------------------------------------------------------------
    Case(
        "sensor_bad_uuid",
        "sensor",
        {"pipeline_name": "prod", "checkpoint_uuid": "latest"},
        r"checkpoint_uuid='latest' is not valid: a checkpoint uuid \(a UUIDv7 in lower case",
    ),
    Case(
        "sensor_upper_uuid",
        "sensor",
        {"pipeline_name": "prod", "checkpoint_uuid": UPPER_UUID},
        r"checkpoint_uuid='\S+AB' is not valid: a checkpoint uuid \(a UUIDv7 in lower case",
    ),
    Case(
        "sensor_bad_incarnation",
        "sensor",
        {"pipeline_name": "prod", "checkpoint_uuid": SOME_UUID, "incarnation_uuid": "x"},
        r"incarnation_uuid='x' is not valid: None or a uuid \(lower case\)",
    ),
    Case(
        "sensor_v4_uuid",
        "sensor",
        {"pipeline_name": "prod", "checkpoint_uuid": V4_UUID},
        r"checkpoint_uuid='1b4e28ba\S+' is not valid: a checkpoint uuid \(a UUIDv7 in lower case",
    ),
    Case(
        "sensor_upper_incarnation",
        "sensor",
        {"pipeline_name": "prod", "checkpoint_uuid": SOME_UUID, "incarnation_uuid": UPPER_UUID},
        r"incarnation_uuid='\S+AB' is not valid: None or a uuid \(lower case\)",
    ),
    # -- CheckpointFreshnessSensor ----------------------------------------------------------------------------
    Case(
        "freshness_zero_max_age",
        "freshness",
        {"pipeline_name": "prod", "max_age": 0},
        r"max_age=0 is not valid: a positive number of seconds",
        "parse",
    ),
    Case(
        "freshness_text_max_age",
        "freshness",
        {"pipeline_name": "prod", "max_age": "1h"},
        r"max_age='1h' is not valid: a positive number of seconds",
        "parse",
    ),
    Case(
        "freshness_negative_timedelta",
        "freshness",
        {"pipeline_name": "prod", "max_age": dt.timedelta(minutes=-5)},
        r"max_age=datetime\.timedelta\(days=-1, seconds=86100\) is not valid: a positive number",
        "parse",
    ),
    Case(
        "freshness_bad_name",
        "freshness",
        {"pipeline_name": "prod/../x", "max_age": 60},
        r"pipeline_name='prod/\.\./x' is not valid: a Feldera pipeline name",
    ),
    Case(
        "freshness_unknown_pipeline",
        "freshness",
        {"pipeline_name": "ghost", "max_age": 60},
        r"Unknown pipeline name 'ghost'",
    ),
    Case(
        "sensor_unknown_pipeline",
        "sensor",
        {"pipeline_name": "ghost", "checkpoint_uuid": SOME_UUID},
        r"Unknown pipeline name 'ghost'",
    ),
    # -- ConfigureCheckpointSyncOperator and SyncConfig ---------------------------------------------------------
    _configure(
        "configure_url_bucket",
        r"bucket='s3://dr/staging' is not valid: 'bucket-name\[/prefix\]' without a URL scheme: drop the scheme",
        bucket="s3://dr/staging",
    ),
    *[
        _configure(f"configure_bucket_{label}", rf"bucket={re.escape(repr(bad))} is not valid: .*{why}", bucket=bad)
        for label, bad, why in [
            ("double_slash", "dr//staging", "no empty, '\\.' or '\\.\\.' segments"),
            ("dotdot", "dr/prod/../staging", "segments"),
            ("dot", "dr/./staging", "segments"),
            ("colon_scheme", "s3:dr/staging", "drop the scheme"),
            ("space", "dr/sta ging", "no white space"),
            ("backslash", "dr\\staging", "is not a bucket name"),
            ("leading_slash", "/dr/staging", "is not a bucket name"),
        ]
    ],
    _configure(
        "configure_read_bucket_same_but_for_a_slash",
        r"read_bucket='dr/staging/' is not valid: it must point to a different location than bucket",
        read_bucket="dr/staging/",
    ),
    _configure(
        "configure_read_bucket_dotdot",
        r"read_bucket='dr/x/\.\./prod' is not valid: .*segments",
        read_bucket="dr/x/../prod",
    ),
    _configure(
        "configure_sync_options_not_a_dict",
        r"sync_options=\['transfers', 4\] is not valid: a dict of Feldera sync settings",
        sync_options=["transfers", 4],
    ),
    _configure(
        "configure_read_bucket_is_bucket",
        r"read_bucket='dr/staging' is not valid: it must point to a different location than bucket",
        read_bucket="dr/staging",
    ),
    _configure(
        "configure_push_interval_zero",
        r"push_interval=0 is not valid: a whole number from 1 to \d+ seconds",
        push_interval=0,
    ),
    _configure(
        "configure_negative_retention",
        r"retention_min_count=-1 is not valid: a whole number from 0 to \d+ checkpoints",
        retention_min_count=-1,
    ),
    _configure(
        "configure_pull_interval_zero",
        r"pull_interval=0 is not valid: a whole number from 1 to \d+ seconds",
        pull_interval=0,
    ),
    _configure(
        "configure_transfers_out_of_range",
        r"transfers=0 is not valid: a whole number from 1 to 255",
        sync_options={"transfers": 0},
    ),
    _configure(
        "configure_standby_flag",
        r"sync_options: standby=True is not valid: .*start the pipeline with initial='standby'",
        sync_options={"standby": True},
    ),
    _configure(
        "configure_unknown_option",
        r"sync_options: colour='blue' is not valid: not a Feldera sync setting; known: \['access_key'",
        sync_options={"colour": "blue"},
    ),
    _configure(
        "configure_azure_connection",
        r"bucket_conn_id 'azure_dr' is an Azure Blob Storage \(wasb\) connection.*Use an aws or google_cloud_platform",
        bucket_conn_id="azure_dr",
    ),
    _configure(
        "configure_missing_bucket_conn",
        r"bucket_conn_id 'no_such_conn': The conn_id `no_such_conn` isn't defined",
        bucket_conn_id="no_such_conn",
    ),
    _configure(
        "configure_missing_secret",
        r"bucket_conn_id 's3_no_secret' has an access key but no secret; set both \(login and password\)",
        bucket_conn_id="s3_no_secret",
    ),
    _configure(
        "configure_running_pipeline",
        r"pipeline 'prod' is Running: Feldera changes a runtime config only while the pipeline is stopped",
        pipeline_name="prod",
    ),
    # -- RestoreCheckpointOperator ----------------------------------------------------------------------------
    _restore(
        "restore_bad_checkpoint",
        r"checkpoint='newest' is not valid: 'latest' or a checkpoint uuid \(a UUIDv7 in lower case",
        checkpoint="newest",
    ),
    _restore(
        "restore_upper_uuid",
        r"checkpoint='\S+AB' is not valid: 'latest' or a checkpoint uuid \(a UUIDv7 in lower case",
        checkpoint=UPPER_UUID,
    ),
    _restore(
        "restore_uuid_multihost",
        r"pipeline 'multi' runs on 2 hosts: Feldera restores multihost pipelines from 'latest' only",
        pipeline_name="multi",
        checkpoint=SOME_UUID,
    ),
    _restore("restore_bad_initial", r"initial='bogus' is not valid: 'running', 'paused' or 'standby'", initial="bogus"),
    _restore(
        "restore_v4_uuid",
        r"checkpoint='1b4e28ba\S+' is not valid: 'latest' or a checkpoint uuid \(a UUIDv7 in lower case",
        checkpoint=V4_UUID,
    ),
    _restore(
        "restore_bucket_double_slash",
        r"bucket='dr//staging' is not valid: .*segments",
        bucket="dr//staging",
    ),
    _restore(
        "restore_read_bucket_scheme",
        r"read_bucket='gs://dr/prod' is not valid: .*drop the scheme",
        read_bucket="gs://dr/prod",
    ),
    _restore(
        "restore_clear_storage_not_bool",
        r"clear_storage='yes' is not valid: True or False",
        clear_storage="yes",
    ),
    _restore(
        "restore_text_poll_interval",
        r"poll_interval='fast' is not valid: a positive number of seconds",
        "parse",
        poll_interval="fast",
    ),
    _restore(
        "restore_uuid_in_no_bucket",
        rf"checkpoint {SOME_UUID} is in neither the local storage nor battery/staging or battery/prod, so the "
        r"restore would fail after changing the pipeline",
        bucket="battery/staging",
        read_bucket="battery/prod",
        checkpoint=SOME_UUID,
    ),
    _restore(
        "restore_running_pipeline",
        r"pipeline 'prod' is Running: a restore needs it stopped.*stop_if_running=True",
        pipeline_name="prod",
    ),
    # -- ReplicateCheckpointsOperator -------------------------------------------------------------------------
    Case(
        "replicate_url_source",
        "replicate",
        {**REPLICA, "source": "s3://dr/prod"},
        r"source='s3://dr/prod' is not valid: 'bucket-name\[/prefix\]'",
    ),
    Case(
        "replicate_destination_dotdot",
        "replicate",
        {**REPLICA, "destination": "x/../prod"},
        r"destination='x/\.\./prod' is not valid: .*segments",
    ),
    Case(
        "replicate_source_double_slash",
        "replicate",
        {**REPLICA, "source": "dr//prod"},
        r"source='dr//prod' is not valid: .*segments",
    ),
    Case(
        "replicate_destination_space",
        "replicate",
        {**REPLICA, "destination": "x/y z"},
        r"destination='x/y z' is not valid: .*no white space",
    ),
    Case(
        "replicate_feldera_connection",
        "replicate",
        {**REPLICA, "destination_conn_id": "feldera_default"},
        r"destination_conn_id 'feldera_default' has type 'feldera'; expected one of aws, google_cloud_platform, wasb",
    ),
    Case(
        "replicate_concurrency_zero",
        "replicate",
        {**REPLICA, "max_concurrency": 0},
        r"max_concurrency=0 is not valid: a whole number from 1 to 32",
        "parse",
    ),
    Case(
        "replicate_concurrency_bool",
        "replicate",
        {**REPLICA, "max_concurrency": True},
        r"max_concurrency=True is not valid: a whole number from 1 to 32",
        "parse",
    ),
    Case(
        "replicate_another_store_string",
        "replicate",
        {**REPLICA, "destination_is_another_store": "yes"},
        r"destination_is_another_store='yes' is not valid: True or False",
        "parse",
    ),
    Case(
        "replicate_repair_string",
        "replicate",
        {**REPLICA, "repair": "false"},
        r"repair='false' is not valid: True or False",
        "parse",
    ),
    # -- VerifyCheckpointsOperator ----------------------------------------------------------------------------
    Case(
        "verify_url_location",
        "verify",
        {"store_conn_id": "s3_dr", "location": "s3://dr/prod"},
        r"location='s3://dr/prod' is not valid: 'bucket-name\[/prefix\]'",
    ),
    Case(
        "verify_feldera_connection",
        "verify",
        {"store_conn_id": "feldera_default", "location": "dr/prod"},
        r"store_conn_id 'feldera_default' has type 'feldera'; expected one of aws, google_cloud_platform, wasb",
    ),
    Case(
        "verify_pipeline_without_sync",
        "verify",
        {"store_conn_id": "s3_dr", "location": "dr/prod", "pipeline_name": "nosync"},
        r"pipeline 'nosync' has no checkpoint sync configured: no retention to read",
    ),
    Case(
        "verify_negative_retention",
        "verify",
        {"store_conn_id": "s3_dr", "location": "dr/prod", "retention_min_count": -1},
        r"retention_min_count=-1 is not valid: a whole number, 0 or more",
        "parse",
    ),
    Case(
        "verify_zero_max_age",
        "verify",
        {"store_conn_id": "s3_dr", "location": "dr/prod", "max_checkpoint_age": 0},
        r"max_checkpoint_age=0 is not valid: a positive number of seconds, or a timedelta",
        "parse",
    ),
    Case(
        "verify_concurrency_too_high",
        "verify",
        {"store_conn_id": "s3_dr", "location": "dr/prod", "max_concurrency": 64},
        r"max_concurrency=64 is not valid: a whole number from 1 to 32",
        "parse",
    ),
    # -- RestoreDrillOperator ---------------------------------------------------------------------------------
    Case(
        "drill_scratch_inside_the_location",
        "drill",
        {"pipeline_name": "prod", "scratch_bucket": "battery/prod/scratch"},
        r"scratch_bucket='battery/prod/scratch' overlaps the location under test \(battery/prod\): it lies inside it",
    ),
    Case(
        "drill_scratch_holds_the_source_bucket",
        "drill",
        {"pipeline_name": "prod", "location": "battery/replica", "scratch_bucket": "battery"},
        r"scratch_bucket='battery' overlaps the location under test \(battery/replica\): it holds it",
    ),
    Case(
        "drill_scratch_is_the_source",
        "drill",
        {"pipeline_name": "prod", "scratch_pipeline_name": "prod"},
        r"scratch_pipeline_name='prod' is the source pipeline",
    ),
    Case(
        "drill_scratch_is_a_real_pipeline",
        "drill",
        {"pipeline_name": "prod", "scratch_pipeline_name": "staging"},
        r"scratch_pipeline_name='staging' names an existing pipeline that is not a drill's scratch pipeline",
    ),
    Case(
        "drill_random_without_a_connection",
        "drill",
        {"pipeline_name": "prod", "checkpoint": "random", "random_within_days": 7},
        r"checkpoint='random' needs bucket_conn_id",
    ),
    Case(
        "drill_unknown_checkpoint_word",
        "drill",
        {"pipeline_name": "prod", "checkpoint": "newest"},
        r"checkpoint='newest' is not valid: 'latest', 'random'",
    ),
    Case(
        "drill_no_sync_to_drill",
        "drill",
        {"pipeline_name": "nosync"},
        r"pipeline 'nosync' has no checkpoint sync configured: pass the location to drill as location=",
    ),
    Case(
        "drill_check_without_expectation",
        "drill",
        {"pipeline_name": "prod", "sql_checks": [{"sql": "SELECT COUNT(*) FROM orders"}]},
        r"sql_checks\[0\]: give 'expect' \(the exact value\) or 'min'/'max'",
        "parse",
    ),
    Case(
        "drill_validate_not_callable",
        "drill",
        {"pipeline_name": "prod", "validate": "check_it"},
        r"validate='check_it' is not valid: a callable",
        "parse",
    ),
    # -- ActivateStandbyOperator ------------------------------------------------------------------------------
    Case(
        "activate_bad_initial",
        "activate",
        {"pipeline_name": "staging", "initial": "standby"},
        r"initial='standby' is not valid: 'running' or 'paused'",
    ),
    Case(
        "activate_not_a_standby",
        "activate",
        {"pipeline_name": "staging"},
        r"pipeline 'staging' is Stopped, not in Standby: start it as a standby first",
    ),
    Case(
        "activate_running_not_a_standby",
        "activate",
        {"pipeline_name": "prod"},
        r"pipeline 'prod' is Running but was not started as a standby.*there is no standby to activate",
    ),
    Case(
        "activate_text_timeout",
        "activate",
        {"pipeline_name": "staging", "timeout": "soon"},
        r"timeout='soon' is not valid: a positive number of seconds",
        "parse",
    ),
    Case(
        "activate_zero_max_checkpoint_age",
        "activate",
        {"pipeline_name": "staging", "max_checkpoint_age": 0},
        r"max_checkpoint_age=0 is not valid: a positive number of seconds",
        "parse",
    ),
    Case(
        "activate_bad_primary_name",
        "activate",
        {"pipeline_name": "staging", "primary_pipeline_name": "prod primary"},
        r"primary_pipeline_name='prod primary' is not valid: a Feldera pipeline name",
    ),
    Case(
        "activate_primary_running",
        "activate",
        {"pipeline_name": "staging", "primary_pipeline_name": "prod"},
        r"primary pipeline 'prod' is still Running.*allow_split_brain=True",
    ),
    Case(
        "activate_text_allow_stale_checkpoint",
        "activate",
        {"pipeline_name": "staging", "allow_stale_checkpoint": "yes"},
        r"allow_stale_checkpoint='yes' is not valid: True or False",
    ),
    Case(
        "activate_empty_approval_task_id",
        "activate",
        {"pipeline_name": "staging", "approval_task_id": ""},
        r"approval_task_id='' is not valid: the task id of an ApprovalOperator",
    ),
    # An approval_task_id naming no approval task of the DAG is a DAG import error (tests/integration/
    # test_dag_checks.py); one that did not answer is refused when the activation runs (test_recovery_operators.py).
    # -- FailoverReadinessOperator ----------------------------------------------------------------------------
    Case(
        "readiness_bad_name",
        "readiness",
        {"pipeline_name": "stand by"},
        r"pipeline_name='stand by' is not valid: a Feldera pipeline name",
    ),
    Case(
        "readiness_bad_primary_name",
        "readiness",
        {"pipeline_name": "staging", "primary_pipeline_name": "prod/1"},
        r"primary_pipeline_name='prod/1' is not valid: a Feldera pipeline name",
    ),
    Case(
        "readiness_negative_max_checkpoint_age",
        "readiness",
        {"pipeline_name": "staging", "max_checkpoint_age": -5},
        r"max_checkpoint_age=-5 is not valid: a positive number of seconds",
        "parse",
    ),
    Case("readiness_unknown_standby", "readiness", {"pipeline_name": "ghost"}, r"no pipeline named 'ghost'"),
]


CLASSES: dict[str, Any] = {
    "sync": SyncCheckpointOperator,
    "sensor": CheckpointStatusSensor,
    "configure": ConfigureCheckpointSyncOperator,
    "restore": RestoreCheckpointOperator,
    "activate": ActivateStandbyOperator,
    "readiness": FailoverReadinessOperator,
    "replicate": ReplicateCheckpointsOperator,
    "verify": VerifyCheckpointsOperator,
    "drill": RestoreDrillOperator,
    "freshness": CheckpointFreshnessSensor,
}
FAST = {
    "sync": {"poll_interval": 0.2, "timeout": 10},
    "sensor": {"poke_interval": 0.2, "timeout": 10},
    "freshness": {"poke_interval": 0.2},
}


def add_dags(operator: str, fileloc: str) -> None:
    """Build the run-stage cases of one operator class as DAGs, in the DAG file ``fileloc`` that calls this.

    Each class's cases are a DAG bundle of their own (``tests/dags/bad_input_<operator>/``): ``dag.test()``
    re-parses and re-syncs the whole bundle of the DAG it runs, so a bundle of all the cases made every case pay
    for all of them.
    """
    for case in CASES:
        if case.stage == "run" and case.operator == operator:
            with DAG(f"bad_input_{case.id}", schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) as dag:
                CLASSES[case.operator](task_id="task", **{**FAST.get(case.operator, {}), **case.kwargs})
            dag.fileloc = fileloc
