"""Feldera's object-store rules, checked against real objects in moto's S3 server."""

from __future__ import annotations

import time

import pytest
from sandbox_api import Api, catalog
from support import sync_config, wait_until

from airflow_checkpoint_sync.testing import FelderaSandbox, MotoS3Server

DAY = 86400.0


def test_retention_deletes_only_past_both_floors(api: Api, moto_s3: MotoS3Server, s3_bucket: str) -> None:
    api.create("p", sync_config(moto_s3, s3_bucket, "p", retention_min_count=2, retention_min_age=1))
    api.start("p")
    pushed = []
    for i in range(4):
        api.ingest("p", i, 1)
        pushed.append(api.checkpoint_and_sync("p"))
    # Four remote checkpoints, more than min_count, but none a day old yet: nothing may go.
    assert catalog(moto_s3, s3_bucket, "p") == pushed

    api.sandbox.control.advance_clock(2 * DAY)
    api.ingest("p", 10, 1)
    newest = api.checkpoint_and_sync("p")
    # Now the four are old enough; deletion stops at min_count (2), oldest first.
    assert catalog(moto_s3, s3_bucket, "p") == [pushed[-1], newest]
    keys = moto_s3.keys(s3_bucket, "p/")
    for gone in pushed[:3]:
        assert f"p/dependencies/{gone}.json" not in keys
    for kept in (pushed[-1], newest):
        assert f"p/dependencies/{kept}.json" in keys
    # Every state file left is one the kept manifests name: nothing deleted is still catalogued, nothing orphaned.
    state_files = {k for k in keys if k.startswith("p/w0-")}
    named = set()
    for kept in (pushed[-1], newest):
        manifest = moto_s3.client().get_object(Bucket=s3_bucket, Key=f"p/dependencies/{kept}.json")["Body"].read()
        import json

        named |= {f"p/{item['key']}" for item in json.loads(manifest)["files"]}
    assert state_files == named


def test_retention_min_count_one_min_age_zero_prunes_on_the_next_push(
    api: Api, moto_s3: MotoS3Server, s3_bucket: str
) -> None:
    api.create("p", sync_config(moto_s3, s3_bucket, "p", retention_min_count=1, retention_min_age=0))
    api.start("p")
    first = api.checkpoint_and_sync("p")
    assert catalog(moto_s3, s3_bucket, "p") == [first]
    api.ingest("p", 0, 3)
    second = api.checkpoint_and_sync("p")
    assert catalog(moto_s3, s3_bucket, "p") == [second]


def test_owner_lock_refuses_a_second_pipeline(api: Api, moto_s3: MotoS3Server, s3_bucket: str) -> None:
    shared = sync_config(moto_s3, s3_bucket, "shared")
    first = api.create("first", shared)
    api.create("second", shared)
    api.start("first")
    api.start("second")
    owned = api.checkpoint_and_sync("first")
    api.checkpoint("second")
    uuid, status = api.sync("second")
    assert status["failure"]["uuid"] == uuid
    assert f"already owned by pipeline 'pipeline-{first['id']}'" in status["failure"]["error"]
    assert "Refusing to write checkpoint data" in status["failure"]["error"]
    assert catalog(moto_s3, s3_bucket, "shared") == [owned]
    assert not any(k.endswith(f"{uuid}.json") for k in moto_s3.keys(s3_bucket, "shared/"))


def test_wrong_keys_fail_the_sync_and_the_start(api: Api, moto_s3: MotoS3Server, s3_bucket: str) -> None:
    api.create("good", sync_config(moto_s3, s3_bucket, "good"))
    api.start("good")
    synced = api.checkpoint_and_sync("good")

    wrong = sync_config(moto_s3, s3_bucket, "bad", secret_key="not-the-secret")
    api.create("bad", wrong)
    api.start("bad")
    api.checkpoint("bad")
    uuid, status = api.sync("bad")
    assert status["failure"]["uuid"] == uuid and status["success"] is None
    assert "SignatureDoesNotMatch" in status["failure"]["error"]
    assert moto_s3.keys(s3_bucket, "bad/") == []

    # A start that must pull with wrong keys fails even when fail_if_no_checkpoint is false (Feldera test_autherr).
    api.create(
        "restore",
        {
            **wrong,
            "bucket": f"{s3_bucket}/restore",
            "read_bucket": f"{s3_bucket}/good",
            "start_from_checkpoint": synced,
            "fail_if_no_checkpoint": False,
        },
    )
    failed = api.start("restore", expect="Stopped")
    assert failed["deployment_error"] is not None
    assert "SignatureDoesNotMatch" in failed["deployment_error"]["message"]


