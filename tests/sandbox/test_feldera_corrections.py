"""The sandbox answers as real Feldera 0.337 does where a read of its sources corrected earlier notes (the
"Corrections found later" of the Feldera API notes): activation waits for the pull loop, /activate on a running
pipeline, standby starts refused at once, status reads during Standby, error codes, sync with no config, the push
timer, and the two version profiles."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
from sandbox_api import Api
from support import sync_config, wait_until
from test_standby import standby_sync

from airflow_checkpoint_sync.testing import FelderaSandbox, MotoS3Server


def synced_primary(api: Api, s3: MotoS3Server, bucket: str) -> str:
    api.create("primary", sync_config(s3, bucket, "primary"))
    api.start("primary")
    api.ingest("primary", 0, 3)
    return api.checkpoint_and_sync("primary")


def test_activation_waits_for_the_pull_loop_to_wake(api: Api, moto_s3: MotoS3Server, s3_bucket: str) -> None:
    synced_primary(api, moto_s3, s3_bucket)
    api.create("standby", standby_sync(moto_s3, s3_bucket, pull_interval=3))
    api.start("standby", "standby")
    wait_until(lambda: api.sandbox.control.storage("standby")["checkpoints"], bool)
    asked = time.monotonic()
    assert api.http.post("/pipelines/standby/activate").status_code == 202
    # Still a standby right after the request: the loop is asleep until its next pull.
    status = api.pipeline("standby")
    assert (status["deployment_status"], status["deployment_desired_status"]) == ("Standby", "Running")
    api.wait_status("standby", "Running", timeout=20)
    assert time.monotonic() - asked >= 1.0
    log = api.sandbox.control.log("standby")
    assert any("it starts when the pull loop next wakes" in line for line in log)


def test_activate_on_a_running_pipeline_pauses_it(api: Api) -> None:
    api.create("p", None)
    api.start("p")
    assert api.http.post("/pipelines/p/activate", params={"initial": "paused"}).status_code == 202
    api.wait_status("p", "Paused")
    assert api.http.post("/pipelines/p/activate", params={"initial": "running"}).status_code == 202
    api.wait_status("p", "Running")


def test_a_standby_start_without_sync_is_refused_at_once(api: Api) -> None:
    api.create("p", None)
    r = api.http.post("/pipelines/p/start", params={"initial": "standby"})
    assert r.status_code == 400
    assert r.json()["error_code"] == "InitialStandbyNotAllowed"
    assert api.status("p") == "Stopped"


def test_initial_cannot_change_while_started(api: Api) -> None:
    api.create("p", None)
    api.start("p")
    r = api.http.post("/pipelines/p/start", params={"initial": "paused"})
    assert r.status_code == 400
    assert r.json()["error_code"] == "InitialImmutableUnlessStopped"
    assert api.http.post("/pipelines/p/start", params={"initial": "running"}).status_code == 202


def test_storage_reads_answer_during_standby(api: Api, moto_s3: MotoS3Server, s3_bucket: str) -> None:
    first = synced_primary(api, moto_s3, s3_bucket)
    api.create("standby", standby_sync(moto_s3, s3_bucket))
    api.start("standby", "standby")
    wait_until(lambda: api.sandbox.control.storage("standby")["checkpoints"], bool)
    checkpoints = api.http.get("/pipelines/standby/checkpoints")
    assert checkpoints.status_code == 200
    assert [c["uuid"] for c in checkpoints.json()] == [first]
    assert api.http.get("/pipelines/standby/checkpoint_status").status_code == 200
    assert api.http.get("/pipelines/standby/checkpoints/remote").status_code == 200
    # What needs the controller still does not.
    r = api.http.get("/pipelines/standby/checkpoint/sync_status")
    assert r.status_code == 503 and r.json()["error_code"] == "Initializing"


def test_listing_remote_checkpoints_without_sync_is_a_fetch_error(api: Api) -> None:
    api.create("p", None)
    api.start("p")
    r = api.http.get("/pipelines/p/checkpoints/remote")
    assert r.status_code == 500
    assert r.json()["error_code"] == "CheckpointFetchError"


def test_a_sync_without_sync_config_is_accepted_then_reported_failed(api: Api) -> None:
    api.create("p", None)
    api.start("p")
    api.checkpoint("p")
    r = api.http.post("/pipelines/p/checkpoint/sync")
    assert r.status_code == 202
    uuid = r.json()["checkpoint_uuid"]
    status = api.http.get("/pipelines/p/checkpoint/sync_status").json()
    assert status["failure"]["uuid"] == uuid
    assert "sync config is not set" in status["failure"]["error"]


def test_the_push_timer_counts_from_the_last_successful_push(api: Api, moto_s3: MotoS3Server, s3_bucket: str) -> None:
    # A failed periodic push is tried again at once, not a push_interval later.
    interval = 3.0
    api.create("p", sync_config(moto_s3, s3_bucket, "p", push_interval=interval))
    api.start("p")
    api.sandbox.control.fail_next_sync("p", "SlowDown: please reduce your request rate")
    api.checkpoint("p")
    log = wait_until(
        lambda: api.sandbox.control.log("p"),
        lambda lines: any("succeeded" in line for line in lines),
        timeout=20,
    )
    ends = [line for line in log if "checkpoint sync of" in line and ("failed" in line or "succeeded" in line)]
    assert "failed: SlowDown" in ends[0]
    assert "succeeded" in ends[1]
    failed_at, succeeded_at = (dt.datetime.fromisoformat(line.split(" ", 1)[0]) for line in ends[:2])
    assert (succeeded_at - failed_at).total_seconds() < interval


@pytest.mark.parametrize(("profile", "version", "running"), [("0.337", "0.337.0", False), ("0.369", "0.369.0", True)])
def test_version_profiles(profile: str, version: str, running: bool, moto_s3: MotoS3Server, s3_bucket: str) -> None:
    with FelderaSandbox(profile=profile) as sandbox:
        api = Api(sandbox)
        assert api.http.get("/config").json()["version"] == version
        synced_primary(api, moto_s3, s3_bucket)
        assert ("running" in api.http.get("/pipelines/primary/checkpoint/sync_status").json()) is running
        assert sandbox.engine.settings.profile == profile


def test_an_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("profile must be one of 0.337, 0.369")):
        FelderaSandbox(profile="0.1")


def test_an_unreachable_process_is_unavailable_with_its_own_error_code(api: Api) -> None:
    api.create("p", None)
    api.start("p")
    api.sandbox.control.unavailable("p", 30)
    status = api.pipeline("p")
    assert (status["deployment_status"], status["deployment_runtime_status"]) == ("Unavailable", "Unavailable")
    r = api.http.get("/pipelines/p/stats")
    assert r.status_code == 503
    assert r.json()["error_code"] == "PipelineUnavailable"
    assert "its status is currently 'unavailable'" in r.json()["message"]


def test_rbac_a_read_key_reads_and_every_change_is_403_and_a_bad_key_is_json_as_text() -> None:
    import httpx

    with FelderaSandbox(api_key="apikey:writer", read_api_keys=("apikey:reader",)) as sandbox:
        writer = httpx.Client(base_url=f"{sandbox.url}/v0", headers={"Authorization": "Bearer apikey:writer"})
        reader = httpx.Client(base_url=f"{sandbox.url}/v0", headers={"Authorization": "Bearer apikey:reader"})
        stranger = httpx.Client(base_url=f"{sandbox.url}/v0", headers={"Authorization": "Bearer apikey:nobody"})
        assert writer.put("/pipelines/p", json={"name": "p", "program_code": ""}).status_code in (200, 201)
        assert reader.get("/pipelines/p").status_code == 200
        assert reader.get("/config").status_code == 200
        for method, path in [
            ("POST", "/pipelines/p/start"),
            ("PATCH", "/pipelines/p"),
            ("DELETE", "/pipelines/p"),
            ("PUT", "/pipelines/q"),
            ("PATCH", "/pipelines/no-such-pipeline"),  # refused before the handler: 403, not 404
            ("GET", "/pipelines/p/query"),  # the ad-hoc query needs Write, although it is a GET
        ]:
            answer = reader.request(method, path, json={} if method != "GET" else None)
            assert answer.status_code == 403, (method, path)
            assert answer.json()["error_code"] == "InsufficientPermissions"
        assert writer.patch("/pipelines/no-such-pipeline", json={}).status_code == 404
        assert writer.get("/pipelines/p").json()["deployment_status"] == "Stopped"
        rejected = stranger.get("/pipelines/p")
        assert rejected.status_code == 401 and rejected.headers["content-type"].startswith("text/plain")
        assert rejected.json()["error_code"] == "AuthenticationFailed"
        settings = sandbox.control.state()["settings"]  # the control API echoes no key
        assert (settings["api_key"], settings["read_api_keys"]) == (None, 1)


def test_a_restart_is_told_at_once_while_the_new_process_initializes(
    api: Api, moto_s3: MotoS3Server, s3_bucket: str
) -> None:
    synced_primary(api, moto_s3, s3_bucket)
    old = api.http.post("/pipelines/primary/checkpoint").json()["incarnation_uuid"]
    api.sandbox.control.set_timings(initialize_s=3)
    api.sandbox.control.restart("primary")
    assert api.pipeline("primary")["deployment_status"] == "Initializing"
    # A stale incarnation: 400 at once, before the controller is asked for (correction 12).
    stale = api.http.get("/pipelines/primary/checkpoint/sync_status", params={"incarnation_uuid": old})
    assert (stale.status_code, stale.json()["error_code"]) == (400, "IncarnationUuidMismatch")
    # Reads answered from storage need no controller; requests that act wait for it.
    assert api.http.get("/pipelines/primary/checkpoints").status_code == 200
    assert api.http.get("/pipelines/primary/checkpoint_status").status_code == 200
    acting = api.http.post("/pipelines/primary/checkpoint/sync")
    assert (acting.status_code, acting.json()["error_code"]) == (503, "Initializing")
    assert api.http.get("/pipelines/primary/checkpoint/sync_status").status_code == 503
    api.wait_status("primary", "Running", timeout=20)
    assert api.http.post("/pipelines/primary/checkpoint/sync").status_code == 202


def test_a_fault_tolerant_pipeline_replays_after_a_restart(api: Api, moto_s3: MotoS3Server, s3_bucket: str) -> None:
    api.create("ft", sync_config(moto_s3, s3_bucket, "ft"), fault_tolerance={"model": "at_least_once"})
    api.start("ft")
    api.sandbox.control.set_timings(replay_s=2)
    api.sandbox.control.restart("ft")
    wait_until(lambda: api.pipeline("ft")["deployment_status"], lambda status: status == "Replaying")
    assert api.http.post("/pipelines/ft/checkpoint").status_code == 503
    api.wait_status("ft", "Running", timeout=20)
    assert api.http.post("/pipelines/ft/checkpoint").status_code == 200


def test_activation_takes_two_wakes_of_the_pull_loop(api: Api, moto_s3: MotoS3Server, s3_bucket: str) -> None:
    synced_primary(api, moto_s3, s3_bucket)
    api.create("standby", standby_sync(moto_s3, s3_bucket, pull_interval=2))
    api.start("standby", "standby")
    wait_until(lambda: api.sandbox.control.storage("standby")["checkpoints"], bool)
    pulls = api.sandbox.control.storage("standby")["standby_pulls"]
    asked = time.monotonic()
    assert api.http.post("/pipelines/standby/activate").status_code == 202
    assert api.http.post("/pipelines/standby/activate").status_code == 202  # repeated while it waits: accepted
    api.wait_status("standby", "Running", timeout=30)
    # It pulled, noticed, slept and pulled once more: more than one pull_interval, and two pulls.
    assert time.monotonic() - asked > 2.0
    assert api.sandbox.control.storage("standby")["standby_pulls"] >= pulls + 2


def test_edits_the_stored_state_depends_on_need_cleared_storage(api: Api) -> None:
    api.create("p", workers=2)
    api.start("p")
    assert api.http.post("/pipelines/p/stop", params={"force": "true"}).status_code == 202
    api.wait_status("p", "Stopped")
    config = api.pipeline("p", "all")["runtime_config"]
    version = api.pipeline("p", "all")["version"]
    refused = api.http.patch("/pipelines/p", json={"runtime_config": {**config, "workers": 4}})
    assert (refused.status_code, refused.json()["error_code"]) == (400, "EditRestrictedToClearedStorage")
    # A PATCH that changes nothing keeps the version; one that changes what the state does not depend on is taken.
    assert api.http.patch("/pipelines/p", json={"runtime_config": config}).status_code == 200
    assert api.pipeline("p", "all")["version"] == version
    assert api.http.patch("/pipelines/p", json={"description": "new"}).status_code == 200
    assert api.pipeline("p", "all")["version"] == version + 1
    # Once storage is cleared, the edit is allowed.
    assert api.http.post("/pipelines/p/clear").status_code == 202
    wait_until(lambda: api.pipeline("p")["storage_status"], lambda status: status == "Cleared")
    assert api.http.patch("/pipelines/p", json={"runtime_config": {**config, "workers": 4}}).status_code == 200


def test_start_is_refused_at_once_for_a_program_that_does_not_compile(api: Api) -> None:
    r = api.http.put("/pipelines/broken", json={"name": "broken", "program_code": "SELECT nonsense"})
    assert r.status_code in (200, 201)
    wait_until(lambda: api.pipeline("broken")["program_status"], lambda status: status == "SqlError")
    refused = api.http.post("/pipelines/broken/start")
    assert (refused.status_code, refused.json()["error_code"]) == (400, "CannotStartWithCompilationError")
