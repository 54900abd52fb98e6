"""Pure rules of a guarded failover: whether it may proceed, what an approver is shown, and what their answer means.

No I/O: :func:`primary_reading` and :func:`standby_step` judge what the operators read, :class:`FailoverReadiness`
gathers it, and :func:`activation_step` is the one verdict both ``FailoverReadinessOperator`` (the report an
approver reads) and ``ActivateStandbyOperator`` (the activation that follows) act on, so they never disagree;
:func:`approval_of` reads the XCom of Airflow's human-in-the-loop ``ApprovalOperator``.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from airflow_checkpoint_sync.exceptions import FelderaApiError, FelderaConnectionError
from airflow_checkpoint_sync.rules.status import ACTIVE_STATUSES, PipelineGroup, newest_uuid, pipeline_group

#: The option of Airflow's ApprovalOperator that approves.
APPROVE = "Approve"
#: The name of the approval form's field (a Param) that accepts a recovery point older than the bound.
ALLOW_STALE_FIELD = "allow_stale_checkpoint"


def human_age(seconds: float) -> str:
    """``seconds`` as an on-call engineer reads it: ``42 s``, ``12 min 5 s``, ``3 h 20 min``, ``2 d 4 h``."""
    if seconds < 1:
        return f"{seconds:.3g} s"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


#: Answers that say a gateway found no Feldera behind it: the primary's side is unreachable, not refusing.
UNREACHABLE_STATUSES = frozenset({502, 503, 504})
#: How a standby is told to start, to be a standby.
START_AS_STANDBY = "RestoreCheckpointOperator(initial='standby')"


class PrimaryState(enum.StrEnum):
    """What the split-brain guard concludes about the primary."""

    #: Processing input, or on its way to (any status but Stopped and Standby): activating now is a split brain.
    ACTIVE = "active"
    #: Stopped, or its Feldera cannot be reached (refused connection, timeout, a gateway's 502/503/504): the usual
    #: reason for a failover.
    DOWN = "down"
    #: Its Feldera answered, but not with its status (a wrong or read-only key, an unknown pipeline name, a
    #: certificate that does not verify): it may still be running, so the guard cannot be sure.
    UNKNOWN = "unknown"


class PrimaryReading(NamedTuple):
    """The primary as the guard read it: its state, its ``deployment_status`` when read, else why not."""

    state: PrimaryState
    status: str | None = None
    cause: str | None = None


def primary_reading(pipeline: Mapping[str, Any] | None = None, error: BaseException | None = None) -> PrimaryReading:
    """The guard's reading of the primary from its payload (``GET /v0/pipelines/{name}``), or from the error that
    reading it raised.

    Only an unreachable Feldera counts as down: a 401, 403 or 404 (or any other answer) proves the server is up and
    says nothing of the pipeline, so it is UNKNOWN and refused.
    """
    if pipeline is not None:
        status = str(pipeline.get("deployment_status"))
        down = pipeline_group(pipeline) in (PipelineGroup.STOPPED, PipelineGroup.FAILED, PipelineGroup.STANDBY)
        return PrimaryReading(PrimaryState.DOWN if down else PrimaryState.ACTIVE, status)
    cause = str(error) if error is not None else "not read"
    if isinstance(error, FelderaConnectionError) and not error.tls:
        return PrimaryReading(PrimaryState.DOWN, None, cause)
    if isinstance(error, FelderaApiError) and error.status in UNREACHABLE_STATUSES:
        return PrimaryReading(PrimaryState.DOWN, None, cause)
    return PrimaryReading(PrimaryState.UNKNOWN, None, cause)


def split_brain_concern(primary: str, reading: PrimaryReading) -> str | None:
    """Why activating now could run two pipelines on the same input, as a sentence; None when the primary is down."""
    if reading.state is PrimaryState.ACTIVE:
        return (
            f"the primary pipeline '{primary}' is still {reading.status}: activating now would run two pipelines on "
            "the same input (split brain). Stop the primary first"
        )
    if reading.state is PrimaryState.UNKNOWN:
        return (
            f"the primary pipeline '{primary}' cannot be checked ({reading.cause}): its Feldera answered, so it may "
            "still be running, and activating could run two pipelines on the same input (split brain). Check "
            "primary_pipeline_name and primary_conn_id (its API key), or stop the primary"
        )
    return None


class Step(enum.StrEnum):
    """What an activation does with the standby as it finds it."""

    ACTIVATE = "activate"
    #: Started as a standby and Running or Paused since: activated before (a retry, a second click).
    ALREADY_ACTIVE = "already_active"
    #: Started as a standby and on its way to Running or Paused: an activation is under way; wait for it.
    WAIT = "wait"
    REFUSE = "refuse"


class StandbyStep(NamedTuple):
    """The step, and for REFUSE the reason as a sentence."""

    step: Step
    reason: str | None = None


def standby_step(
    standby: str, status: str, initial: str | None, desired: str | None, error: str | None = None
) -> StandbyStep:
    """What an activation does with ``standby`` in ``status`` (``deployment_status``), started as ``initial``
    (``deployment_initial``), heading for ``desired`` (``deployment_desired_status``), stopped with ``error``."""
    group = pipeline_group({"deployment_status": status, "deployment_error": error})
    was_standby = (initial or "").lower() == "standby"
    if group is PipelineGroup.STANDBY:
        return StandbyStep(Step.ACTIVATE)
    active = group in (PipelineGroup.RUNNING, PipelineGroup.PAUSED)
    heading_active = active or (group is PipelineGroup.TRANSITIONAL and desired in ACTIVE_STATUSES)
    if heading_active and not was_standby:
        # Feldera's /activate accepts any transition (it would pause a running pipeline): refuse here.
        return StandbyStep(
            Step.REFUSE,
            f"pipeline '{standby}' is {status} but was not started as a standby (it was started "
            f"{initial or 'with no recorded initial state'}): there is no standby to activate. Check "
            f"pipeline_name; a standby is started with {START_AS_STANDBY}",
        )
    if active:
        return StandbyStep(Step.ALREADY_ACTIVE)
    if heading_active:
        return StandbyStep(Step.WAIT)
    if group is PipelineGroup.TRANSITIONAL and desired == "Standby":
        return StandbyStep(
            Step.REFUSE,
            f"pipeline '{standby}' is {status} on its way to Standby: there is nothing to activate yet. Wait until it "
            "is in Standby (it has pulled a checkpoint), then fail over again",
        )
    return StandbyStep(
        Step.REFUSE,
        f"pipeline '{standby}' is {status}, not in Standby"
        + (f" (deployment error: {error})" if error else "")
        + f": start it as a standby first, e.g. {START_AS_STANDBY}",
    )


def followed_location(bucket: str | None, read_bucket: str | None, own: Sequence[str] | None) -> str | None:
    """Which location a standby really pulls from, as a phrase for the approver: Feldera reads ``read_bucket`` only
    while the standby's own ``bucket`` holds no checkpoint (``own``: the uuids listed there; None when it could not
    be listed)."""
    if not bucket:
        return None
    if not read_bucket:
        return f"its own bucket {bucket}"
    if own is None:
        return f"{bucket} if that holds any checkpoint, else read_bucket {read_bucket} (its bucket could not be listed)"
    if own:
        newest = newest_uuid(own)
        return (
            f"its own bucket {bucket} ({len(own)} checkpoint(s), newest {newest}), NOT read_bucket {read_bucket}: "
            "Feldera reads read_bucket only while bucket holds no checkpoint"
        )
    return f"read_bucket {read_bucket} (its own bucket {bucket} holds no checkpoint)"


class ConcernKind(enum.StrEnum):
    """Which rule a concern comes from; each has its override (or none)."""

    #: The primary may still be up (``allow_split_brain`` accepts it).
    SPLIT_BRAIN = "split_brain"
    #: The standby cannot be activated as it is (nothing accepts it).
    STANDBY = "standby"
    #: The recovery point is older than the bound (``allow_stale_checkpoint`` accepts it).
    STALE = "stale"


class Concern(NamedTuple):
    """One reason an activation would be refused, or would lose data: the approver's sentence and the
    activation's refusal, worded once, here."""

    kind: ConcernKind
    #: What the approver reads.
    sentence: str
    #: What the refused activation says (naming the override, where there is one).
    refusal: str


