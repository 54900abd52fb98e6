"""The matrix's own rules: plans are reproducible and cover every kind, and the judge catches an ignored sync."""

from __future__ import annotations

import pytest
from harness import deadline, sync_discipline
from plan import KINDS, PROFILES, matrix, plan


def test_a_seed_always_gives_the_same_plan_and_seeds_vary_it() -> None:
    assert plan("http_5xx", 7) == plan("http_5xx", 7)
    assert len({repr(plan("http_5xx", seed)) for seed in range(20)}) > 10


def test_the_matrix_cycles_through_every_kind_with_distinct_seeds() -> None:
    plans = matrix(25, first_seed=100)
    assert [p.kind for p in plans[: len(KINDS)]] == list(KINDS)
    assert len({p.seed for p in plans}) == 25
    assert all(p.deferrable for p in plans if p.kind == "triggerer_restart")
    assert all(p.flow != "failover" for p in plans if p.kind.startswith(("restart", "sync_fails", "triggerer")))


def test_the_full_matrix_runs_every_kind_on_both_version_profiles() -> None:
    plans = matrix(220)
    for kind in KINDS:
        assert {p.profile for p in plans if p.kind == kind} == set(PROFILES), kind


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        plan("meteor", 1)


LOG_OK = [
    "t checkpoint 0 requested",
    "t checkpoint 0 completed as A",
    "t checkpoint sync of A started",
    "t checkpoint sync of A failed: store down",
    "t checkpoint 1 requested",
    "t checkpoint 1 completed as B",
    "t checkpoint sync of B started",
    "t process restarted as incarnation X",
    "t checkpoint sync of B started",
    "t checkpoint sync of B succeeded",
]


def test_a_new_sync_after_a_failure_or_a_restart_is_allowed() -> None:
    assert sync_discipline(LOG_OK, reported="B") == []


def test_a_second_sync_while_the_first_runs_is_flagged() -> None:
    log = ["t checkpoint sync of A started", "t checkpoint sync of B started", "t checkpoint sync of B succeeded"]
    assert sync_discipline(log, reported="B") == ["sync of B started while ['A'] was still running"]


def test_a_second_checkpoint_while_the_first_is_pending_is_flagged() -> None:
    log = ["t checkpoint 3 requested", "t checkpoint 4 requested"]
    assert sync_discipline(log, reported=None) == ["checkpoint 4 requested while ['3'] was pending"]


def test_reporting_an_older_sync_than_the_last_started_is_flagged() -> None:
    problems = sync_discipline(LOG_OK, reported="A")
    assert problems == ["reported A, but the last sync started was B"]


def test_deadlines_cover_both_tries_of_every_task() -> None:
    assert deadline("migration") == 2 * deadline("scheduled_dr")
