"""Fault injection, authentication, the `serve` command and the pytest plugin."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from airflow_checkpoint_sync.testing import FelderaSandbox

if TYPE_CHECKING:
    from sandbox_api import Api


def test_status_fault_answers_like_feldera_or_a_proxy_and_changes_nothing(api: Api) -> None:
    api.create("p", None)
    control = api.sandbox.control
    control.fail("/v0/pipelines/p/start", method="POST", status=429, retry_after=3, error_code="TooManyRequests")
    control.fail("/v0/pipelines/p/start", method="POST", status=502)
    r = api.http.post("/pipelines/p/start")
    assert r.status_code == 429 and r.headers["retry-after"] == "3"
    assert r.json() == {"message": "injected 429", "error_code": "TooManyRequests", "details": None}
    r = api.http.post("/pipelines/p/start")
    assert r.status_code == 502 and r.headers["content-type"].startswith("text/html")
    assert api.pipeline("p")["deployment_desired_status"] == "Stopped"  # neither reached the pipeline
    assert control.faults() == []
    assert api.http.post("/pipelines/p/start").status_code == 202
    log = [(r["status"], r["fault"]) for r in control.requests() if r["path"] == "/v0/pipelines/p/start"]
    assert log == [(429, "status"), (502, "status"), (202, None)]


def test_dropped_connections_before_and_after_handling(api: Api) -> None:
    api.create("p", None)
    api.start("p")
    control = api.sandbox.control
    control.drop("/v0/pipelines/p/checkpoint", method="POST")
    with pytest.raises(httpx.TransportError):
        api.http.post("/pipelines/p/checkpoint")
    # Dropped before handling: no checkpoint was requested, so the next one is number 0.
    assert api.http.post("/pipelines/p/checkpoint").json()["checkpoint_sequence_number"] == 0

    control.drop("/v0/pipelines/p/checkpoint", method="POST", after=True)
    with pytest.raises(httpx.TransportError):
        api.http.post("/pipelines/p/checkpoint")
    # Dropped after handling: checkpoint 1 was taken although the client never heard of it.
    assert api.http.post("/pipelines/p/checkpoint").json()["checkpoint_sequence_number"] == 2
    assert [r["fault"] for r in control.requests() if r["path"] == "/v0/pipelines/p/checkpoint"] == [
        "drop_before",
        None,
        "drop_after",
        None,
    ]


def test_delay_fault_slows_the_matching_request_only(api: Api) -> None:
    api.create("p", None)
    api.sandbox.control.delay("/v0/pipelines/p", 0.6, method="GET")
    started = time.monotonic()
    api.pipeline("p")
    assert time.monotonic() - started >= 0.6
    started = time.monotonic()
    api.pipeline("p")
    assert time.monotonic() - started < 0.6


def test_bad_fault_rules_are_refused(api: Api) -> None:
    with pytest.raises(RuntimeError, match="invalid fault rule"):
        api.sandbox.control.add_fault(path="(", kind="status")
    with pytest.raises(RuntimeError, match="kind must be one of"):
        api.sandbox.control.add_fault(path="/v0/.*", kind="explode")


def test_api_key_is_required_on_v0_only() -> None:
    with FelderaSandbox(api_key="apikey:" + "s" * 40) as sandbox:
        missing = httpx.get(f"{sandbox.url}/v0/pipelines")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert missing.content == b""
        wrong = httpx.get(f"{sandbox.url}/v0/pipelines", headers={"Authorization": "Bearer apikey:nope"})
        assert wrong.status_code == 401
        # Feldera's JSON error, sent as text/plain by actix's ErrorUnauthorized.
        assert wrong.json() == {
            "message": "Unauthorized API key",
            "error_code": "AuthenticationFailed",
            "details": None,
        }
        assert wrong.headers["content-type"].startswith("text/plain")
        right = httpx.get(f"{sandbox.url}/v0/pipelines", headers={"Authorization": f"Bearer apikey:{'s' * 40}"})
        assert right.status_code == 200 and right.json() == []
        assert httpx.get(f"{sandbox.url}/healthz").status_code == 200
        assert sandbox.control.state()["settings"]["api_key"] is None  # the control API never echoes the key


def test_unknown_pipeline_and_bad_names_get_feldera_errors(api: Api) -> None:
    r = api.http.get("/pipelines/nope")
    assert r.status_code == 404
    assert r.json() == {
        "message": "Unknown pipeline name 'nope'",
        "error_code": "UnknownPipelineName",
        "details": {"pipeline_name": "nope"},
    }
    r = api.http.post("/pipelines", json={"name": "bad name!", "program_code": ""})
    assert r.status_code == 400 and r.json()["error_code"] == "NameDoesNotMatchPattern"
    api.create("p", None)
    api.start("p")
    r = api.http.patch("/pipelines/p", json={"description": "changed while running"})
    assert r.status_code == 400 and r.json()["error_code"] == "UpdateRestrictedToStopped"
    assert api.pipeline("p", "all")["description"] == ""


def test_patch_replaces_runtime_config_whole_and_returns_it_normalized(api: Api) -> None:
    # Feldera re-serializes a runtime config from its types: unknown keys are dropped, and a sync block comes back
    # with all 22 of its fields, defaults (nulls included) filled in.
    api.create("p", None)
    config = api.pipeline("p", "all")["runtime_config"]
    config["workers"] = 3
    sync = {"bucket": "b/p", "retention_min_count": 3, "colour": "blue"}
    patched = {
        **config,
        "from_an_older_feldera": True,
        "storage": {"backend": {"name": "file", "config": {"sync": sync}}},
    }
    assert api.http.patch("/pipelines/p", json={"runtime_config": patched}).status_code == 200
    stored = api.pipeline("p", "all")["runtime_config"]
    assert "from_an_older_feldera" not in stored and stored["workers"] == 3
    returned = stored["storage"]["backend"]["config"]["sync"]
    assert len(returned) == 22 and "colour" not in returned
    assert (returned["bucket"], returned["retention_min_count"], returned["pull_interval"]) == ("b/p", 3, 10)
    assert returned["transfers"] is None and returned["optimize_download_resources"] is True
    assert stored["storage"]["compression"] == "default"  # the rest of StorageOptions, filled in


def test_serve_command_runs_until_interrupted() -> None:
    env = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true", "NO_GCE_CHECK": "True"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_checkpoint_sync.testing",
            "serve",
            "--port",
            "0",
            "--edition",
            "community",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "Feldera sandbox (community" in line
        url = line.split("serving on ")[1].split(";")[0].strip()
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}/v0/config").json()["edition"] == "Open source"
    finally:
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=15) == 0


def test_serve_refuses_a_non_loopback_host() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow_checkpoint_sync.testing",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "loopback only" in result.stderr


def test_plugin_fixtures_come_from_the_installed_entry_point(feldera_sandbox: FelderaSandbox, s3_bucket: str) -> None:
    # No conftest in this project defines these fixtures: they come from the pytest11 entry point.
    assert feldera_sandbox.url.startswith("http://127.0.0.1:")
    assert s3_bucket.startswith("sandbox-bucket-")
