"""The deviation table is honest, and the checker really rejects what the document forbids."""

from __future__ import annotations

import json

import pytest
from openapi_contract import DEVIATIONS, check_response, undocumented


@pytest.mark.parametrize("deviation", DEVIATIONS, ids=lambda d: f"{d.method} {d.path} {d.status} {d.error_code}")
def test_each_listed_deviation_really_differs_from_the_document(deviation: object) -> None:
    assert undocumented(deviation)  # type: ignore[arg-type]


def test_checker_rejects_a_body_missing_required_fields() -> None:
    good = json.dumps({"checkpoint_uuid": "0199a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b", "incarnation_uuid": None})
    assert check_response("POST", "/v0/pipelines/p/checkpoint/sync", 202, "application/json", good) is None
    missing = json.dumps({"incarnation_uuid": None})
    problem = check_response("POST", "/v0/pipelines/p/checkpoint/sync", 202, "application/json", missing)
    assert problem is not None and "checkpoint_uuid" in problem


def test_checker_rejects_an_undocumented_status() -> None:
    body = json.dumps({"message": "m", "error_code": "Teapot", "details": None})
    problem = check_response("GET", "/v0/pipelines/p/stats", 418, "application/json", body)
    assert problem is not None and "not documented" in problem


def test_checker_rejects_a_malformed_timestamp() -> None:
    good = json.dumps(
        {"success": 1, "failure": {"sequence_number": 1, "error": "e", "failed_at": "2026-11-26T07:00:00Z"}}
    )
    assert check_response("GET", "/v0/pipelines/p/checkpoint_status", 200, "application/json", good) is None
    bad = json.dumps({"success": 1, "failure": {"sequence_number": 1, "error": "e", "failed_at": "yesterday"}})
    assert check_response("GET", "/v0/pipelines/p/checkpoint_status", 200, "application/json", bad) is not None


def test_checker_rejects_a_status_outside_the_enum() -> None:
    body = json.dumps({"success": None, "failure": None, "periodic": "not-a-uuid"})
    assert check_response("GET", "/v0/pipelines/p/checkpoint/sync_status", 200, "application/json", body) is not None
    error = json.dumps({"message": "m", "error_code": "UnknownPipelineName"})  # no details: ErrorResponse needs it
    assert check_response("GET", "/v0/pipelines/p", 404, "application/json", error) is not None