def test_fail_if_no_checkpoint(api: Api, moto_s3: MotoS3Server, s3_bucket: str) -> None:
    unknown = "01890000-0000-7000-8000-000000000000"
    api.create(
        "strict",
        sync_config(moto_s3, s3_bucket, "strict", start_from_checkpoint=unknown, fail_if_no_checkpoint=True),
    )
    failed = api.start("strict", expect="Stopped")
    assert "were not found in source" in failed["deployment_error"]["message"]
    assert failed["deployment_desired_status"] == "Stopped"

    api.create(
        "lenient",
        sync_config(moto_s3, s3_bucket, "lenient", start_from_checkpoint=unknown, fail_if_no_checkpoint=False),
    )
    started = api.start("lenient")
    assert started["deployment_status"] == "Running" and started["deployment_error"] is None
    assert api.processed("lenient") == 0


def test_restore_prefers_local_then_bucket_then_read_bucket(api: Api, moto_s3: MotoS3Server, s3_bucket: str) -> None:
    api.create("source", sync_config(moto_s3, s3_bucket, "source"))
    api.start("source")
    api.ingest("source", 0, 4)
    from_source = api.checkpoint_and_sync("source")

    api.create(
        "target",
        sync_config(
            moto_s3,
            s3_bucket,
            "target",
            read_bucket=f"{s3_bucket}/source",
            start_from_checkpoint="latest",
            fail_if_no_checkpoint=True,
        ),
    )
    api.start("target")
    assert api.processed("target") == 4  # nothing local, nothing in its own bucket: read_bucket
    api.ingest("target", 100, 2)
    own = api.checkpoint_and_sync("target")
    assert catalog(moto_s3, s3_bucket, "target") == [own]
    assert catalog(moto_s3, s3_bucket, "source") == [from_source]  # read_bucket never written
    api.stop("target")
    api.start("target")
    assert api.processed("target") == 6  # its own local checkpoint wins
    api.stop("target")
    api.clear("target")
    api.start("target")
    assert api.processed("target") == 6  # storage cleared: its own bucket before read_bucket


def test_endpoint_off_loopback_is_refused_before_any_connection(api: Api, s3_bucket: str) -> None:
    api.create(
        "far",
        {
            "bucket": f"{s3_bucket}/far",
            "endpoint": "http://192.0.2.10:9000",
            "access_key": "k",
            "secret_key": "s",
        },
    )
    api.start("far")
    api.checkpoint("far")
    started = time.monotonic()
    _uuid, status = api.sync("far")
    assert "only loopback addresses" in status["failure"]["error"]
    assert time.monotonic() - started < 5  # refused outright, not a connection attempt timing out


def test_config_rules_feldera_enforces_at_start(api: Api, moto_s3: MotoS3Server, s3_bucket: str) -> None:
    api.create("deprecated", sync_config(moto_s3, s3_bucket, "d", standby=True, start_from_checkpoint="latest"))
    failed = api.start("deprecated", expect="Stopped")
    assert "initial=standby" in failed["deployment_error"]["message"]

    api.create("same", sync_config(moto_s3, s3_bucket, "s", read_bucket=f"{s3_bucket}/s"))
    failed = api.start("same", expect="Stopped")
    assert "read_bucket" in failed["deployment_error"]["message"]

    r = api.http.put(
        "/pipelines/badstart",
        json={
            "name": "badstart",
            "program_code": "CREATE TABLE t (x INT);",
            "runtime_config": {
                "storage": {
                    "backend": {
                        "name": "file",
                        "config": {"sync": {"bucket": "b", "start_from_checkpoint": "newest"}},
                    }
                }
            },
        },
    )
    assert r.status_code == 400 and "start_from_checkpoint" in r.json()["message"]


def test_periodic_push_sets_periodic_only(api: Api, moto_s3: MotoS3Server, s3_bucket: str) -> None:
    api.create("auto", sync_config(moto_s3, s3_bucket, "auto", push_interval=1))
    api.start("auto")
    api.ingest("auto", 0, 2)
    api.checkpoint("auto")
    local = api.http.get("/pipelines/auto/checkpoints").json()[-1]["uuid"]
    status = wait_until(lambda: api.sync_status("auto"), lambda s: s["periodic"] == local, timeout=10)
    assert status["success"] is None and status["failure"] is None
    assert catalog(moto_s3, s3_bucket, "auto") == [local]


