"""The pure rules of a restore drill (which checkpoint, what a check is and whether it passes, who owns a scratch
pipeline or location and what a drill may delete) and the parsing of Feldera's ad-hoc query answer."""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib

import pytest

from airflow_checkpoint_sync.exceptions import FelderaApiError
from airflow_checkpoint_sync.hooks.feldera_api import adhoc_query, query_rows
from airflow_checkpoint_sync.rules.drill import (
    MARKER,
    DrillOwner,
    check_selection,
    default_scratch_names,
    is_scratch,
    judge,
    location_claim,
    marker_body,
    marker_owner,
    missing_files_cause,
    parse_checks,
    pick_checkpoint,
    pipeline_claim,
    removal_refusal,
    scratch_description,
    scratch_owner,
    select_problem,
)
from airflow_checkpoint_sync.rules.params import PIPELINE_NAME

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
        # expect and bounds exclude each other: {"expect": 999, "min": 0} passed on 5 rows, expect ignored.
        (
            [{"sql": "SELECT 1", "expect": 999, "min": 0}],
            r"sql_checks\[0\]: 'expect'=999 and 'min'=0 are both given: give 'expect' .* or 'min'/'max' .*, not both",
        ),
        ([{"sql": "SELECT 1", "expect": None, "max": 3}], r"'expect'=None and 'max'=3 are both given"),
        ([{"sql": "SELECT 1", "min": 5, "max": 1}], r"sql_checks\[0\]: 'min'=5 is above 'max'=1: .* give min <= max"),
        ([{"sql": "SELECT 1", "min": float("nan")}], r"'min'=nan is not a number"),
        (
            [{"sql": "SELECT 1", "expect": 1}, {"sql": "DELETE FROM orders", "expect": 0}],
            r"sql_checks\[1\]: 'sql'='DELETE FROM orders' is not valid: it starts with DELETE, not SELECT or WITH",
        ),
        (
            [{"sql": "SELECT 1; DROP TABLE orders", "expect": 1}],
            r"sql_checks\[0\]: 'sql'='SELECT 1; DROP TABLE orders' is not valid: it holds more than one statement",
        ),
        ([{"sql": "-- nothing", "expect": 1}], r"it starts with nothing but comments"),
    ],
)
def test_a_malformed_check_is_refused_naming_it(checks: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_checks(checks)


def test_a_check_passes_on_one_value_that_matches() -> None:
    exact, bounded = parse_checks(
        [{"sql": "SELECT 12", "expect": 12, "name": "q1"}, {"sql": "SELECT 2", "min": 1, "max": 10, "name": "few"}]
    )
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


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("SELECT COUNT(*) FROM orders", None),
        ("  select 1  ", None),
        ("SELECT 1;", None),
        ("SELECT 1 ;  \n", None),
        ("-- how many\nSELECT COUNT(*) FROM orders", None),
        ("/* a; b */ SELECT 1", None),
        ("(SELECT 1)", None),
        ("WITH t AS (SELECT 1 AS n) SELECT n FROM t", None),
        ("SELECT ';' AS semicolon", None),  # a ';' inside a string is not a statement's end
        ('SELECT "a;b" FROM t', None),
        ("SELECT 1;;", "more than one statement"),
        ("SELECT 1; SELECT 2", "more than one statement"),
        ("INSERT INTO orders VALUES (1)", "starts with INSERT"),
        ("VALUES (1)", "starts with VALUES"),
        ("CREATE TABLE t (n INT)", "starts with CREATE"),
        ("WITH t AS (SELECT 1) INSERT INTO o SELECT * FROM t", "does INSERT"),
        ("WITH t AS (VALUES (1))", "followed by no SELECT"),
        ("/* only a comment */", "nothing but comments"),
    ],
)
def test_a_check_is_one_select(sql: str, problem: str | None) -> None:
    said = select_problem(sql)
    assert (said is None) if problem is None else (said is not None and problem in said), said