class ActivationStep(NamedTuple):
    """What an activation does: its step, for REFUSE the refusal, and the concerns an override accepted."""

    step: Step
    refusal: str | None = None
    accepted: tuple[Concern, ...] = ()


def stale_point(standby: str, checkpoint_uuid: str | None, age_seconds: float | None, bound: float) -> str:
    """Why the recovery point fails the bound, as a phrase."""
    if checkpoint_uuid is None:
        return f"the standby '{standby}' holds no checkpoint (max_age {bound:g}s)"
    if age_seconds is None:
        return f"the newest checkpoint is {checkpoint_uuid}, whose age cannot be told (max_age {bound:g}s)"
    return f"the newest checkpoint is {checkpoint_uuid}, {age_seconds:.0f}s old: older than max_age {bound:g}s"


class FailoverReadiness(NamedTuple):
    """What a failover from ``primary`` to ``standby`` would do, read just before someone decides on it: the facts,
    judged by the rules the activation follows (:func:`primary_reading`, :func:`standby_step`)."""

    standby: str
    #: The standby's ``deployment_status`` (``Standby`` when it can be activated).
    standby_status: str
    #: How the standby was last started (``Standby`` for a real standby).
    standby_initial: str | None
    #: Where the standby is heading (``deployment_desired_status``).
    standby_desired: str | None
    #: Why the standby stopped, if it failed.
    standby_error: str | None
    primary: str | None
    #: The guard's reading of the primary; None when no primary is named.
    primary_reading: PrimaryReading | None
    #: The newest checkpoint the standby holds: the recovery point an activation starts from.
    checkpoint_uuid: str | None
    checkpoint_age_seconds: float | None
    #: The recovery-point bound (``max_checkpoint_age``), if any.
    max_checkpoint_age_seconds: float | None
    #: The freshness rule's verdict on that checkpoint against the bound (True without a bound).
    within_bound: bool
    #: Which location the standby really pulls from (:func:`followed_location`), when known.
    follows: str | None = None

    @property
    def step(self) -> StandbyStep:
        """What the activation would do with the standby as it is now."""
        return standby_step(
            self.standby, self.standby_status, self.standby_initial, self.standby_desired, self.standby_error
        )

    @property
    def already_active(self) -> bool:
        return self.step.step is Step.ALREADY_ACTIVE

    def concern_list(self) -> list[Concern]:
        """Each reason the activation would be refused, or would lose data, most pressing first; empty when it is
        ready."""
        concerns = []
        if self.primary and self.primary_reading is not None:
            split_brain = split_brain_concern(self.primary, self.primary_reading)
            if split_brain:
                concerns.append(
                    Concern(
                        ConcernKind.SPLIT_BRAIN,
                        _sentence(split_brain),
                        f"refusing to activate '{self.standby}': {split_brain}, or set allow_split_brain=True if "
                        "you really mean to activate beside it.",
                    )
                )
        if self.step.reason:
            concerns.append(Concern(ConcernKind.STANDBY, _sentence(self.step.reason), f"{self.step.reason}."))
        if not self.within_bound and self.step.step is Step.ACTIVATE:
            if self.checkpoint_uuid is None or self.checkpoint_age_seconds is None:
                sentence = f"The standby '{self.standby}' holds no checkpoint with a known age."
            else:
                sentence = (
                    f"Its newest checkpoint is {human_age(self.checkpoint_age_seconds)} old, over the "
                    f"{human_age(self.max_checkpoint_age_seconds or 0)} bound: activating loses everything since. "
                    f"Approve with '{ALLOW_STALE_FIELD}' to accept it."
                )
            point = stale_point(
                self.standby, self.checkpoint_uuid, self.checkpoint_age_seconds, self.max_checkpoint_age_seconds or 0
            )
            refusal = (
                f"refusing to activate '{self.standby}': {point} (max_checkpoint_age). Activating would lose "
                "everything since that recovery point. Check that the primary's syncs and the standby's pulls work; "
                f"set {ALLOW_STALE_FIELD}=True (or approve with it) to accept this recovery point."
            )
            concerns.append(Concern(ConcernKind.STALE, sentence, refusal))
        return concerns

    def concerns(self) -> list[str]:
        """Each concern as the approver reads it; empty when the failover is ready."""
        return [concern.sentence for concern in self.concern_list()]

    def summary(self) -> str:
        """The facts and the concerns in Markdown: the body of the approval request."""
        reading = self.primary_reading
        if self.primary is None or reading is None:
            primary = "not named (not checked)"
        elif reading.status is not None:
            primary = f"`{self.primary}`: **{reading.status}**"
        elif reading.state is PrimaryState.DOWN:
            primary = f"`{self.primary}`: cannot be reached ({reading.cause}), counted as down"
        else:
            primary = f"`{self.primary}`: **cannot be checked** ({reading.cause})"
        if self.checkpoint_uuid is None:
            point = "none"
        elif self.checkpoint_age_seconds is None:
            point = f"`{self.checkpoint_uuid}` (age unknown)"
        else:
            point = f"`{self.checkpoint_uuid}`, **{human_age(self.checkpoint_age_seconds)} old**"
        bound = "none" if self.max_checkpoint_age_seconds is None else human_age(self.max_checkpoint_age_seconds)
        standby_note = {Step.ALREADY_ACTIVE: " (already activated)", Step.WAIT: " (an activation is under way)"}
        lines = [
            f"- Primary: {primary}",
            f"- Standby: `{self.standby}`: **{self.standby_status}**" + standby_note.get(self.step.step, ""),
            f"- Recovery point (newest checkpoint the standby holds): {point}",
            *([f"- Pulls from: {self.follows}"] if self.follows else []),
            f"- Recovery-point bound (max_checkpoint_age): {bound}",
            "",
        ]
        concerns = self.concerns()
        if concerns:
            lines += ["**Before you approve:**", "", *(f"- {concern}" for concern in concerns)]
        elif self.already_active:
            lines.append("Nothing to do: the standby was activated before.")
        else:
            lines.append("Ready: no concern found.")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """The XCom: every fact, ``ready``, the ``concerns`` and the Markdown ``summary``."""
        reading = self.primary_reading
        return {
            "standby_pipeline_name": self.standby,
            "standby_status": self.standby_status,
            "primary_pipeline_name": self.primary,
            "primary_status": reading.status if reading else None,
            "primary_state": str(reading.state) if reading else None,
            "checkpoint_uuid": self.checkpoint_uuid,
            "checkpoint_age_seconds": self.checkpoint_age_seconds,
            "max_checkpoint_age_seconds": self.max_checkpoint_age_seconds,
            "follows": self.follows,
            "ready": not self.concerns(),
            "concerns": self.concerns(),
            "summary": self.summary(),
        }