def test_sync_joins_a_running_push_and_old_servers_omit_running(moto_s3: MotoS3Server, s3_bucket: str) -> None:
    with FelderaSandbox() as sandbox:
        api = Api(sandbox)
        sandbox.control.set_timings(sync_delay_s=1.0)
        api.create("p", sync_config(moto_s3, s3_bucket, "new"))
        api.start("p")
        api.checkpoint("p")
        first = api.http.post("/pipelines/p/checkpoint/sync").json()
        second = api.http.post("/pipelines/p/checkpoint/sync").json()
        assert first == second
        assert api.sync_status("p")["running"] == [first["checkpoint_uuid"]]
        wait_until(lambda: api.sync_status("p"), lambda s: s["success"] == first["checkpoint_uuid"])
        assert api.sync_status("p")["running"] == []

    with FelderaSandbox(sync_running_field=False) as old:
        api = Api(old)
        assert api.http.get("/config").json()["version"] == "0.337.0"
        api.create("p", sync_config(moto_s3, s3_bucket, "old"))
        api.start("p")
        uuid = api.checkpoint_and_sync("p")
        assert api.sync_status("p") == {"success": uuid, "failure": None, "periodic": uuid}


def test_restart_mid_sync_never_catalogues_a_partial_push(api: Api, moto_s3: MotoS3Server, s3_bucket: str) -> None:
    api.sandbox.control.set_timings(sync_delay_s=1.0)
    api.create("p", sync_config(moto_s3, s3_bucket, "p"))
    api.start("p")
    api.checkpoint("p")
    response = api.http.post("/pipelines/p/checkpoint/sync").json()
    new = api.sandbox.control.restart("p")
    # The new process initializes first (no controller yet: 503), then answers for its own incarnation only.
    assert api.http.get("/pipelines/p/checkpoint/sync_status").status_code == 503
    api.wait_status("p", "Running")
    r = api.http.get("/pipelines/p/checkpoint/sync_status", params={"incarnation_uuid": response["incarnation_uuid"]})
    assert r.status_code == 400 and r.json()["error_code"] == "IncarnationUuidMismatch"
    time.sleep(1.5)
    assert "p/checkpoints.feldera" not in moto_s3.keys(s3_bucket, "p/")
    assert api.sync_status("p", new) == {"success": None, "failure": None, "periodic": None, "running": []}


def test_graceful_stop_checkpoints_before_stopping(api: Api) -> None:
    api.create("p", None)
    api.start("p")
    api.ingest("p", 0, 9)
    api.stop("p", force=False)
    assert api.pipeline("p")["deployment_error"] is None
    checkpoints = api.sandbox.control.storage("p")["checkpoints"]
    assert checkpoints and checkpoints[-1]["processed_records"] == 9
    api.start("p")
    assert api.processed("p") == 9


@pytest.mark.parametrize("fault", ["sync", "checkpoint"])
def test_injected_failures_are_reported_as_feldera_does(
    api: Api, moto_s3: MotoS3Server, s3_bucket: str, fault: str
) -> None:
    api.create("p", sync_config(moto_s3, s3_bucket, "p"))
    api.start("p")
    if fault == "checkpoint":
        api.sandbox.control.fail_next_checkpoint("p", "disk full")
        r = api.http.post("/pipelines/p/checkpoint").json()
        status = wait_until(
            lambda: api.http.get("/pipelines/p/checkpoint_status").json(), lambda s: s["failure"] is not None
        )
        assert status["failure"]["sequence_number"] == r["checkpoint_sequence_number"]
        assert status["failure"]["error"] == "disk full" and status["success"] is None
    else:
        api.checkpoint("p")
        api.sandbox.control.fail_next_sync("p", "SlowDown: please reduce your request rate")
        uuid, status = api.sync("p")
        assert status["failure"] == {"uuid": uuid, "error": "SlowDown: please reduce your request rate"}
        # The next sync of the same checkpoint succeeds and displaces the failure.
        again, status = api.sync("p")
        assert again == uuid and status["success"] == uuid and status["failure"] is None