def test_a_check_keeps_its_sql_and_one_kind_of_expectation() -> None:
    exact, bounded = parse_checks([{"sql": " SELECT 1; ", "expect": 0}, {"sql": "SELECT 2", "min": 0, "max": 0}])
    assert (exact.sql, exact.expect, exact.min, exact.max) == ("SELECT 1;", 0, None, None)
    assert (bounded.min, bounded.max) == (0, 0)  # min == max is a valid (exact) range


ME = DrillOwner("weekly_drill", "drill", -1, "scheduled__2026-12-01T00:00:00+00:00")
RETRY = DrillOwner.of(type("TI", (), {**ME.as_dict(), "try_number": 3})())
OTHERS = [
    DrillOwner("weekly_drill", "drill", -1, "manual__2026-12-01T10:00:00+00:00"),  # a manual run beside it
    DrillOwner("weekly_drill", "drill", 0, ME.run_id),  # a mapped sibling
    DrillOwner("weekly_drill", "drill_replica", -1, ME.run_id),
    DrillOwner("other_dag", "drill", -1, ME.run_id),
]


def test_the_owner_is_the_task_instance_not_the_try() -> None:
    assert RETRY == ME and RETRY.suffix == ME.suffix
    assert len({ME.suffix, *(o.suffix for o in OTHERS)}) == 1 + len(OTHERS)
    assert len(ME.suffix) == 8 and int(ME.suffix, 16) >= 0
    assert str(OTHERS[1]) == f"task 'drill', map index 0 of DAG 'weekly_drill', run '{ME.run_id}'"


def test_default_scratch_names_are_the_owners_and_valid_pipeline_names() -> None:
    name, bucket = default_scratch_names("prod", ("feldera-dr", "prod"), ME)
    assert (name, bucket) == (f"prod-drill-{ME.suffix}", f"feldera-dr/prod-drill-{ME.suffix}")
    assert PIPELINE_NAME.match(name)
    assert default_scratch_names("prod", ("feldera-dr", ""), ME)[1] is None  # no place next to a whole bucket
    assert {default_scratch_names("prod", ("b", "p"), o)[0] for o in OTHERS} & {name} == set()


def test_a_scratch_pipelines_description_names_its_owner() -> None:
    mine = {"description": scratch_description("prod", ME)}
    assert is_scratch(mine) and scratch_owner(mine) == ME
    assert scratch_owner({"description": "airflow-checkpoint-sync restore drill scratch pipeline of 'prod'"}) is None
    assert scratch_owner({"description": "my pipeline owner={}"}) is None
    assert scratch_owner({"description": scratch_description("prod", ME)[:-3]}) is None  # mangled JSON
    assert scratch_owner({}) is None


def test_only_this_task_instances_scratch_pipeline_is_removed() -> None:
    assert pipeline_claim("p", None, ME) is False
    assert pipeline_claim("p", {"description": scratch_description("prod", ME)}, RETRY) is True
    for other in OTHERS:
        with pytest.raises(ValueError, match=r"is the scratch pipeline of the drill of task 'drill.*which may be"):
            pipeline_claim("p", {"description": scratch_description("prod", other)}, ME)
    with pytest.raises(ValueError, match="recorded no owner"):
        pipeline_claim("p", {"description": "airflow-checkpoint-sync restore drill scratch pipeline of 'x'"}, ME)
    with pytest.raises(ValueError, match="scratch_pipeline_name='p' names an existing pipeline that is not a drill"):
        pipeline_claim("p", {"description": "the team's staging"}, ME)