def activation_step(
    readiness: FailoverReadiness, *, allow_split_brain: bool = False, allow_stale: bool = False
) -> ActivationStep:
    """The one verdict of a failover: what the activation does with the standby, given everything the readiness
    report shows. A concern refuses it unless its override accepts it (a standby that cannot be activated has
    none); the readiness report is ready exactly when this, without overrides, refuses nothing."""
    overrides = {ConcernKind.SPLIT_BRAIN: allow_split_brain, ConcernKind.STALE: allow_stale}
    accepted: list[Concern] = []
    for concern in readiness.concern_list():
        if not overrides.get(concern.kind, False):
            return ActivationStep(Step.REFUSE, concern.refusal, tuple(accepted))
        accepted.append(concern)
    return ActivationStep(readiness.step.step, None, tuple(accepted))


def _sentence(text: str) -> str:
    return f"{text[0].upper()}{text[1:]}."


class Approval(NamedTuple):
    """An answer to the approval request, as the activation acts on it and records it."""

    approved: bool
    #: The approver's user name (or id), as Airflow recorded it.
    by: str | None
    #: When they answered, ISO 8601.
    at: str | None
    #: The approver accepted a recovery point older than the bound.
    allow_stale: bool


def approval_of(value: object) -> Approval | None:
    """The answer in an ``ApprovalOperator``'s XCom (``chosen_options``, ``params_input``, ``responded_by_user``,
    ``responded_at``); None when ``value`` is not one (no answer was recorded)."""
    if not isinstance(value, Mapping) or not isinstance(value.get("chosen_options"), list | tuple):
        return None
    user = value.get("responded_by_user")
    by = None
    if isinstance(user, Mapping):
        by = str(user.get("name") or user.get("id") or "") or None
    at = value.get("responded_at")
    when = at.isoformat() if isinstance(at, dt.datetime) else (str(at) if at is not None else None)
    fields = value.get("params_input")
    allow_stale = isinstance(fields, Mapping) and fields.get(ALLOW_STALE_FIELD) is True
    return Approval(list(value["chosen_options"]) == [APPROVE], by, when, allow_stale)
