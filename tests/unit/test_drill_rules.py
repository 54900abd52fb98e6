"""The pure rules of a restore drill (which checkpoint, what a check is and whether it passes) and the parsing of
Feldera's ad-hoc query answer."""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib

import pytest

from airflow_checkpoint_sync.drill import check_selection, judge, parse_checks, pick_checkpoint
from airflow_checkpoint_sync.exceptions import FelderaApiError
from airflow_checkpoint_sync.hooks.feldera_api import adhoc_query, query_rows

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def uuid7(days_ago: float, tail: int) -> str:
    millis = int((NOW - dt.timedelta(days=days_ago)).timestamp() * 1000)
    return str(uuidlib.UUID(int=(millis << 80) | (0x7 << 76) | (0x8 << 60) | tail))


CATALOG = [uuid7(20, 1), uuid7(6, 2), uuid7(3, 3), uuid7(1, 4)]


def test_latest_a_uuid_and_random_within_the_window() -> None:
    assert pick_checkpoint("latest", None, CATALOG, NOW, "seed") == CATALOG[-1]
    assert pick_checkpoint(CATALOG[0], None, CATALOG, NOW, "seed") == CATALOG[0]
    drawn = {pick_checkpoint("random", 7, CATALOG, NOW, f"run-{i}") for i in range(40)}
    assert drawn == set(CATALOG[1:])  # never the one from 20 days ago
    # The same task instance draws the same checkpoint on every try.
    assert len({pick_checkpoint("random", 7, CATALOG, NOW, "dag/run/task/-1") for _ in range(5)}) == 1


@pytest.mark.parametrize(
    ("checkpoint", "within", "catalog", "words"),
    [
        ("latest", None, [], "holds no synced checkpoint"),
        (uuid7(2, 9), None, CATALOG, "is not in the location's catalog (4 checkpoints)"),
        ("random", 0.5, CATALOG, "no checkpoint in the location is from the last 0.5 days"),
    ],
)
def test_no_checkpoint_to_drill_is_said_plainly(
    checkpoint: str, within: float | None, catalog: list[str], words: str
) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        pick_checkpoint(checkpoint, within, catalog, NOW, "seed")


@pytest.mark.parametrize(
    ("checkpoint", "within", "words"),
    [
        ("random", None, "random_within_days=None is not valid"),
        ("random", 0, "random_within_days=0 is not valid"),
        ("newest", None, "checkpoint='newest' is not valid: 'latest', 'random'"),
    ],
)
def test_a_bad_selection_is_refused(checkpoint: str, within: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        check_selection(checkpoint, within)


@pytest.mark.parametrize(
    ("checks", "words"),
    [
        ("SELECT 1", "sql_checks='SELECT 1' is not valid: a list"),
        ([{"sql": "SELECT 1"}], r"sql_checks\[0\]: give 'expect'"),
        ([{"sql": "", "expect": 1}], r"sql_checks\[0\]: 'sql' must be a SELECT"),
        ([{"sql": "SELECT 1", "min": "3"}], r"'min'='3' is not a number"),
        ([{"sql": "SELECT 1", "expect": 1, "exact": True}], r"unknown keys \['exact'\]"),
    ],
)
def test_a_malformed_check_is_refused_naming_it(checks: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_checks(checks)


def test_a_check_passes_on_one_value_that_matches() -> None:
    exact, bounded = parse_checks([{"sql": "q1", "expect": 12}, {"sql": "q2", "min": 1, "max": 10, "name": "few"}])
    assert judge(exact, [{"n": 12}]) == (True, 12, "q1: 12 == expected 12")
    assert judge(exact, [{"n": 11}])[0] is False
    assert judge(bounded, [{"n": 10}]) == (True, 10, "few: 10 within [1, 10]")
    assert judge(bounded, [{"n": 11}]) == (False, 11, "few: 11 outside [1, 10]")
    assert judge(bounded, [{"n": "10"}])[0] is False
    assert judge(exact, []) == (False, None, "q1: answered 0 row(s); a check's query must answer one row of one value")
    assert judge(exact, [{"a": 1, "b": 2}])[0] is False


def test_an_adhoc_answer_is_one_row_per_line_and_a_folded_error_is_raised() -> None:
    request = adhoc_query("p", "SELECT 1")
    assert query_rows(b'{"n": 1}\n{"n": 2}\n\n', request) == [{"n": 1}, {"n": 2}]
    with pytest.raises(FelderaApiError, match="division by zero") as folded:
        query_rows(b'{"n": 1}\n{"message": "division by zero", "error_code": "AdHocQueryError"}\n', request)
    assert folded.value.error_code == "AdHocQueryError"
    with pytest.raises(FelderaApiError, match="line 1 is not JSON"):
        query_rows(b"<html>", request)
    with pytest.raises(FelderaApiError, match="line 1 is a JSON list, not a row"):
        query_rows(b"[1]", request)
