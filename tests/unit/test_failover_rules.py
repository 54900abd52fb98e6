"""The pure rules of a guarded failover: what the approver is shown, and what their answer means."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_checkpoint_sync.exceptions import FelderaApiError, FelderaConnectionError
from airflow_checkpoint_sync.rules.failover import (
    Approval,
    FailoverReadiness,
    PrimaryReading,
    PrimaryState,
    Step,
    activation_step,
    approval_of,
    human_age,
    primary_reading,
    split_brain_concern,
    standby_step,
)

UUID = "01a23734-68e4-7000-b2cc-e36fbcb54e10"


def readiness(**changes: object) -> FailoverReadiness:
    base = FailoverReadiness(
        standby="standby",
        standby_status="Standby",
        standby_initial="Standby",
        standby_desired="Standby",
        standby_error=None,
        primary="prod",
        primary_reading=PrimaryReading(PrimaryState.DOWN, "Stopped"),
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
        (
            {"primary_reading": primary_reading({"deployment_status": "Running"})},
            "The primary pipeline 'prod' is still Running: activating now would run two",
        ),
        ({"primary_reading": primary_reading({"deployment_status": "Paused"})}, "The primary pipeline 'prod' is still"),
        (
            {"primary_reading": primary_reading(error=FelderaApiError("Unauthorized", status=401))},
            "The primary pipeline 'prod' cannot be checked (HTTP 401: Unauthorized)",
        ),
        ({"standby_status": "Stopped"}, "Pipeline 'standby' is Stopped, not in Standby"),
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


def test_a_primary_that_cannot_be_reached_counts_as_down_and_says_why() -> None:
    refused = FelderaConnectionError("connection refused", sent=False)
    report = readiness(primary_reading=primary_reading(error=refused))
    assert report.concerns() == []
    assert "cannot be reached (no response: connection refused), counted as down" in report.summary()


#: Every way the primary can answer a status read, and what the guard concludes: one table, for both operators.
PRIMARY_TABLE = [
    ({"deployment_status": "Running"}, None, PrimaryState.ACTIVE),
    ({"deployment_status": "Paused"}, None, PrimaryState.ACTIVE),
    ({"deployment_status": "Initializing"}, None, PrimaryState.ACTIVE),  # restarting: about to process input
    ({"deployment_status": "Replaying"}, None, PrimaryState.ACTIVE),
    ({"deployment_status": "Unavailable"}, None, PrimaryState.ACTIVE),  # may well still run
    ({"deployment_status": "AwaitingApproval"}, None, PrimaryState.ACTIVE),
    ({"deployment_status": "SomethingNewer"}, None, PrimaryState.ACTIVE),
    ({"deployment_status": "Stopped"}, None, PrimaryState.DOWN),
    ({"deployment_status": "Stopped", "deployment_error": {"message": "crashed"}}, None, PrimaryState.DOWN),
    ({"deployment_status": "Standby"}, None, PrimaryState.DOWN),
    (None, FelderaApiError("Unauthorized", status=401), PrimaryState.UNKNOWN),
    (None, FelderaApiError("no", status=403, error_code="InsufficientPermissions"), PrimaryState.UNKNOWN),
    (None, FelderaApiError("no such pipeline", status=404, error_code="UnknownPipelineName"), PrimaryState.UNKNOWN),
    (None, FelderaApiError("boom", status=500), PrimaryState.UNKNOWN),
    (None, FelderaApiError("teapot", status=418), PrimaryState.UNKNOWN),
    (None, FelderaApiError("not JSON", status=200, error_code="UnexpectedResponse"), PrimaryState.UNKNOWN),
    (None, FelderaConnectionError("certificate verify failed", sent=False, tls=True), PrimaryState.UNKNOWN),
    (None, FelderaApiError("bad gateway", status=502), PrimaryState.DOWN),
    (None, FelderaApiError("unavailable", status=503), PrimaryState.DOWN),
    (None, FelderaApiError("gateway timeout", status=504), PrimaryState.DOWN),
    (None, FelderaConnectionError("connection refused", sent=False), PrimaryState.DOWN),
    (None, FelderaConnectionError("read timed out", sent=True), PrimaryState.DOWN),
]


@pytest.mark.parametrize(("payload", "error", "state"), PRIMARY_TABLE)
def test_only_an_unreachable_or_stopped_primary_counts_as_down(
    payload: dict[str, object] | None, error: Exception | None, state: PrimaryState
) -> None:
    reading = primary_reading(payload, error)
    assert reading.state is state
    concern = split_brain_concern("prod", reading)
    assert (concern is None) == (state is PrimaryState.DOWN)
    if error is not None and concern is not None:
        assert str(error) in concern  # the refusal names the cause
    # The approver's report shows the concern exactly when the activation would refuse.
    report = readiness(primary_reading=reading)
    assert any("split brain" in c for c in report.concerns()) == (concern is not None)


@pytest.mark.parametrize(
    ("status", "initial", "desired", "step", "reason"),
    [
        ("Standby", "Standby", "Standby", Step.ACTIVATE, None),
        ("Running", "Standby", "Running", Step.ALREADY_ACTIVE, None),
        ("Paused", "Standby", "Paused", Step.ALREADY_ACTIVE, None),
        ("Initializing", "Standby", "Running", Step.WAIT, None),  # an activation under way (a retry)
        ("Initializing", "Standby", "Standby", Step.REFUSE, "on its way to Standby"),
        ("Running", "Running", "Running", Step.REFUSE, "was not started as a standby"),
        ("Initializing", "Running", "Running", Step.REFUSE, "was not started as a standby"),
        ("Stopped", None, "Stopped", Step.REFUSE, "is Stopped, not in Standby"),
        ("Stopping", "Standby", "Stopped", Step.REFUSE, "is Stopping, not in Standby"),
    ],
)
def test_the_standby_step_is_one_rule_for_the_report_and_the_activation(
    status: str, initial: str | None, desired: str, step: Step, reason: str | None
) -> None:
    verdict = standby_step("standby", status, initial, desired)
    assert verdict.step is step
    assert (verdict.reason is None) == (reason is None)
    report = readiness(standby_status=status, standby_initial=initial, standby_desired=desired)
    if reason is None:
        assert verdict.reason is None and report.concerns() == []
    else:
        assert reason in str(verdict.reason)
        assert report.concerns() == [f"{str(verdict.reason)[0].upper()}{str(verdict.reason)[1:]}."]


def test_a_failed_standby_names_its_deployment_error() -> None:
    verdict = standby_step("standby", "Stopped", "Standby", "Stopped", "checkpoint not found")
    assert verdict.step is Step.REFUSE and "(deployment error: checkpoint not found)" in str(verdict.reason)


def test_no_bound_means_no_recovery_point_concern_and_an_activated_standby_has_nothing_to_do() -> None:
    assert readiness(max_checkpoint_age_seconds=None, checkpoint_age_seconds=10**6).concerns() == []
    done = readiness(standby_status="Running", standby_desired="Running")
    assert done.already_active and done.concerns() == []
    assert "Nothing to do: the standby was activated before." in done.summary()
    # Running but never a standby: that is a concern, not an activated standby.
    assert readiness(standby_status="Running", standby_initial="Running").concerns()


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


def test_the_report_says_which_location_the_standby_really_pulls_from() -> None:
    from airflow_checkpoint_sync.rules.failover import followed_location

    assert followed_location("b/standby", None, None) == "its own bucket b/standby"
    assert (
        followed_location("b/standby", "b/prod", [])
        == "read_bucket b/prod (its own bucket b/standby holds no checkpoint)"
    )
    stale = followed_location("b/standby", "b/prod", [UUID])
    assert stale is not None and stale.startswith(f"its own bucket b/standby (1 checkpoint(s), newest {UUID}), NOT")
    assert "could not be listed" in str(followed_location("b/standby", "b/prod", None))
    assert followed_location(None, "b/prod", []) is None
    report = readiness(follows=stale)
    assert f"- Pulls from: {stale}" in report.summary()
    assert report.as_dict()["follows"] == stale and report.concerns() == []  # said, not a blocker: the bound decides


#: Every kind of concern, alone and together, with and without its override: one table for the report and the
#: activation.
SPLIT = {"primary_reading": PrimaryReading(PrimaryState.ACTIVE, "Running")}
UNKNOWN = {"primary_reading": PrimaryReading(PrimaryState.UNKNOWN, None, "HTTP 401: Unauthorized")}
STALE = {"checkpoint_age_seconds": 7200.0, "within_bound": False}
NOT_STANDBY = {"standby_status": "Stopped", "standby_initial": None, "standby_desired": "Stopped"}
ACTIVE = {"standby_status": "Running", "standby_desired": "Running"}
ON_ITS_WAY = {"standby_status": "Initializing", "standby_desired": "Running"}
STEP_TABLE: dict[str, tuple[dict[str, object], dict[str, bool], Step, str | None]] = {
    "ready": ({}, {}, Step.ACTIVATE, None),
    "primary running": (SPLIT, {}, Step.REFUSE, "allow_split_brain=True"),
    "primary running, allowed": (SPLIT, {"allow_split_brain": True}, Step.ACTIVATE, None),
    "primary unknown": (UNKNOWN, {}, Step.REFUSE, "cannot be checked (HTTP 401"),
    "primary unknown, allowed": (UNKNOWN, {"allow_split_brain": True}, Step.ACTIVATE, None),
    "stale": (STALE, {}, Step.REFUSE, "older than max_age 3600s (max_checkpoint_age)"),
    "stale, allowed": (STALE, {"allow_stale": True}, Step.ACTIVATE, None),
    "stale and running, only stale allowed": (
        {**SPLIT, **STALE},
        {"allow_stale": True},
        Step.REFUSE,
        "allow_split_brain=True",
    ),
    "stale and running, both allowed": (
        {**SPLIT, **STALE},
        {"allow_stale": True, "allow_split_brain": True},
        Step.ACTIVATE,
        None,
    ),
    "not a standby": (NOT_STANDBY, {"allow_stale": True, "allow_split_brain": True}, Step.REFUSE, "not in Standby"),
    "activated before": (ACTIVE, {}, Step.ALREADY_ACTIVE, None),
    "activation under way": (ON_ITS_WAY, {}, Step.WAIT, None),
    "stale but activated before": ({**ACTIVE, **STALE}, {}, Step.ALREADY_ACTIVE, None),
}


@pytest.mark.parametrize(("changes", "overrides", "step", "refusal"), STEP_TABLE.values(), ids=STEP_TABLE.keys())
def test_the_report_and_the_activation_follow_one_activation_step(
    changes: dict[str, object], overrides: dict[str, bool], step: Step, refusal: str | None
) -> None:
    report = readiness(**changes)
    verdict = activation_step(report, **overrides)  # type: ignore[arg-type]
    assert verdict.step is step
    if refusal is None:
        assert verdict.refusal is None
    else:
        assert verdict.refusal is not None and refusal in verdict.refusal
    # The approver's report is ready exactly when the activation, without an override, would refuse nothing; every
    # concern it shows is one the activation would refuse on, or one an override accepted.
    plain = activation_step(report)
    assert report.as_dict()["ready"] is (plain.step is not Step.REFUSE)
    assert len(verdict.accepted) + (verdict.step is Step.REFUSE) <= len(report.concerns())
    if verdict.step is not Step.REFUSE:
        assert len(verdict.accepted) == len(report.concerns())