def test_a_drill_removes_only_its_own_scratch_pipeline_and_given_its_id_only_that_one() -> None:
    mine = {"id": "p-1", "description": scratch_description("prod", ME)}
    assert removal_refusal(mine, RETRY) is None
    assert removal_refusal(mine, ME, "p-1") is None
    later = removal_refusal(mine, ME, "p-0")  # a later try deleted the pipeline and created its own
    assert (
        later == "it is not the pipeline this try created (id p-1, not p-0): a later try of this task instance made it"
    )
    for other in OTHERS:
        theirs = {"id": "p-1", "description": scratch_description("prod", other)}
        assert (
            removal_refusal(theirs, ME, "p-1")
            == f"it is not this task instance's scratch pipeline (its owner: {other})"
        )
    for foreign in (
        {"description": "the team's staging"},
        {"description": "airflow-checkpoint-sync restore drill scratch pipeline of 'x'"},
        {},
    ):
        assert (
            removal_refusal(foreign, ME) == "it is not this task instance's scratch pipeline (its owner: none recorded)"
        )


NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
FOREIGN = ["README", "team-b/checkpoints.feldera", "team-b/1/a", "team-b/1/b", "team-b/2/a", "team-b/2/b", "x"]


@pytest.mark.parametrize(
    ("names", "marker", "claim"),
    [
        ([], None, False),
        ([MARKER], ME, True),
        ([MARKER, "state/1"], ME, True),
        (FOREIGN, None, "7 object(s): README, team-b/1/a, team-b/1/b, team-b/2/a, team-b/2/b, ...) and nothing in it"),
        (["checkpoints.feldera", "a"], None, "it holds a checkpoints.feldera: it is a sync location"),
        ([MARKER, "state/1"], OTHERS[0], "it is the scratch location of the drill of task 'drill' of DAG"),
        (["checkpoints.feldera", MARKER], ME, True),  # what this drill's own scratch pipeline may have pushed
    ],
)
def test_a_scratch_location_is_used_only_empty_or_marked_by_this_task_instance(
    names: list[str], marker: DrillOwner | None, claim: bool | str
) -> None:
    if isinstance(claim, bool):
        assert location_claim("b/s", names, marker, ME) is claim
        return
    with pytest.raises(ValueError, match=r"scratch_bucket='b/s' is not empty \(") as refused:
        location_claim("b/s", names, marker, ME)
    assert claim in str(refused.value)
    assert "leave scratch_bucket unset" in str(refused.value)


def test_the_marker_names_its_owner_and_nothing_else_passes_for_one() -> None:
    body = marker_body(ME, NOW)
    assert marker_owner(body) == ME and b"2026-12-01T00:00:00+00:00" in body
    for foreign in (None, b"", b"not json", b"[]", b'{"owner": {}}', b'{"kind": "x", "owner": {"dag_id": "d"}}'):
        assert marker_owner(foreign) is None
    assert marker_owner(body.replace(b'"map_index": -1', b'"map_index": "-1"')) is None


def test_missing_files_of_a_cataloged_checkpoint_are_said_to_be_damage_not_a_wrong_uuid() -> None:
    reason = "failed to fetch checkpoint: checkpoint(s) [u] were not found in source(s): b/prod: no u.json"
    said = missing_files_cause(reason, "u", "b/prod")
    assert said is not None and "the catalog of b/prod names checkpoint u, but its files are missing" in said
    assert "The location is damaged: verify it" in said and "check the uuid" not in said
    assert missing_files_cause("out of memory", "u", "b/prod") is None


@pytest.mark.parametrize(
    ("deployment", "storage", "step"),
    [
        ("Running", "InUse", ("stop", True)),
        ("Stopping", "InUse", ("stop", True)),  # a stop is safe to repeat
        ("Stopped", "InUse", ("clear", True)),
        ("Stopped", "Clearing", ("clear", False)),  # a clear under way is only waited for
        ("Stopped", "Cleared", None),
    ],
)
def test_a_scratch_pipeline_is_removed_in_one_order_by_the_teardown_and_the_kill(
    deployment: str, storage: str, step: tuple[str, bool] | None
) -> None:
    from airflow_checkpoint_sync.rules.drill import removal_step

    found = removal_step({"deployment_status": deployment, "storage_status": storage})
    assert ((found.action, found.send) if found else None) == step
