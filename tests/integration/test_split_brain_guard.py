"""The split-brain guard against a real primary site: only a primary whose Feldera cannot be reached counts as down.

One table drives both failover operators: for each way the primary can answer (or not), the readiness report an
approver reads and the activation that follows reach the same verdict. The primary runs on a sandbox of its own
with an API key (its "site"); the standby side is the shared sandbox, where 'staging' exists but is not a standby,
so an activation that gets past the guard stops at the standby's own refusal and changes nothing either way.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest
from airflow_support import feldera_connection, run_dag, task_states, xcoms
from feldera_setup import Feldera

from airflow_checkpoint_sync.testing import FelderaSandbox

if TYPE_CHECKING:
    from collections.abc import Iterator

API_KEY = "apikey:primary-site-key"


class Row(NamedTuple):
    """How the primary answers, and the verdict both operators must reach."""

    connection: str  # primary_conn_id
    primary: str  # primary_pipeline_name
    fault: dict[str, Any] | None  # a fault the primary's sandbox answers its status reads with
    state: str  # the readiness report's primary_state
    cause: str  # what the refusal (or the report) names


GET_PROD = {"path": "/v0/pipelines/prod", "method": "GET", "count": 100}
TABLE = {
    "running": Row("primary_site", "prod", None, "active", "is still Running"),
    "stopped": Row("primary_site", "stopped_prod", None, "down", "Stopped"),
    "wrong key (401)": Row("primary_wrong_key", "prod", None, "unknown", "HTTP 401"),
    "read-only key (403)": Row(
        "primary_site",
        "prod",
        {**GET_PROD, "status": 403, "error_code": "InsufficientPermissions", "message": "read role"},
        "unknown",
        "HTTP 403 InsufficientPermissions",
    ),
    "typo in the name (404)": Row("primary_site", "prdo", None, "unknown", "HTTP 404 UnknownPipelineName"),
    "server error (500)": Row(
        "primary_site", "prod", {**GET_PROD, "status": 500, "error_code": "Internal"}, "unknown", "HTTP 500"
    ),
    "bad gateway (502)": Row("primary_site", "prod", {**GET_PROD, "status": 502}, "down", "HTTP 502"),
    "unavailable (503)": Row("primary_site", "prod", {**GET_PROD, "status": 503}, "down", "HTTP 503"),
    "gateway timeout (504)": Row("primary_site", "prod", {**GET_PROD, "status": 504}, "down", "HTTP 504"),
    "connection dropped": Row("primary_site", "prod", {**GET_PROD, "kind": "drop_before"}, "down", "prod"),
    "connection refused": Row("primary_closed", "prod", None, "down", "prod"),
    # The primary's Feldera accepts the connection and never answers within the connection's 1 s timeout.
    "timeout": Row("primary_slow", "prod", {**GET_PROD, "kind": "delay", "delay_s": 4}, "down", "prod"),
}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def primary_site() -> Iterator[FelderaSandbox]:
    """The primary's Feldera, with its own API key: 'prod' Running and 'stopped_prod' Stopped."""
    with FelderaSandbox(api_key=API_KEY) as sandbox:
        yield sandbox


@pytest.fixture
def sites(feldera: Feldera, primary_site: FelderaSandbox, monkeypatch: pytest.MonkeyPatch) -> Feldera:
    primary = Feldera(primary_site, feldera.s3, feldera.bucket, api_key=API_KEY)
    if primary.http.get("/pipelines/prod").status_code == 404:
        primary.running_pipeline("prod")
        primary.create("stopped_prod")
    primary_site.control.clear_faults()
    primary_site.control.clear_requests()
    connections = {
        "primary_site": feldera_connection(primary_site.url, API_KEY),
        "primary_wrong_key": feldera_connection(primary_site.url, "apikey:not-the-key"),
        "primary_closed": feldera_connection(f"http://127.0.0.1:{closed_port()}"),
        "primary_slow": feldera_connection(primary_site.url, API_KEY, timeout=1),
    }
    for conn_id, value in connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)
    feldera.create("staging")  # not a standby: past the guard, the activation refuses on the standby's state
    feldera.sandbox.control.clear_requests()
    feldera.primary = primary  # type: ignore[attr-defined]
    return feldera


@pytest.mark.parametrize("row", TABLE.values(), ids=TABLE.keys())
def test_readiness_and_activation_give_one_verdict_on_the_primary(
    sites: Feldera, row: Row, capfd: pytest.CaptureFixture[str]
) -> None:
    if row.fault:
        sites.primary.sandbox.control.add_fault(**row.fault)  # type: ignore[attr-defined]
    capfd.readouterr()
    run = run_dag("split_brain_guard", pipeline="staging", primary=row.primary, primary_conn=row.connection)
    out = capfd.readouterr().out
    sites.primary.sandbox.control.clear_faults()  # type: ignore[attr-defined]

    # The report an approver reads.
    results = xcoms(run)
    assert ("check", "return_value") in results, out
    report = results[("check", "return_value")]
    assert report["primary_state"] == row.state
    split_brain = [c for c in report["concerns"] if "split brain" in c]
    standby = [c for c in report["concerns"] if "not in Standby" in c]
    assert standby, report["concerns"]  # the same standby verdict on every row
    # The activation that follows: refused by the guard exactly where the report shows a split-brain concern.
    assert task_states(run)["activate"] == "failed"
    refused_by_guard = "refusing to activate 'staging': the primary pipeline" in out
    assert refused_by_guard == bool(split_brain) == (row.state != "down")
    if refused_by_guard:
        assert row.cause in split_brain[0] and row.cause in out
        assert "allow_split_brain=True" in out
        assert "not in Standby" not in out.split("refusing to activate 'staging'", 1)[1].split("\n", 1)[0]
    else:
        assert "pipeline 'staging' is Stopped, not in Standby" in out
    # Whatever the primary said, nothing was asked of either side but reads.
    assert sites.mutating_requests() == []
    assert sites.primary.mutating_requests() == []  # type: ignore[attr-defined]
