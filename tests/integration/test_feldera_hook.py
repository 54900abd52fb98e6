"""FelderaHook over real HTTP: retries, no blind re-sends, errors, secrets, test_connection."""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Any

import pytest
from airflow_support import feldera_connection
from tls_support import make_tls_files

from airflow_checkpoint_sync.exceptions import FelderaApiError, FelderaConnectionError
from airflow_checkpoint_sync.hooks.feldera import FelderaHook
from airflow_checkpoint_sync.hooks.feldera_api import (
    BackoffPolicy,
    FelderaRequest,
    get_config,
    read_pipeline,
    read_sync_progress,
)
from airflow_checkpoint_sync.testing import FelderaSandbox

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

API_KEY = "apikey:" + "z" * 60
FAST = BackoffPolicy(max_attempts=4, base_delay=0.05, max_delay=2.0, deadline=20)


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[FelderaSandbox]:
    with FelderaSandbox(api_key=API_KEY) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(sandbox.url, API_KEY))
        yield sandbox


def paths(sandbox: FelderaSandbox, method: str, path: str) -> list[tuple[int, str | None]]:
    return [
        (r["status"], r["fault"]) for r in sandbox.control.requests() if r["method"] == method and r["path"] == path
    ]


def running(sandbox: FelderaSandbox, hook: FelderaHook) -> None:
    hook.send(FelderaRequest("PUT", "/v0/pipelines/p", json={"name": "p", "program_code": "CREATE TABLE t (x INT);"}))
    deadline = time.monotonic() + 10
    while hook.get_pipeline("p")["program_status"] != "Success":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    hook.start_pipeline("p", "running")
    while hook.get_pipeline("p")["deployment_status"] != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_idempotent_reads_retry_through_503_429_and_dropped_connections(sandbox: FelderaSandbox) -> None:
    hook = FelderaHook(retry_policy=FAST)
    control = sandbox.control
    control.fail("/v0/config", method="GET", status=503, count=1)
    control.fail("/v0/config", method="GET", status=429, retry_after=1, count=1, error_code="TooManyRequests")
    control.drop("/v0/config", method="GET", count=1)
    began = time.monotonic()
    assert hook.get_config()["edition"] == "Enterprise"
    assert time.monotonic() - began >= 1.0  # Retry-After was honoured
    assert paths(sandbox, "GET", "/v0/config") == [(503, "status"), (429, "status"), (0, "drop_before"), (200, None)]


def test_non_idempotent_request_is_not_resent_when_its_effect_is_unknown(sandbox: FelderaSandbox) -> None:
    hook = FelderaHook(retry_policy=FAST)
    running(sandbox, hook)
    sandbox.control.drop("/v0/pipelines/p/checkpoint", method="POST", after=True)
    with pytest.raises(FelderaConnectionError) as lost:
        hook.take_checkpoint("p")
    assert lost.value.sent is True
    assert paths(sandbox, "POST", "/v0/pipelines/p/checkpoint") == [(0, "drop_after")]
    # ... but a refusal that proves nothing happened is retried.
    sandbox.control.fail("/v0/pipelines/p/checkpoint", method="POST", status=503, count=2, error_code="Initializing")
    assert hook.take_checkpoint("p")["checkpoint_sequence_number"] == 1  # 0 was taken by the lost request


def test_errors_carry_feldera_fields_and_never_the_key(sandbox: FelderaSandbox) -> None:
    hook = FelderaHook(retry_policy=FAST)
    with pytest.raises(FelderaApiError) as missing:
        hook.get_pipeline("nope")
    error = missing.value
    assert (error.status, error.error_code, error.details) == (404, "UnknownPipelineName", {"pipeline_name": "nope"})
    assert error.message == "Unknown pipeline name 'nope'"
    assert "GET /v0/pipelines/nope" in str(error)
    assert API_KEY not in str(error) and API_KEY not in repr(hook.settings)
    sandbox.control.fail("/v0/config", method="GET", status=502, count=10)
    with pytest.raises(FelderaApiError) as exhausted:
        hook.get_config()
    assert exhausted.value.status == 502
    assert len(paths(sandbox, "GET", "/v0/config")) == FAST.max_attempts


def test_retry_logs_say_what_happened_without_the_key(
    sandbox: FelderaSandbox, capfd: pytest.CaptureFixture[str]
) -> None:
    hook = FelderaHook(retry_policy=FAST)
    sandbox.control.fail("/v0/config", method="GET", status=503, count=1, error_code="PipelineInteractionUnreachable")
    hook.get_config()
    text = capfd.readouterr().out
    assert "GET /v0/config failed" in text and "PipelineInteractionUnreachable" in text and "attempt 2 of 4" in text
    assert API_KEY not in text


