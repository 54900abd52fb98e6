"""Standby: pulling while waiting, activation, once per storage lifetime, and activation with nothing to pull."""

from __future__ import annotations

from sandbox_api import Api
from support import sync_config, wait_until

from airflow_checkpoint_sync.testing import FelderaSandbox, MotoS3Server


def standby_sync(s3: MotoS3Server, bucket: str, **extra: object) -> dict[str, object]:
    settings = {"read_bucket": f"{bucket}/primary", "start_from_checkpoint": "latest", "pull_interval": 1, **extra}
    return sync_config(s3, bucket, "standby", **settings)


def test_standby_rejects_what_feldera_rejects_and_activates(api: Api, moto_s3: MotoS3Server, s3_bucket: str) -> None:
    api.create("primary", sync_config(moto_s3, s3_bucket, "primary"))
    api.start("primary")
    api.ingest("primary", 0, 3)
    first = api.checkpoint_and_sync("primary")

    api.create("standby", standby_sync(moto_s3, s3_bucket))
    api.start("standby", "standby")
    wait_until(
        lambda: api.sandbox.control.storage("standby")["checkpoints"],
        lambda cs: [c["uuid"] for c in cs] == [first],
    )
    for action in ("pause", "resume"):
        r = api.http.post(f"/pipelines/standby/{action}")
        assert r.status_code == 400 and r.json()["error_code"] == "InvalidTransition"
    r = api.http.post("/pipelines/standby/stop", params={"force": "false"})
    assert r.status_code == 400 and r.json()["error_code"] == "InvalidTransition"
    for path in ("checkpoint", "checkpoint/sync"):
        r = api.http.post(f"/pipelines/standby/{path}")
        assert r.status_code == 503 and r.json()["error_code"] == "Initializing"
    r = api.http.post("/pipelines/standby/activate", params={"initial": "Standby"})
    assert r.status_code == 400 and r.json()["error_code"] == "InvalidActivateStatus"

    # The primary moves on; the standby keeps pulling the newest.
    api.ingest("primary", 3, 4)
    second = api.checkpoint_and_sync("primary")
    wait_until(
        lambda: api.sandbox.control.storage("standby")["checkpoints"],
        lambda cs: second in [c["uuid"] for c in cs],
        timeout=10,
    )

    r = api.http.post("/pipelines/standby/activate", params={"initial": "paused"})
    assert r.status_code == 202
    api.wait_status("standby", "Paused")
    assert api.processed("standby") == 7
    assert api.sandbox.control.storage("standby")["activated"] is True
    # Repeating the activation is harmless.
    assert api.http.post("/pipelines/standby/activate").status_code == 202


def test_standby_is_allowed_once_per_storage_lifetime(api: Api, moto_s3: MotoS3Server, s3_bucket: str) -> None:
    api.create("primary", sync_config(moto_s3, s3_bucket, "primary"))
    api.start("primary")
    api.checkpoint_and_sync("primary")
    api.create("standby", standby_sync(moto_s3, s3_bucket))
    api.start("standby", "standby")
    api.http.post("/pipelines/standby/activate")
    api.wait_status("standby", "Running")
    api.stop("standby")

    # The activation marker is still in storage: a standby start skips Standby and falls back to Paused.
    again = api.start("standby", "standby", expect="Paused")
    assert again["deployment_status"] == "Paused"
    assert any("defaulting to paused" in line for line in api.sandbox.control.log("standby"))
    api.stop("standby")

    api.clear("standby")
    assert api.sandbox.control.storage("standby")["activated"] is False
    assert api.start("standby", "standby")["deployment_status"] == "Standby"


def test_activating_with_nothing_to_pull_fails(api: Api, moto_s3: MotoS3Server, s3_bucket: str) -> None:
    api.create("standby", standby_sync(moto_s3, s3_bucket))
    api.start("standby", "standby")  # pull errors while waiting are ignored: it stays in Standby
    wait_until(lambda: api.sandbox.control.log("standby"), lambda log: any("standby pull failed" in x for x in log))
    assert api.status("standby") == "Standby"
    assert api.http.post("/pipelines/standby/activate").status_code == 202
    failed = api.wait_status("standby", "Stopped")
    assert failed["deployment_error"]["error_code"] == "ActivationFailed"
    assert "no checkpoint found" in failed["deployment_error"]["message"]


def test_standby_needs_sync_and_start_from_checkpoint(api: Api, moto_s3: MotoS3Server, s3_bucket: str) -> None:
    api.create("nosource", sync_config(moto_s3, s3_bucket, "x"))
    failed = api.start("nosource", "standby", expect="Stopped")
    assert failed["deployment_error"]["error_code"] == "InvalidStandby"


def test_community_edition_has_no_standby() -> None:
    with FelderaSandbox(edition="community") as community:
        api = Api(community)
        api.create("p", None)
        r = api.http.post("/pipelines/p/start", params={"initial": "standby"})
        assert r.status_code == 501 and r.json()["error_code"] == "EnterpriseFeature"
        assert api.status("p") == "Stopped"
