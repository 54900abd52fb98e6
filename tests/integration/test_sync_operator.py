"""SyncCheckpointOperator through dag.test(), over real HTTP to the sandbox with moto's S3 behind it."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

import pytest
from airflow_support import asset_event_extras, feldera_connection, run_dag, task_states, xcoms
from feldera_setup import Feldera
from support import wait_until

from airflow_checkpoint_sync.testing import FelderaSandbox, MotoS3Server

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

T = TypeVar("T")

API_KEY = "apikey:" + "q" * 48
SYNC = "/v0/pipelines/prod/checkpoint/sync"
SYNC_STATUS = "/v0/pipelines/prod/checkpoint/sync_status"


@pytest.fixture
def feldera(
    airflow_db: str, moto_s3: MotoS3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Feldera]:
    with FelderaSandbox(api_key=API_KEY) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(sandbox.url, API_KEY))
        yield Feldera(sandbox, moto_s3, s3_bucket, API_KEY)


def requests_to(feldera: Feldera, method: str, path: str) -> list[dict[str, object]]:
    return [r for r in feldera.sandbox.control.requests() if r["method"] == method and r["path"] == path]


@pytest.mark.parametrize("dag_id", ["sync_in_worker", "sync_deferred"])
def test_sync_lands_in_the_bucket_catalog(feldera: Feldera, dag_id: str) -> None:
    feldera.running_pipeline("prod", records=12)
    run = run_dag(dag_id, pipeline="prod")
    assert task_states(run) == {"sync": "success"}
    values = xcoms(run)
    uuid = values[("sync", "return_value")]
    assert values[("sync", "checkpoint_uuid")] == uuid
    assert values[("sync", "incarnation_uuid")]
    assert values[("sync", "_link_FelderaPipelineLink")] == f"{feldera.sandbox.url}/pipelines/prod/"
    # What the XCom tab shows is what a user needs: no internal state, no second copy of the link.
    assert {key for _, key in values} == {
        "return_value",
        "checkpoint_uuid",
        "incarnation_uuid",
        "_link_FelderaPipelineLink",
    }
    assert uuid in feldera.catalog("prod")
    assert feldera.catalog_entry("prod", uuid)["processed_records"] == 12
    assert asset_event_extras(run) == [
        {"pipeline_name": "prod", "checkpoint_uuid": uuid, "bucket": f"{feldera.bucket}/prod"}
    ]
    assert len(requests_to(feldera, "POST", "/v0/pipelines/prod/checkpoint")) == 1
    assert len(requests_to(feldera, "POST", SYNC)) == 1


def test_sync_of_the_newest_existing_checkpoint(feldera: Feldera) -> None:
    feldera.running_pipeline("prod", records=3)
    feldera.http.post("/pipelines/prod/checkpoint")
    run = run_dag("sync_existing_checkpoint", pipeline="prod")
    assert task_states(run) == {"sync": "success"}
    assert requests_to(feldera, "POST", "/v0/pipelines/prod/checkpoint") == [
        r for r in feldera.sandbox.control.requests() if r["path"] == "/v0/pipelines/prod/checkpoint"
    ]
    assert len(requests_to(feldera, "POST", "/v0/pipelines/prod/checkpoint")) == 1  # only the setup's own


@pytest.mark.parametrize("dag_id", ["sync_in_worker", "sync_deferred"])
def test_feldera_side_failure_fails_with_feldera_text(
    feldera: Feldera, dag_id: str, capfd: pytest.CaptureFixture[str]
) -> None:
    feldera.running_pipeline("prod")
    feldera.sandbox.control.fail_next_sync("prod", "AccessDenied: the bucket policy forbids PutObject")
    run = run_dag(dag_id, pipeline="prod")
    assert task_states(run) == {"sync": "failed"}
    assert "AccessDenied: the bucket policy forbids PutObject" in capfd.readouterr().out
    assert feldera.catalog("prod") == []


@pytest.mark.parametrize("dag_id", ["sync_in_worker", "sync_deferred"])
def test_restart_mid_sync_starts_one_new_sync(feldera: Feldera, dag_id: str, capfd: pytest.CaptureFixture[str]) -> None:
    feldera.running_pipeline("prod", records=5)
    feldera.sandbox.control.set_timings(sync_delay_s=0.5)
    # The first status read after the sync started (the task reads it once before) finds a new pipeline process.
    feldera.sandbox.control.restart_on(SYNC_STATUS, method="GET", skip=1)
    run = run_dag(dag_id, pipeline="prod")
    assert task_states(run) == {"sync": "success"}
    assert len(requests_to(feldera, "POST", SYNC)) == 2
    uuid = xcoms(run)[("sync", "return_value")]
    assert uuid in feldera.catalog("prod")
    assert "waiting for the new process to run, then starting a new sync" in capfd.readouterr().out


def test_bursts_of_503_and_429_are_ridden_out_without_duplicates(feldera: Feldera) -> None:
    feldera.running_pipeline("prod", records=2)
    control = feldera.sandbox.control
    control.fail(
        "/v0/pipelines/prod/checkpoint", method="POST", status=429, retry_after=1, count=2, error_code="TooManyRequests"
    )
    control.fail(SYNC, method="POST", status=503, count=2, error_code="PipelineInteractionNotDeployed")
    control.fail(SYNC_STATUS, method="GET", status=503, count=3)
    control.fail("/v0/pipelines/prod", method="GET", status=502, count=2)
    run = run_dag("sync_in_worker", pipeline="prod")
    assert task_states(run) == {"sync": "success"}
    checkpoint_posts = requests_to(feldera, "POST", "/v0/pipelines/prod/checkpoint")
    assert [r["status"] for r in checkpoint_posts] == [429, 429, 200]
    assert [r["status"] for r in requests_to(feldera, "POST", SYNC)] == [503, 503, 202]
    assert len(feldera.sandbox.control.storage("prod")["checkpoints"]) == 1


def test_lost_answer_to_a_sync_request_is_not_resent_blindly(feldera: Feldera) -> None:
    feldera.running_pipeline("prod", records=2)
    feldera.sandbox.control.set_timings(sync_delay_s=0.5)
    feldera.sandbox.control.drop(SYNC, method="POST", after=True)
    run = run_dag("sync_in_worker", pipeline="prod")
    assert task_states(run) == {"sync": "success"}
    # The request reached Feldera; the operator found the running sync and followed it instead of asking again.
    assert [r["fault"] for r in requests_to(feldera, "POST", SYNC)] == ["drop_after"]
    assert xcoms(run)[("sync", "return_value")] in feldera.catalog("prod")


@pytest.mark.parametrize("dag_id", ["sync_short_timeout", "sync_deferred_short_timeout"])
def test_a_sync_that_outlives_the_timeout_fails_at_the_deadline(
    feldera: Feldera, dag_id: str, capfd: pytest.CaptureFixture[str]
) -> None:
    feldera.running_pipeline("prod")
    feldera.sandbox.control.set_timings(sync_delay_s=60)
    run = run_dag(dag_id, pipeline="prod")
    assert task_states(run) == {"sync": "failed"}
    assert "was still in progress at the deadline" in capfd.readouterr().out


def test_old_servers_without_running_field(
    airflow_db: str, moto_s3: MotoS3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FelderaSandbox(sync_running_field=False) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(sandbox.url))
        feldera = Feldera(sandbox, moto_s3, s3_bucket)
        feldera.running_pipeline("prod", records=4)
        sandbox.control.set_timings(sync_delay_s=0.5)
        run = run_dag("sync_deferred", pipeline="prod")
        assert task_states(run) == {"sync": "success"}
        assert xcoms(run)[("sync", "return_value")] in feldera.catalog("prod")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("standby", "is in Standby"),
        ("no_sync", "has no checkpoint sync configured"),
        ("stopped", "is Stopped: it must be Running or Paused"),
        ("no_checkpoint", "has no local checkpoint to sync"),
        ("missing", "there is no pipeline named 'prod'"),
        ("bad_name", "is not valid: a Feldera pipeline name"),
    ],
)
def test_error_cases_fail_at_once_and_change_nothing(
    feldera: Feldera, setup: str, message: str, capfd: pytest.CaptureFixture[str]
) -> None:
    dag_id, conf = "sync_in_worker", {"pipeline": "prod"}
    if setup == "standby":
        feldera.create("primary")
        feldera.start("primary")
        feldera.http.post("/pipelines/primary/checkpoint")
        feldera.http.post("/pipelines/primary/checkpoint/sync")
        from support import sync_config

        feldera.create(
            "prod",
            sync_config(
                feldera.s3,
                feldera.bucket,
                "prod",
                read_bucket=f"{feldera.bucket}/primary",
                start_from_checkpoint="latest",
            ),
        )
        feldera.start("prod", "standby")
    elif setup == "no_sync":
        feldera.running_pipeline("prod", sync=None)
    elif setup == "stopped":
        feldera.create("prod")
    elif setup == "no_checkpoint":
        feldera.running_pipeline("prod")
        dag_id = "sync_existing_checkpoint"
    elif setup == "bad_name":
        conf = {"pipeline": "no such/pipeline"}
    before = feldera.mutating_requests()
    feldera.sandbox.control.clear_requests()
    run = run_dag(dag_id, **conf)
    assert task_states(run) == {"sync": "failed"}
    assert message in capfd.readouterr().out
    mutated = feldera.mutating_requests()
    if setup == "no_checkpoint":
        assert mutated == ["POST /v0/pipelines/prod/checkpoint/sync"]  # refused by Feldera, nothing synced
    else:
        assert mutated == [], before


def test_community_edition_fails_before_any_request_that_changes_something(
    airflow_db: str,
    monkeypatch: pytest.MonkeyPatch,
    moto_s3: MotoS3Server,
    s3_bucket: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    with FelderaSandbox(edition="community") as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(sandbox.url))
        feldera = Feldera(sandbox, moto_s3, s3_bucket)
        feldera.running_pipeline("prod", sync=None)
        sandbox.control.clear_requests()
        run = run_dag("sync_in_worker", pipeline="prod")
        assert task_states(run) == {"sync": "failed"}
        assert "need Feldera Enterprise" in capfd.readouterr().out
        assert feldera.mutating_requests() == []


def test_retry_after_a_lost_worker_reattaches_to_the_running_sync(feldera: Feldera) -> None:
    feldera.running_pipeline("prod", records=6)
    feldera.sandbox.control.set_timings(sync_delay_s=1.0)
    # The first try dies after it started the sync (its status read fails hard); the retry must not start another.
    feldera.sandbox.control.fail(SYNC_STATUS, method="GET", status=500, count=1, error_code="InternalError", skip=1)
    run = run_dag("sync_with_retries", pipeline="prod")
    assert task_states(run) == {"sync": "success"}
    assert len(requests_to(feldera, "POST", SYNC)) == 1
    assert len(requests_to(feldera, "POST", "/v0/pipelines/prod/checkpoint")) == 1
    assert xcoms(run)[("sync", "return_value")] in feldera.catalog("prod")


def test_a_retry_that_finds_the_sync_done_publishes_what_the_status_sensor_reads(
    feldera: Feldera, capfd: pytest.CaptureFixture[str]
) -> None:
    feldera.running_pipeline("prod", records=6)
    # The first try dies on the status reads after it started the sync (each of the hook's six attempts answered
    # 500); the sync finishes meanwhile, so the retry finds it done (Airflow's ResumableJobMixin: "already
    # completed") and starts nothing.
    feldera.sandbox.control.fail(SYNC_STATUS, method="GET", status=500, count=6, error_code="InternalError", skip=1)
    capfd.readouterr()
    run = run_dag("sync_retried_then_wait", pipeline="prod")
    out = capfd.readouterr().out
    assert task_states(run) == {"sync": "success", "wait": "success"}, out[-3000:]
    assert "Job already completed successfully" in out
    assert len(requests_to(feldera, "POST", SYNC)) == 1
    results = xcoms(run)
    uuid = results[("sync", "return_value")]
    assert uuid in feldera.catalog("prod")
    # What the downstream sensor read: this try's XComs, the same uuid, and the sync's incarnation.
    assert results[("sync", "checkpoint_uuid")] == uuid == results[("wait", "return_value")]
    assert results[("sync", "incarnation_uuid")]


STATUS = "/pipelines/prod/checkpoint/sync_status"


@contextmanager
def a_0337_feldera_showing_a_failed_push(
    moto_s3: MotoS3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Feldera, str]]:
    """A Feldera 0.337 (no `running`; an older failure of a checkpoint stays visible while it is pushed again) whose
    running 'prod' shows a failed push of its newest checkpoint; its pushes then take a second."""
    with FelderaSandbox(sync_running_field=False) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(sandbox.url))
        feldera = Feldera(sandbox, moto_s3, s3_bucket)
        feldera.running_pipeline("prod", records=3)
        feldera.http.post("/pipelines/prod/checkpoint")
        wait_until(lambda: sandbox.control.storage("prod")["checkpoints"], bool)
        sandbox.control.fail_next_sync("prod", "SlowDown: please reduce your request rate")
        uuid = feldera.http.post("/pipelines/prod/checkpoint/sync").json()["checkpoint_uuid"]
        wait_until(lambda: feldera.http.get(STATUS).json()["failure"], bool)
        sandbox.control.set_timings(sync_delay_s=1.0)
        yield feldera, uuid


def test_on_a_0337_feldera_a_failure_shown_before_the_push_is_not_its_outcome(
    airflow_db: str, moto_s3: MotoS3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with a_0337_feldera_showing_a_failed_push(moto_s3, s3_bucket, monkeypatch) as (feldera, uuid):
        run = run_dag("sync_existing_checkpoint", pipeline="prod")  # pushes the same checkpoint again
        assert task_states(run) == {"sync": "success"}
        assert xcoms(run)[("sync", "return_value")] == uuid
        assert feldera.catalog("prod") == [uuid]
        assert feldera.http.get(STATUS).json()["failure"]["uuid"] == uuid  # still shown: 0.337 keeps it


def test_on_a_0337_feldera_a_lost_answer_never_adopts_an_earlier_failure(
    airflow_db: str, moto_s3: MotoS3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The push is accepted but its answer lost; Feldera 0.337 still shows an earlier failure of the same checkpoint.
    with a_0337_feldera_showing_a_failed_push(moto_s3, s3_bucket, monkeypatch) as (feldera, uuid):
        feldera.sandbox.control.drop(SYNC, method="POST", after=True)
        feldera.sandbox.control.clear_requests()
        run = run_dag("sync_existing_checkpoint", pipeline="prod")
        assert task_states(run) == {"sync": "success"}
        assert xcoms(run)[("sync", "return_value")] == uuid
        assert len(requests_to(feldera, "POST", SYNC)) == 1  # not re-sent
        assert feldera.catalog("prod") == [uuid]


def once_the_task_sends(feldera: Feldera, request: str, action: Callable[[], T]) -> Future[T]:
    """Run ``action`` the moment this run's task has sent ``request`` (a DAG run spends seconds parsing before its
    task starts: anything done before ``run_dag`` would be over by then)."""
    feldera.sandbox.control.clear_requests()

    def act() -> T:
        sent = lambda: [f"{r['method']} {r['path']}" for r in feldera.sandbox.control.requests()]  # noqa: E731
        wait_until(sent, lambda requests: request in requests, timeout=120, every=0.01)
        return action()

    return ThreadPoolExecutor(max_workers=1).submit(act)


def another_runs_push_once_the_task_sends(feldera: Feldera, request: str) -> Future[str]:
    """Another run's push of the newest existing checkpoint (one is taken now), started once the task sent
    ``request``."""
    before = len(feldera.sandbox.control.storage("prod")["checkpoints"])
    feldera.http.post("/pipelines/prod/checkpoint")
    wait_until(lambda: feldera.sandbox.control.storage("prod")["checkpoints"], lambda c: len(c) > before)
    return once_the_task_sends(
        feldera,
        request,
        lambda: str(feldera.http.post("/pipelines/prod/checkpoint/sync").json()["checkpoint_uuid"]),
    )


def position(log: list[str], text: str) -> int:
    return next(i for i, line in enumerate(log) if text in line)


@pytest.mark.parametrize("dag_id", ["sync_in_worker", "sync_deferred"])
def test_a_push_under_way_for_another_checkpoint_is_waited_for(
    feldera: Feldera, dag_id: str, capfd: pytest.CaptureFixture[str]
) -> None:
    feldera.running_pipeline("prod", records=2)
    # The task's own checkpoint takes a second: their push of the older one starts as it is asked for.
    feldera.sandbox.control.set_timings(sync_delay_s=3, checkpoint_s=1.0)
    pushed = another_runs_push_once_the_task_sends(feldera, "POST /v0/pipelines/prod/checkpoint")
    run = run_dag(dag_id, pipeline="prod")
    theirs = pushed.result(timeout=10)
    assert task_states(run) == {"sync": "success"}
    mine = xcoms(run)[("sync", "return_value")]
    assert mine != theirs
    assert f"is already pushing {theirs} (started by another run); waiting for that push to end" in (
        capfd.readouterr().out
    )
    log = feldera.sandbox.control.log("prod")
    assert position(log, f"checkpoint sync of {theirs} succeeded") < position(log, f"checkpoint sync of {mine} started")
    assert sorted(feldera.catalog("prod")) == sorted([theirs, mine])


def test_a_push_under_way_for_the_same_checkpoint_is_joined(
    feldera: Feldera, capfd: pytest.CaptureFixture[str]
) -> None:
    feldera.running_pipeline("prod", records=2)
    feldera.sandbox.control.set_timings(sync_delay_s=3)
    # Their push starts when the task reads the pipeline; the task's first status read comes a second later.
    pushed = another_runs_push_once_the_task_sends(feldera, "GET /v0/pipelines/prod")
    feldera.sandbox.control.delay(SYNC_STATUS, 1.0, method="GET")
    run = run_dag("sync_existing_checkpoint", pipeline="prod")
    theirs = pushed.result(timeout=10)
    assert task_states(run) == {"sync": "success"}
    assert xcoms(run)[("sync", "return_value")] == theirs
    assert "is already being pushed (by another run, or an earlier try); joining that push" in capfd.readouterr().out
    assert sum(f"checkpoint sync of {theirs} started" in line for line in feldera.sandbox.control.log("prod")) == 1


def test_a_push_under_way_that_outlives_the_timeout_fails_without_pushing(
    feldera: Feldera, capfd: pytest.CaptureFixture[str]
) -> None:
    feldera.running_pipeline("prod", records=2)
    feldera.sandbox.control.set_timings(sync_delay_s=30, checkpoint_s=1.0)
    pushed = another_runs_push_once_the_task_sends(feldera, "POST /v0/pipelines/prod/checkpoint")
    run = run_dag("sync_short_timeout", pipeline="prod")
    theirs = pushed.result(timeout=10)
    assert task_states(run) == {"sync": "failed"}
    assert f"was still pushing {theirs} (started by another run) when the timeout ended" in capfd.readouterr().out
    assert len(requests_to(feldera, "POST", SYNC)) == 1  # only the other run's


def test_a_pipeline_unavailable_for_a_moment_is_ridden_out(feldera: Feldera) -> None:
    # 503 PipelineUnavailable (the runner lost the process) is transient: the reads retry through it.
    feldera.running_pipeline("prod", records=3)
    feldera.sandbox.control.set_timings(sync_delay_s=0.5)
    # From the sync request on: the wait's reads meet it.
    lost = once_the_task_sends(
        feldera, "POST /v0/pipelines/prod/checkpoint/sync", lambda: feldera.sandbox.control.unavailable("prod", 1.5)
    )
    run = run_dag("sync_in_worker", pipeline="prod")
    lost.result(timeout=10)
    statuses = [r["status"] for r in requests_to(feldera, "GET", SYNC_STATUS)]
    assert 503 in statuses and statuses[-1] == 200
    assert task_states(run) == {"sync": "success"}
    assert xcoms(run)[("sync", "return_value")] in feldera.catalog("prod")


@pytest.mark.parametrize("dag_id", ["sync_patient", "sync_patient_deferred"])
def test_a_restart_whose_process_initializes_for_longer_than_the_request_backoff_is_waited_out(
    feldera: Feldera, dag_id: str, capfd: pytest.CaptureFixture[str]
) -> None:
    # Feldera tells of the restart at once (400 IncarnationUuidMismatch) while the new process initializes; here it
    # initializes for 25 s, longer than the hook's request backoff (about 15 s), as a large state's replay does.
    feldera.running_pipeline("prod", records=5)
    feldera.sandbox.control.set_timings(sync_delay_s=0.5, initialize_s=25)
    feldera.sandbox.control.restart_on(SYNC_STATUS, method="GET", skip=1)
    capfd.readouterr()
    run = run_dag(dag_id, pipeline="prod")
    out = capfd.readouterr().out
    assert task_states(run) == {"sync": "success"}, out[-3000:]
    # One checkpoint taken, one new sync for the new process, and that sync in the catalog.
    assert len(requests_to(feldera, "POST", "/v0/pipelines/prod/checkpoint")) == 1
    assert len(requests_to(feldera, "POST", SYNC)) == 2
    refused = [r for r in requests_to(feldera, "POST", SYNC) if r["status"] >= 400]
    assert refused == []  # the new sync was asked for once the controller was back, not pushed against a 503
    assert xcoms(run)[("sync", "return_value")] in feldera.catalog("prod")
    assert "waiting for the new process to run, then starting a new sync" in out


def test_a_scheduled_sync_that_meets_a_replaying_pipeline_waits_for_it(feldera: Feldera) -> None:
    feldera.running_pipeline("prod", records=3)
    feldera.sandbox.control.set_timings(initialize_s=3)
    feldera.sandbox.control.restart("prod")  # the pipeline is Initializing for 3 s when the task starts
    assert feldera.pipeline("prod")["deployment_status"] == "Initializing"
    run = run_dag("sync_in_worker", pipeline="prod")
    assert task_states(run) == {"sync": "success"}
    assert xcoms(run)[("sync", "return_value")] in feldera.catalog("prod")


def test_a_scheduled_sync_whose_pipeline_stays_unavailable_fails_for_a_retry(
    feldera: Feldera, capfd: pytest.CaptureFixture[str]
) -> None:
    feldera.running_pipeline("prod", records=3)
    feldera.sandbox.control.unavailable("prod", 30)
    run = run_dag("sync_short_timeout", pipeline="prod")
    assert task_states(run) == {"sync": "failed"}
    out = capfd.readouterr().out
    assert "is Unavailable on its way to Running; waiting for it" in out
    assert "AirflowFailException" not in out  # a retryable failure: the task's retries may outlast the outage
    assert requests_to(feldera, "POST", "/v0/pipelines/prod/checkpoint") == []