@pytest.mark.asyncio
async def test_async_session_reads_sync_progress_like_the_sync_path(sandbox: FelderaSandbox) -> None:
    hook = FelderaHook(retry_policy=FAST)
    running(sandbox, hook)
    sandbox.control.fail("/v0/pipelines/p/checkpoint/sync_status", method="GET", status=503, count=1)
    async with FelderaHook(retry_policy=FAST).async_session() as session:
        with pytest.raises(FelderaApiError) as not_synced:
            await session.run(read_sync_progress("p", "0199a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b", None))
        # Sync is not configured on this pipeline: listing the bucket is Feldera's 500 CheckpointFetchError.
        assert (not_synced.value.status, not_synced.value.error_code) == (500, "CheckpointFetchError")
        assert (await session.run(read_pipeline("p")))["deployment_status"] == "Running"


# -- test_connection ---------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_fine(sandbox: FelderaSandbox) -> None:
    ok, message = FelderaHook().test_connection()
    assert ok, message
    assert message.startswith("Connected to Feldera Enterprise 0.369.0")


def test_connection_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(f"http://127.0.0.1:{free_port()}", API_KEY))
    began = time.monotonic()
    ok, message = FelderaHook().test_connection()
    assert not ok and message.startswith("Cannot reach Feldera at http://127.0.0.1:")
    assert time.monotonic() - began < 15


def test_connection_bad_key(sandbox: FelderaSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(sandbox.url, "apikey:wrong-key-value"))
    ok, message = FelderaHook().test_connection()
    assert not ok and "rejected the API key" in message and "wrong-key-value" not in message


def test_connection_community_edition(monkeypatch: pytest.MonkeyPatch) -> None:
    with FelderaSandbox(edition="community") as community:
        monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(community.url))
        ok, message = FelderaHook().test_connection()
    assert not ok and "Open source" in message and "needs Feldera Enterprise" in message


def test_connection_bad_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection("http://127.0.0.1:1", timeout="soon"))
    ok, message = FelderaHook().test_connection()
    assert not ok and "extra 'timeout'" in message and "'soon'" in message


def test_connection_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    ca, cert, key = make_tls_files(tmp_path)
    with FelderaSandbox(ssl_certfile=str(cert), ssl_keyfile=str(key)) as secure:
        assert secure.url.startswith("https://")
        monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(secure.url))
        ok, message = FelderaHook().test_connection()
        assert not ok and message.startswith("TLS verification failed") and "'verify' extra" in message

        monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(secure.url, verify=str(ca)))
        ok, message = FelderaHook().test_connection()
        assert ok, message

        monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(secure.url, verify=False))
        capfd.readouterr()
        assert FelderaHook().get_config()["edition"] == "Enterprise"
        assert "TLS verification is off" in capfd.readouterr().out


@pytest.mark.asyncio
async def test_the_async_path_tells_tls_and_connection_failures_apart_like_the_sync_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The triggerer's client (aiohttp) and the worker's (httpx) fail alike: the same words, the same flags."""

    async def config_or_error() -> dict[str, Any] | FelderaConnectionError:
        try:
            async with FelderaHook(retry_policy=BackoffPolicy(max_attempts=1)).async_session() as session:
                return dict(await session.send(get_config()))
        except FelderaConnectionError as error:
            failed = error
        with pytest.raises(FelderaConnectionError) as on_a_worker:
            FelderaHook(retry_policy=BackoffPolicy(max_attempts=1)).get_config()
        assert (failed.tls, failed.sent) == (on_a_worker.value.tls, on_a_worker.value.sent)
        return failed

    ca, cert, key = make_tls_files(tmp_path)
    with FelderaSandbox(ssl_certfile=str(cert), ssl_keyfile=str(key)) as secure, FelderaSandbox() as plain:
        monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(secure.url))
        untrusted = await config_or_error()
        assert isinstance(untrusted, FelderaConnectionError) and untrusted.tls and not untrusted.sent
        assert "TLS handshake with" in str(untrusted) and "'verify' extra" in str(untrusted)

        monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(secure.url, verify=str(ca)))
        assert (await config_or_error())["edition"] == "Enterprise"  # type: ignore[index]
        monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(secure.url, verify=False))
        assert (await config_or_error())["edition"] == "Enterprise"  # type: ignore[index]

        monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(plain.url.replace("http:", "https:")))
        not_tls = await config_or_error()
        assert isinstance(not_tls, FelderaConnectionError) and "does not speak TLS" in str(not_tls)

    monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(f"http://127.0.0.1:{free_port()}"))
    refused = await config_or_error()
    assert isinstance(refused, FelderaConnectionError) and not refused.sent and not refused.tls
    assert "cannot connect to http://127.0.0.1:" in str(refused)
