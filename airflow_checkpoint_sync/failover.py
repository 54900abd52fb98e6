"""Pure rules of a guarded failover: what an approver is shown, and what their answer means.

No I/O: :class:`FailoverReadiness` is built from what the operators read, :func:`approval_of` from the XCom of
Airflow's human-in-the-loop ``ApprovalOperator``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, NamedTuple

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


class FailoverReadiness(NamedTuple):
    """What a failover from ``primary`` to ``standby`` would do, read just before someone decides on it."""

    standby: str
    #: The standby's ``deployment_status`` (``Standby`` when it can be activated).
    standby_status: str
    #: How the standby was last started (``standby`` for a real standby).
    standby_initial: str | None
    primary: str | None
    #: The primary's ``deployment_status``; None when it cannot be read (which counts as down).
    primary_status: str | None
    #: Why the primary cannot be read, when it cannot.
    primary_error: str | None
    #: The newest checkpoint the standby holds: the recovery point an activation starts from.
    checkpoint_uuid: str | None
    checkpoint_age_seconds: float | None
    #: The recovery-point bound (``max_checkpoint_age``), if any.
    max_checkpoint_age_seconds: float | None
    #: The freshness rule's verdict on that checkpoint against the bound (True without a bound).
    within_bound: bool

    @property
    def already_active(self) -> bool:
        return self.standby_status in ("Running", "Paused") and (self.standby_initial or "").lower() == "standby"

    def concerns(self) -> list[str]:
        """Each reason the activation would be refused, or would lose data, as a sentence; empty when it is ready."""
        concerns = []
        if self.primary and self.primary_status in ("Running", "Paused"):
            concerns.append(
                f"The primary '{self.primary}' is still {self.primary_status}: activating now would run two "
                "pipelines on the same input (split brain). Stop it first."
            )
        if self.standby_status != "Standby" and not self.already_active:
            concerns.append(
                f"The standby '{self.standby}' is {self.standby_status}, not in Standby: there is nothing to activate."
            )
        if not self.within_bound:
            if self.checkpoint_uuid is None or self.checkpoint_age_seconds is None:
                concerns.append(f"The standby '{self.standby}' holds no checkpoint with a known age.")
            else:
                concerns.append(
                    f"Its newest checkpoint is {human_age(self.checkpoint_age_seconds)} old, over the "
                    f"{human_age(self.max_checkpoint_age_seconds or 0)} bound: activating loses everything since. "
                    f"Approve with '{ALLOW_STALE_FIELD}' to accept it."
                )
        return concerns

    def summary(self) -> str:
        """The facts and the concerns in Markdown: the body of the approval request."""
        if self.primary is None:
            primary = "not named (not checked)"
        elif self.primary_status is None:
            primary = f"`{self.primary}`: cannot be read ({self.primary_error}), counted as down"
        else:
            primary = f"`{self.primary}`: **{self.primary_status}**"
        if self.checkpoint_uuid is None:
            point = "none"
        elif self.checkpoint_age_seconds is None:
            point = f"`{self.checkpoint_uuid}` (age unknown)"
        else:
            point = f"`{self.checkpoint_uuid}`, **{human_age(self.checkpoint_age_seconds)} old**"
        bound = "none" if self.max_checkpoint_age_seconds is None else human_age(self.max_checkpoint_age_seconds)
        lines = [
            f"- Primary: {primary}",
            f"- Standby: `{self.standby}`: **{self.standby_status}**"
            + (" (already activated)" if self.already_active else ""),
            f"- Recovery point (newest checkpoint the standby holds): {point}",
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
        return {
            "standby_pipeline_name": self.standby,
            "standby_status": self.standby_status,
            "primary_pipeline_name": self.primary,
            "primary_status": self.primary_status,
            "checkpoint_uuid": self.checkpoint_uuid,
            "checkpoint_age_seconds": self.checkpoint_age_seconds,
            "max_checkpoint_age_seconds": self.max_checkpoint_age_seconds,
            "ready": not self.concerns(),
            "concerns": self.concerns(),
            "summary": self.summary(),
        }


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
