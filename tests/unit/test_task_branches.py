"""Fast table tests of the task layer's branches (dbt style), beside the real-server tests that stay.

The hook is the real FelderaHook with only its transport replaced: ``send`` answers from a table keyed by
``"METHOD /suffix"``, so the hook's endpoint methods, its request flows, the wait rules and the operators all run
as they do against Feldera. The context is a minimal stand-in for the task runner's.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout, TaskDeferred
from stub_hook import StubHook

from airflow_checkpoint_sync.exceptions import FelderaApiError, FelderaConnectionError, FelderaTriggerEventError
from airflow_checkpoint_sync.operators.checkpoint import SyncCheckpointOperator
from airflow_checkpoint_sync.operators.restore import RestoreCheckpointOperator
from airflow_checkpoint_sync.operators.standby import ActivateStandbyOperator
from airflow_checkpoint_sync.sensors.checkpoint import CheckpointStatusSensor
from airflow_checkpoint_sync.sensors.freshness import CheckpointFreshnessSensor
from airflow_checkpoint_sync.triggers.checkpoint import CheckpointSyncTrigger

UUID = "0199a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b"
NEWER = "0199a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6c"
INCARNATION = "0199a3c4-0000-7000-8000-000000000001"
SYNC = {"bucket": "b/p", "endpoint": "http://127.0.0.1:9"}
RUNNING = {
    "deployment_status": "Running",
    "runtime_config": {"storage": {"backend": {"name": "file", "config": {"sync": SYNC}}}},
}
ENTERPRISE = {"edition": "Enterprise", "version": "0.337.0"}


class TI:
    stats_tags: dict[str, str] = {}

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


class Store:
    def __init__(self, values: dict[str, Any] | None = None) -> None:
        self.values = dict(values or {})

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


def context(**values: Any) -> dict[str, Any]:
    return {"ti": TI(), "task_state_store": Store(), **values}


def sync_op(answers: dict[str, Any], **kwargs: Any) -> tuple[SyncCheckpointOperator, StubHook]:
    op = SyncCheckpointOperator(task_id="sync", pipeline_name="p", poll_interval=0.01, timeout=5, **kwargs)
    op._hook = hook = StubHook({"GET /v0/config": ENTERPRISE, "GET ": RUNNING, **answers})
    return op, hook


SYNC_STARTED = {
    "GET /checkpoints": [[], [{"uuid": UUID}]],
    "POST /checkpoint": {"checkpoint_sequence_number": 1, "incarnation_uuid": INCARNATION},
    "GET /checkpoint_status": {"success": 1, "failure": None},
    "POST /checkpoint/sync": {"checkpoint_uuid": UUID, "incarnation_uuid": INCARNATION},
}


# -- preflight: refused before anything changes ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("answers", "words"),
    [
        ({"GET ": {**RUNNING, "deployment_status": "Standby"}}, "is in Standby"),
        ({"GET ": {**RUNNING, "deployment_status": "Stopped"}}, "must be Running or Paused"),
        ({"GET ": {"deployment_status": "Running", "runtime_config": {}}}, "no checkpoint sync configured"),
        ({"GET /v0/config": {"edition": "Open source"}}, "need Feldera Enterprise"),
        ({"GET ": FelderaApiError("m", status=404, error_code="UnknownPipelineName")}, "no pipeline named 'p'"),
        ({"GET ": FelderaApiError("m", status=401)}, "API key was rejected"),
    ],
)
def test_sync_preflight_refuses_for_good_and_changes_nothing(answers: dict[str, Any], words: str) -> None:
    op, hook = sync_op(answers)
    with pytest.raises(AirflowFailException, match=words):
        op.execute(context())
    assert hook.mutations() == []


def test_a_deferring_sync_carries_its_state_in_the_trigger_and_publishes_first() -> None:
    op, _ = sync_op({**SYNC_STARTED, "GET /checkpoint/sync_status": {"success": None, "running": [UUID]}})
    ctx = context()
    op.deferrable = True
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx)
    trigger = deferred.value.trigger
    assert isinstance(trigger, CheckpointSyncTrigger)
    assert (trigger.checkpoint_uuid, trigger.incarnation_uuid) == (UUID, INCARNATION)
    assert trigger.echo == {"restarts": 0, "end_time": trigger.end_time, "bucket": "b/p"}
    assert ctx["ti"].xcom == {"checkpoint_uuid": UUID, "incarnation_uuid": INCARNATION}
    assert ctx["task_state_store"].get("feldera_checkpoint_sync") == {
        "checkpoint_uuid": UUID,
        "incarnation_uuid": INCARNATION,
    }


def event(status: str, **fields: Any) -> dict[str, Any]:
    echo = {"restarts": 0, "end_time": time.time() + 5, "bucket": "b/p", **fields.pop("echo", {})}
    return {
        "status": status,
        "pipeline_name": "p",
        "message": f"it was {status}",
        "checkpoint_uuid": UUID,
        "incarnation_uuid": INCARNATION,
        "final": False,
        "echo": echo,
        **fields,
    }


@pytest.mark.parametrize(
    ("resumed", "raises"),
    [
        (event("failure", error="SignatureDoesNotMatch"), AirflowException),
        (event("timeout"), AirflowException),
        (event("error", final=True), AirflowFailException),
        (event("error"), AirflowException),
        (event("restarted", echo={"restarts": 1}), AirflowException),
        ({"status": "success"}, FelderaTriggerEventError),
        (None, FelderaTriggerEventError),
    ],
)
def test_execute_complete_maps_every_event(resumed: Any, raises: type[Exception]) -> None:
    op, hook = sync_op({})
    with pytest.raises(raises) as failed:
        op.execute_complete(context(), resumed)
    assert type(failed.value) is raises
    assert hook.mutations() == []


def test_execute_complete_success_returns_the_uuid_of_its_own_event() -> None:
    op, _ = sync_op({})
    assert op.execute_complete(context(), event("success")) == UUID


def test_a_first_restart_starts_one_new_sync_and_defers_again() -> None:
    op, hook = sync_op(
        {
            "POST /checkpoint/sync": {"checkpoint_uuid": NEWER, "incarnation_uuid": INCARNATION},
            "GET /checkpoint/sync_status": {"success": None, "running": [NEWER]},
            "GET /checkpoints": [[{"uuid": NEWER}]],  # the push under way is its own: joined, not waited for
        },
        deferrable=True,
    )
    ctx = context()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute_complete(ctx, event("restarted"))
    assert hook.mutations() == ["POST /checkpoint/sync"]
    assert deferred.value.trigger.checkpoint_uuid == NEWER
    assert deferred.value.trigger.echo["restarts"] == 1
    assert ctx["ti"].xcom["checkpoint_uuid"] == NEWER


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ({"success": None, "running": []}, "asks again"),  # a Feldera that joins repeats: safe to ask again
        ({"success": UUID, "running": []}, "follows"),  # it had started
        ({"success": None}, "refuses"),  # a 0.337 Feldera cannot say: never re-send blindly
    ],
)
def test_a_lost_answer_to_the_sync_request_is_looked_up_not_resent(status: dict[str, Any], outcome: str) -> None:
    lost = FelderaConnectionError("reset", sent=True)
    answers = {
        **SYNC_STARTED,
        "GET /checkpoints": [[{"uuid": UUID}]],
        "POST /checkpoint/sync": [lost, {"checkpoint_uuid": UUID, "incarnation_uuid": INCARNATION}],
        "GET /stats": {"global_metrics": {"incarnation_uuid": INCARNATION}},
        "GET /checkpoint/sync_status": status,
    }
    op, hook = sync_op(answers, take_checkpoint=False, wait_for_completion=False)
    if outcome == "refuses":
        with pytest.raises(AirflowException, match="not re-sending it blindly"):
            op.execute(context())
    else:
        assert op.execute(context()) == UUID
    assert hook.mutations().count("POST /checkpoint/sync") == (2 if outcome == "asks again" else 1)


def test_a_checkpoint_request_whose_answer_is_lost_is_never_resent() -> None:
    answers = {**SYNC_STARTED, "POST /checkpoint": FelderaApiError("m", status=502), "GET /checkpoints": [[]]}
    op, hook = sync_op(answers)
    op.timeout = 0.3
    with pytest.raises(AirflowException, match="not re-sending it blindly") as failed:
        op.execute(context())
    assert type(failed.value) is AirflowException  # the task's retries decide
    assert hook.mutations() == ["POST /checkpoint"]


# -- restore and activate ------------------------------------------------------------------------------------------
def test_restore_refuses_a_running_pipeline_without_changing_it() -> None:
    op = RestoreCheckpointOperator(task_id="r", pipeline_name="p", bucket="b/p2", checkpoint=UUID)
    op._hook = hook = StubHook({"GET /v0/config": ENTERPRISE, "GET ": RUNNING})
    with pytest.raises(AirflowFailException, match="needs it stopped"):
        op.execute(context())
    assert hook.mutations() == []


def test_a_deferred_restore_brings_its_result_back_from_the_echo() -> None:
    stopped = {**RUNNING, "deployment_status": "Stopped"}
    op = RestoreCheckpointOperator(task_id="r", pipeline_name="p", bucket="b/p2", checkpoint=UUID, deferrable=True)
    op._hook = hook = StubHook(
        {
            "GET /v0/config": ENTERPRISE,
            "GET ": [stopped, {**stopped, "deployment_status": "Initializing"}],
            "PATCH ": None,
            "POST /start": "Pipeline is starting",
        }
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    assert hook.mutations() == ["PATCH ", "POST /start"]
    trigger = deferred.value.trigger
    started_at = trigger.echo["result"]["started_at"]  # when the start was asked for: the restore's duration
    assert trigger.echo == {"result": {"pipeline_name": "p", "checkpoint": UUID, "started_at": started_at}}
    fired = {
        "status": "success",
        "pipeline_name": "p",
        "message": "p is Running",
        "deployment_status": "Running",
        "targets": ["Running"],
        "final": False,
        "echo": trigger.echo,
    }
    resumed = op.resume_after_status(context(), fired)
    assert resumed == {"pipeline_name": "p", "checkpoint": UUID, "started_at": started_at, "status": "Running"}


@pytest.mark.parametrize("status", ["Stopped", "Provisioning", "AwaitingApproval"])
def test_activate_refuses_what_is_not_a_standby(status: str) -> None:
    op = ActivateStandbyOperator(task_id="a", pipeline_name="p")
    op._hook = hook = StubHook(
        {"GET /v0/config": ENTERPRISE, "GET ": {"deployment_status": status, "deployment_desired_status": "Stopped"}}
    )
    with pytest.raises(AirflowFailException, match="not in Standby"):
        op.execute(context())
    assert hook.mutations() == []


@pytest.mark.parametrize(("initial", "refused"), [("Running", True), (None, True), ("Standby", False)])
def test_activate_counts_only_an_activated_standby_as_done(initial: str | None, refused: bool) -> None:
    op = ActivateStandbyOperator(task_id="a", pipeline_name="p")
    pipeline = {"deployment_status": "Running", "deployment_initial": initial}
    op._hook = hook = StubHook({"GET /v0/config": ENTERPRISE, "GET ": pipeline})
    if refused:
        with pytest.raises(AirflowFailException, match="was not started as a standby"):
            op.execute(context())
    else:
        assert op.execute(context())["already_active"] is True
    assert hook.mutations() == []


@pytest.mark.parametrize(("sync", "extra"), [({"bucket": "b/s", "pull_interval": 300}, 300), ({"bucket": "b/s"}, 10)])
def test_the_activation_wait_allows_two_pull_intervals(sync: dict[str, Any], extra: float) -> None:
    op = ActivateStandbyOperator(task_id="a", pipeline_name="p", timeout=60, deferrable=True)
    standby = {
        "deployment_status": "Standby",
        "runtime_config": {"storage": {"backend": {"name": "file", "config": {"sync": sync}}}},
    }
    answers = {"GET /v0/config": ENTERPRISE, "GET ": standby, "GET /checkpoints": [[]], "POST /activate": None}
    op._hook = hook = StubHook(answers)
    began = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    assert 60 + 2 * extra <= deferred.value.trigger.end_time - began < 60 + 2 * extra + 5
    assert hook.mutations() == ["POST /activate"]


# -- sensors -------------------------------------------------------------------------------------------------------
def test_status_sensor_timeout_is_a_sensor_timeout_so_soft_fail_applies() -> None:
    sensor = CheckpointStatusSensor(task_id="s", pipeline_name="p", checkpoint_uuid=UUID, soft_fail=True)
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute_complete(context(), event("timeout"))


@pytest.mark.parametrize("status", ["failure", "restarted"])
def test_a_sensor_fails_for_good_where_its_retry_would_read_the_same(status: str) -> None:
    # An operator's retry makes a fresh attempt; a sensor's would re-read this answer (and soft_fail needs it final).
    sensor = CheckpointStatusSensor(task_id="s", pipeline_name="p", checkpoint_uuid=UUID)
    with pytest.raises(AirflowFailException):
        sensor.execute_complete(context(), event(status))
    with pytest.raises(AirflowException) as operator:
        sync_op({})[0].execute_complete(context(), event(status, echo={"restarts": 1}))
    assert type(operator.value) is AirflowException


def test_status_sensor_poke_reads_its_own_uuid() -> None:
    sensor = CheckpointStatusSensor(task_id="s", pipeline_name="p", checkpoint_uuid=UUID)
    sensor._hook = StubHook({"GET /checkpoint/sync_status": [{"success": None, "running": [UUID]}, {"success": UUID}]})
    assert sensor.poke(context()) is False
    assert sensor.poke(context()).xcom_value == UUID


def test_freshness_sensor_calls_on_stale_with_the_measurement_then_fails() -> None:
    seen: list[dict[str, Any]] = []
    sensor = CheckpointFreshnessSensor(
        task_id="f", pipeline_name="p", max_age=60, on_stale=lambda ctx, m: seen.append(m)
    )
    old = "01000000-0000-7000-8000-000000000000"  # 1978: stale by any objective
    sensor._hook = StubHook({"GET /checkpoint/sync_status": {"success": old}})
    ctx = context()
    with pytest.raises(AirflowFailException, match="recovery point objective missed"):
        sensor.poke(ctx)
    assert seen == [ctx["ti"].xcom["freshness"]] and seen[0]["checkpoint_uuid"] == old
