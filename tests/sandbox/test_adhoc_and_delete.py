"""The sandbox's ad-hoc query endpoint and pipeline deletion, as real Feldera answers them (sources:
crates/adapters/src/adhoc.rs, crates/adapters/src/server/error.rs, crates/pipeline-manager/src/db/operations/
pipeline.rs)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sandbox_api import Api


@pytest.fixture
def orders(api: Api) -> Api:
    api.create("p", None)
    api.start("p")
    api.ingest("p", 0, 5)
    return api


def query(api: Api, sql: str) -> list[dict[str, object]]:
    r = api.http.get("/pipelines/p/query", params={"sql": sql, "format": "json"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return [json.loads(line) for line in r.text.splitlines()]  # one JSON object per row, one per line


def test_queries_a_drill_checks_with_answer_over_the_tables(orders: Api) -> None:
    assert query(orders, "SELECT COUNT(*) AS n FROM orders") == [{"n": 5}]
    assert query(orders, "select count(*) from ORDERS where id >= 3") == [{"count(*)": 2}]
    assert query(orders, "SELECT MAX(amount) AS top FROM orders") == [{"top": 4.0}]
    assert query(orders, "SELECT id FROM orders ORDER BY id DESC LIMIT 2") == [{"id": 4}, {"id": 3}]
    assert query(orders, "SELECT * FROM orders WHERE id = 1") == [{"id": 1, "amount": 1.0}]


@pytest.mark.parametrize(
    ("sql", "words"),
    [("SELECT * FROM nowhere", "table 'nowhere' not found"), ("DELETE FROM orders", "only simple SELECTs")],
)
def test_a_query_it_cannot_run_is_feldera_s_400_adhoc_query_error(orders: Api, sql: str, words: str) -> None:
    r = orders.http.get("/pipelines/p/query", params={"sql": sql, "format": "json"})
    assert r.status_code == 400
    body = r.json()
    assert body["error_code"] == "AdHocQueryError"
    assert body["message"].startswith("Error during query processing: ") and words in body["message"]


def test_a_stopped_pipeline_cannot_be_queried(api: Api) -> None:
    api.create("p", None)
    r = api.http.get("/pipelines/p/query", params={"sql": "SELECT COUNT(*) FROM orders", "format": "json"})
    assert r.status_code >= 400 and r.json()["error_code"]


def test_delete_needs_the_pipeline_stopped_and_its_storage_cleared(orders: Api) -> None:
    assert orders.http.delete("/pipelines/p").json()["error_code"] == "DeleteRestrictedToFullyStopped"
    orders.stop("p")
    r = orders.http.delete("/pipelines/p")
    assert (r.status_code, r.json()["error_code"]) == (400, "DeleteRestrictedToClearedStorage")
    orders.clear("p")
    assert orders.http.delete("/pipelines/p").status_code == 200
    assert orders.http.get("/pipelines/p").status_code == 404
