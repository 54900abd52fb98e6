"""Against servers that are not the Feldera the provider expects: a clear error every time, no hang, no mutating
request, and the API key nowhere. Each class here failed before the hardening (bare AttributeError or
JSONDecodeError, the key in retry warnings, a task held by a dripping body, a future-dated checkpoint "fresh")."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from airflow_support import run_dag, task_states, xcoms

from airflow_checkpoint_sync.exceptions import FelderaApiError, FelderaConnectionConfigError
from airflow_checkpoint_sync.hooks.feldera import FelderaHook
from airflow_checkpoint_sync.hooks.feldera_api import BackoffPolicy

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_checkpoint_sync.testing import HostileFeldera

API_KEY = "apikey:" + "k3y" * 30
ONCE = BackoffPolicy(max_attempts=1)


def connect(monkeypatch: pytest.MonkeyPatch, url: str, password: str = API_KEY, **extra: Any) -> None:
    value = {"conn_type": "feldera", "host": url, "password": password, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", json.dumps(value))


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("html", "not JSON (text/html"),
        ("empty", "not JSON (application/json, 0 bytes"),
        ("invalid_json", "invalid JSON"),
        ("wrong_shape", "a JSON list where a JSON object was expected"),
        ("redirect", "redirected to http://127.0.0.1:9/elsewhere"),
    ],
)
def test_answers_that_are_not_feldera_s_name_server_endpoint_and_what_came(
    hostile_feldera: Callable[..., HostileFeldera], monkeypatch: pytest.MonkeyPatch, mode: str, words: str
) -> None:
    server = hostile_feldera(mode)
    connect(monkeypatch, server.url)
    with pytest.raises(FelderaApiError) as failed:
        FelderaHook(retry_policy=ONCE).get_pipeline("p")
    text = str(failed.value)
    assert words in text
    assert "GET /v0/pipelines/p" in text and server.url in text


@pytest.mark.parametrize("mode", ["html", "invalid_json", "wrong_shape", "redirect", "empty"])
def test_a_dag_against_a_wrong_server_fails_clearly_and_changes_nothing(
    airflow_db: str,
    hostile_feldera: Callable[..., HostileFeldera],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    mode: str,
) -> None:
    server = hostile_feldera(mode)
    connect(monkeypatch, server.url, timeout=2)
    run = run_dag("sync_in_worker", pipeline="p")
    assert task_states(run) == {"sync": "failed"}
    out = capfd.readouterr().out
    assert server.url in out and "/v0/" in out
    assert "AttributeError" not in out and "JSONDecodeError" not in out
    assert server.mutating_requests() == []
    assert API_KEY not in out


@pytest.mark.timeout(60)
def test_a_dripping_body_cannot_hold_a_request_past_its_timeout(
    hostile_feldera: Callable[..., HostileFeldera], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = hostile_feldera("slow_body", drip_s=0.2)  # the whole body would take about a minute
    connect(monkeypatch, server.url, timeout=1)
    with pytest.raises(FelderaApiError, match=r"no complete answer within 1s"):
        FelderaHook(retry_policy=ONCE).get_config()


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_dripping_body_cannot_hold_the_triggerer_either(
    hostile_feldera: Callable[..., HostileFeldera], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_checkpoint_sync.hooks.feldera_api import read_pipeline

    server = hostile_feldera("slow_body", drip_s=0.2)
    connect(monkeypatch, server.url, timeout=1)
    async with FelderaHook(retry_policy=ONCE).async_session() as session:
        with pytest.raises(FelderaApiError, match=r"no complete answer within 1s"):
            await session.run(read_pipeline("p"))


@pytest.mark.timeout(120)
def test_a_task_ends_within_its_timeout_whatever_the_server_does(
    airflow_db: str, hostile_feldera: Callable[..., HostileFeldera], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each attempt is cut at the connection's timeout, and no retry starts past the task's own deadline (30 s in
    # this DAG): the run ends, failed, where before it sat in the first request for minutes.
    server = hostile_feldera("slow_body", drip_s=0.5)
    connect(monkeypatch, server.url, timeout=5)
    run = run_dag("sync_in_worker", pipeline="p")
    assert task_states(run) == {"sync": "failed"}
    assert server.mutating_requests() == []


@pytest.mark.parametrize("password", [API_KEY + "\n", f"  {API_KEY}  ", f"\t{API_KEY}\r\n"])
def test_a_key_with_white_space_around_it_is_used_and_never_shown(
    airflow_db: str,
    hostile_feldera: Callable[..., HostileFeldera],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    password: str,
) -> None:
    # The server echoes the Authorization header in its error message and its details.
    server = hostile_feldera("echo_headers")
    connect(monkeypatch, server.url, password=password)
    run = run_dag("sync_in_worker", pipeline="p")
    assert task_states(run) == {"sync": "failed"}
    out = capfd.readouterr().out
    assert "bad credentials" in out and "***" in out  # the echo arrived, with the key cut out
    assert API_KEY not in out
    assert all(API_KEY not in str(value) for value in xcoms(run).values())


@pytest.mark.parametrize(
    "password", [f"apikey:{'a' * 40} {'b' * 40}", f"apikey:{'a' * 40}\n{'b' * 40}", "apikey:é" * 8]
)
def test_a_key_no_header_can_carry_is_refused_without_showing_it(password: str) -> None:
    from airflow_checkpoint_sync.hooks.connection import settings_from_connection

    with pytest.raises(FelderaConnectionConfigError, match=r"the password \(the API key\)") as refused:
        settings_from_connection("c", host="http://127.0.0.1:1", port=None, schema=None, password=password, extra={})
    assert "a" * 40 not in str(refused.value) and "b" * 40 not in str(refused.value) and "é" not in str(refused.value)


@pytest.mark.parametrize(("mode", "words"), [("future_uuid", "in the future"), ("non_v7_uuid", "not a UUIDv7")])
def test_a_checkpoint_whose_age_cannot_be_known_is_never_fresh(
    airflow_db: str,
    hostile_feldera: Callable[..., HostileFeldera],
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    words: str,
) -> None:
    server = hostile_feldera(mode)
    connect(monkeypatch, server.url)
    run = run_dag("freshness_poke", pipeline="p")
    assert task_states(run) == {"rpo": "failed"}
    measurement = xcoms(run)[("rpo", "freshness")]
    assert measurement["state"] == "stale" and words in measurement["problem"]
    assert measurement["age_seconds"] is None
