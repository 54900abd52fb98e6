"""Seeded fault plans for the reliability matrix: pure data, no I/O.

A plan says which DR flow runs, whether its tasks defer, which faults hit it and when, what a correct outcome is,
and which words in the task log name the cause if the flow fails. The same ``(kind, seed)`` always gives the
same plan, so any run in the table can be repeated exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

KINDS = (
    "http_5xx",
    "rate_limited",
    "dropped_connection",
    "slow_response",
    "restart_during_checkpoint",
    "restart_during_sync",
    "sync_fails_in_store",
    "object_store_down",
    "triggerer_restart",
    "worker_death",
)
FLOWS = ("scheduled_dr", "migration", "failover")
#: The sandbox's version profiles; each plan runs against one, drawn from its seed.
PROFILES = ("0.337", "0.369")
#: The Feldera connection's client timeout in the matrix; slow responses are made slower than this.
CLIENT_TIMEOUT = 2.0

Expect = Literal["success", "either"]

# (method, which pipeline, path suffix) of every request each flow makes, as the operators send them.
_SYNC_CALLS = [
    ("GET", "primary", ""),
    ("POST", "primary", "/checkpoint"),
    ("GET", "primary", "/checkpoint_status"),
    ("POST", "primary", "/checkpoint/sync"),
    ("GET", "primary", "/checkpoint/sync_status"),
]
CALLS: dict[str, list[tuple[str, str, str]]] = {
    "scheduled_dr": _SYNC_CALLS,
    "migration": [*_SYNC_CALLS, ("GET", "standby", ""), ("PATCH", "standby", ""), ("POST", "standby", "/start")],
    "failover": [("GET", "primary", ""), ("GET", "standby", ""), ("POST", "standby", "/activate")],
}
# Faults that only make sense where the flow takes and syncs a checkpoint; a triggerer restart too, because a
# failover's activation is usually over before its task would defer (migration still covers the status trigger).
_SYNCING_KINDS = {"restart_during_checkpoint", "restart_during_sync", "sync_fails_in_store", "triggerer_restart"}


@dataclass(frozen=True)
class Plan:
    """One seeded run of the matrix.

    ``rules`` are sandbox fault rules with ``{primary}``/``{standby}`` placeholders in their paths;
    ``store_outage`` is (start, length) in seconds after the flow starts; ``triggerer_restart_after`` is how long
    the first trigger lives before the triggerer goes down; ``worker_death_after`` is when, after the flow starts,
    the worker dies (at the next moment the provider's code runs); ``expect`` is what a correct provider does;
    ``cause`` is a regex one of whose matches must be in the log of a failed run (unused when only success is
    correct).
    """

    kind: str
    seed: int
    flow: str
    deferrable: bool
    profile: str = "0.369"
    rules: tuple[dict[str, Any], ...] = ()
    fail_next_sync: bool = False
    store_outage: tuple[float, float] | None = None
    triggerer_restart_after: float | None = None
    worker_death_after: float | None = None
    sync_delay_s: float = 0.3
    expect: Expect = "success"
    cause: str = field(default="", compare=False)

    @property
    def label(self) -> str:
        mode = "deferred" if self.deferrable else "worker"
        return f"{self.kind}-{self.flow}-{mode}-{self.profile}-seed{self.seed}"


def plan(kind: str, seed: int) -> Plan:
    """The plan for ``kind`` and ``seed`` (deterministic)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    rng = random.Random(f"{kind}:{seed}")
    flows = [f for f in FLOWS if f != "failover"] if kind in _SYNCING_KINDS else list(FLOWS)
    flow = rng.choice(flows)
    deferrable = True if kind == "triggerer_restart" else rng.random() < 0.5
    # Drawn apart, so that adding profiles left every other draw of a seed as it was.
    profile = random.Random(f"profile:{kind}:{seed}").choice(PROFILES)
    base = {"kind": kind, "seed": seed, "flow": flow, "deferrable": deferrable, "profile": profile}
    marker = f"injected {kind} seed {seed}"

    if kind in ("http_5xx", "rate_limited", "dropped_connection", "slow_response"):
        method, target, suffix = rng.choice(CALLS[flow])
        rule: dict[str, Any] = {"path": "/v0/pipelines/{" + target + "}" + suffix, "method": method}
        mutating = method != "GET"
        if kind == "http_5xx":
            status = rng.choice([502, 503, 504])
            rule.update(kind="status", status=status, count=rng.randint(1, 4), error_code="Injected", message=marker)
            # A 502/504 on a POST may hide a request that took effect, so it is not re-sent: failing is correct.
            return Plan(**base, rules=(rule,), expect="either" if mutating else "success", cause=marker)
        if kind == "rate_limited":
            rule.update(
                kind="status",
                status=429,
                count=rng.randint(1, 3),
                retry_after=round(rng.uniform(0.1, 1.0), 2),
                error_code="TooManyRequests",
                message=marker,
            )
            return Plan(**base, rules=(rule,), expect="success", cause=marker)
        if kind == "dropped_connection":
            after = rng.random() < 0.5
            rule.update(kind="drop_after" if after else "drop_before", count=rng.randint(1, 2))
            return Plan(
                **base, rules=(rule,), expect="either" if mutating else "success", cause=r"(?i)connection|disconnect"
            )
        rule.update(kind="delay", delay_s=CLIENT_TIMEOUT + round(rng.uniform(0.3, 1.0), 2), count=rng.randint(1, 2))
        return Plan(**base, rules=(rule,), expect="either" if mutating else "success", cause=r"(?i)timed out|in time")

    if kind == "restart_during_checkpoint":
        rule = {"path": "/v0/pipelines/{primary}/checkpoint_status", "method": "GET", "kind": "restart"}
        return Plan(**base, rules=(rule,), expect="success", cause=r"(?i)restart")
    if kind == "restart_during_sync":
        # skip=1: the sync task reads the status once before it asks for the push; the restart hits the push.
        rule = {"path": "/v0/pipelines/{primary}/checkpoint/sync_status", "method": "GET", "kind": "restart", "skip": 1}
        return Plan(**base, rules=(rule,), sync_delay_s=0.8, expect="success", cause=r"(?i)restart")
    if kind == "sync_fails_in_store":
        # The first try fails with the store's error; the task's one retry takes and syncs a new checkpoint.
        return Plan(**base, fail_next_sync=True, expect="either", cause="injected sync failure")
    if kind == "object_store_down":
        outage = (round(rng.uniform(0.0, 1.0), 2), round(rng.uniform(0.5, 5.0), 2))
        return Plan(**base, store_outage=outage, sync_delay_s=0.5, expect="success", cause=r"(?i)s3|endpoint|bucket")
    if kind == "triggerer_restart":
        # Short lives: a failover's wait (an activation) is over in well under a second.
        life = round(rng.uniform(0.02, 0.4), 2)
        return Plan(**base, triggerer_restart_after=life, sync_delay_s=2.0, expect="success")
    death = round(rng.uniform(0.05, 1.0), 2)
    return Plan(**base, worker_death_after=death, sync_delay_s=2.0, expect="success")


def matrix(runs: int, first_seed: int = 0) -> list[Plan]:
    """``runs`` plans cycling through every kind, seeds counting up from ``first_seed``."""
    return [plan(KINDS[i % len(KINDS)], first_seed + i) for i in range(runs)]
