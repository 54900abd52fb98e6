"""The pure rules of a guarded failover: what the approver is shown, and what their answer means."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_checkpoint_sync.failover import Approval, FailoverReadiness, approval_of, human_age

UUID = "01a23734-68e4-7000-b2cc-e36fbcb54e10"


def readiness(**changes: object) -> FailoverReadiness:
    base = FailoverReadiness(
        standby="standby",
        standby_status="Standby",
        standby_initial="standby",
        primary="prod",
        primary_status="Stopped",
        primary_error=None,
        checkpoint_uuid=UUID,
        checkpoint_age_seconds=125.0,
        max_checkpoint_age_seconds=3600.0,
        within_bound=True,
    )
    return base._replace(**changes)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0004, "0.0004 s"), (42.4, "42 s"), (725, "12 min 5 s"), (12000, "3 h 20 min"), (187200, "2 d 4 h")],
)
def test_ages_read_as_a_person_reads_them(seconds: float, text: str) -> None:
    assert human_age(seconds) == text


def test_a_ready_failover_says_so_with_its_facts() -> None:
    ready = readiness()
    assert ready.concerns() == []
    assert ready.as_dict()["ready"] is True
    summary = ready.summary()
    assert "Primary: `prod`: **Stopped**" in summary
    assert f"`{UUID}`, **2 min 5 s old**" in summary
    assert "bound (max_checkpoint_age): 1 h 0 min" in summary
    assert summary.endswith("Ready: no concern found.")


@pytest.mark.parametrize(
    ("changes", "concern"),
    [
        ({"primary_status": "Running"}, "The primary 'prod' is still Running: activating now would run two"),
        ({"primary_status": "Paused"}, "The primary 'prod' is still Paused"),
        ({"standby_status": "Stopped"}, "The standby 'standby' is Stopped, not in Standby"),
        (
            {"checkpoint_age_seconds": 7200.0, "within_bound": False},
            "Its newest checkpoint is 2 h 0 min old, over the 1 h 0 min bound",
        ),
        (
            {"checkpoint_uuid": None, "checkpoint_age_seconds": None, "within_bound": False},
            "holds no checkpoint with a known age",
        ),
    ],
)
def test_each_reason_to_hesitate_is_a_concern_shown_to_the_approver(changes: dict[str, object], concern: str) -> None:
    report = readiness(**changes)
    (only,) = report.concerns()
    assert concern in only
    assert report.as_dict()["ready"] is False
    assert "**Before you approve:**" in report.summary() and concern in report.summary()


def test_a_primary_that_cannot_be_read_counts_as_down_and_says_why() -> None:
    report = readiness(primary_status=None, primary_error="connection refused")
    assert report.concerns() == []
    assert "cannot be read (connection refused), counted as down" in report.summary()


def test_no_bound_means_no_recovery_point_concern_and_an_activated_standby_has_nothing_to_do() -> None:
    assert readiness(max_checkpoint_age_seconds=None, checkpoint_age_seconds=10**6).concerns() == []
    done = readiness(standby_status="Running")
    assert done.already_active and done.concerns() == []
    assert "Nothing to do: the standby was activated before." in done.summary()
    # Running but never a standby: that is a concern, not an activated standby.
    assert readiness(standby_status="Running", standby_initial="running").concerns()


def test_an_approval_answer_is_read_with_who_and_when() -> None:
    at = dt.datetime(2026, 12, 2, 3, 0, tzinfo=dt.UTC)
    answer = {
        "chosen_options": ["Approve"],
        "params_input": {"allow_stale_checkpoint": True},
        "responded_at": at,
        "responded_by_user": {"id": "u1", "name": "oncall"},
    }
    assert approval_of(answer) == Approval(True, "oncall", at.isoformat(), True)
    rejected = {**answer, "chosen_options": ["Reject"], "params_input": {}, "responded_by_user": {"id": "u1"}}
    assert approval_of(rejected) == Approval(False, "u1", at.isoformat(), False)
    # Only a real True overrides; a string from a sloppy form does not.
    assert approval_of({**answer, "params_input": {"allow_stale_checkpoint": "true"}}).allow_stale is False  # type: ignore[union-attr]


@pytest.mark.parametrize("value", [None, "Approve", {"chosen_options": "Approve"}, {}, ["Approve"]])
def test_anything_but_an_approval_answer_is_no_answer(value: object) -> None:
    assert approval_of(value) is None
