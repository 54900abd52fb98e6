"""Pure rules of a restore drill: which checkpoint to drill, what a SQL check is and whether its answer passes, and
which scratch locations are safe. No I/O; :class:`~airflow_checkpoint_sync.operators.drill.RestoreDrillOperator`
does the requests."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_checkpoint_sync.status import is_checkpoint_uuid, uuid7_time

if TYPE_CHECKING:
    import datetime as dt

#: Every scratch pipeline a drill creates says so in its description: only such a pipeline is ever deleted.
SCRATCH_MARK = "airflow-checkpoint-sync restore drill scratch pipeline"
DAY_S = 86400.0


def scratch_description(source: str) -> str:
    return f"{SCRATCH_MARK} of '{source}': deleted when the drill ends"


def is_scratch(pipeline: Mapping[str, Any]) -> bool:
    """Whether a pipeline is one a drill made (and may therefore stop, clear and delete)."""
    return str(pipeline.get("description") or "").startswith(SCRATCH_MARK)


def check_selection(checkpoint: object, within_days: object) -> tuple[str, float | None]:
    """``(checkpoint, within_days)`` checked: ``"latest"``, ``"random"`` (with a window in days above 0) or a uuid."""
    if checkpoint == "random":
        if isinstance(within_days, bool) or not isinstance(within_days, int | float) or not within_days > 0:
            raise ValueError(
                f"random_within_days={within_days!r} is not valid: with checkpoint='random', a number of days above 0"
            )
        return "random", float(within_days)
    if checkpoint == "latest" or is_checkpoint_uuid(checkpoint):
        return str(checkpoint), None
    raise ValueError(
        f"checkpoint={checkpoint!r} is not valid: 'latest', 'random' (one of the last random_within_days days) or a "
        "checkpoint uuid (a UUIDv7 in lower case)"
    )


def pick_checkpoint(
    checkpoint: str, within_days: float | None, catalog: Sequence[str], now: dt.datetime, seed: str
) -> str:
    """The uuid to drill from the catalog's uuids, or ValueError saying why there is none.

    ``random`` draws with ``seed`` (the task instance's identity), so a retry drills the checkpoint its first try
    drew."""
    if not catalog:
        raise ValueError("the location holds no synced checkpoint (no checkpoints.feldera, or an empty one)")
    if checkpoint == "latest":
        return max(catalog, key=uuid7_time)
    if checkpoint != "random":
        if checkpoint not in catalog:
            raise ValueError(f"checkpoint {checkpoint} is not in the location's catalog ({len(catalog)} checkpoints)")
        return checkpoint
    window = (within_days or 0) * DAY_S
    recent = sorted(u for u in catalog if (now - uuid7_time(u)).total_seconds() <= window)
    if not recent:
        raise ValueError(f"no checkpoint in the location is from the last {within_days:g} days")
    return random.Random(seed).choice(recent)


@dataclass(frozen=True)
class SqlCheck:
    """One validation: ``sql`` must answer one row of one value that is ``expect`` (exactly), or lies within
    ``min`` and ``max``.

    :param name: how the report names it (the SQL itself by default).
    """

    sql: str
    expect: Any = None
    min: float | None = None
    max: float | None = None
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.sql


def parse_checks(checks: object) -> tuple[SqlCheck, ...]:
    """``sql_checks`` as given (a list of dicts) into SqlChecks, or ValueError naming what is wrong."""
    if checks is None:
        return ()
    if not isinstance(checks, Sequence) or isinstance(checks, str | bytes):
        raise ValueError(f"sql_checks={checks!r} is not valid: a list of {{'sql': ..., 'expect' or 'min'/'max'}}")
    parsed = []
    for index, check in enumerate(checks):
        where = f"sql_checks[{index}]"
        if not isinstance(check, Mapping):
            raise ValueError(f"{where}={check!r} is not valid: a dict with 'sql' and 'expect', 'min' or 'max'")
        unknown = sorted(set(check) - {"sql", "expect", "min", "max", "name"})
        if unknown:
            raise ValueError(f"{where} has unknown keys {unknown}: use sql, expect, min, max, name")
        sql = check.get("sql")
        if not isinstance(sql, str) or not sql.strip():
            raise ValueError(f"{where}: 'sql' must be a SELECT statement, not {sql!r}")
        bounds = {key: check.get(key) for key in ("min", "max") if check.get(key) is not None}
        if "expect" not in check and not bounds:
            raise ValueError(f"{where}: give 'expect' (the exact value) or 'min'/'max' (bounds)")
        for key, value in bounds.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{where}: '{key}'={value!r} is not a number")
        parsed.append(
            SqlCheck(sql.strip(), check.get("expect"), bounds.get("min"), bounds.get("max"), check.get("name") or "")
        )
    return tuple(parsed)


def judge(check: SqlCheck, rows: Sequence[Mapping[str, Any]]) -> tuple[bool, Any, str]:
    """``(passed, value, message)`` for ``check`` given the rows its query answered."""
    if len(rows) != 1 or len(rows[0]) != 1:
        shape = f"{len(rows)} row(s)" if len(rows) != 1 else f"a row of {len(rows[0])} columns"
        return False, None, f"{check.label}: answered {shape}; a check's query must answer one row of one value"
    value = next(iter(rows[0].values()))
    if check.min is not None or check.max is not None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False, value, f"{check.label}: answered {value!r}, not a number to compare with the bounds"
        low = check.min if check.min is not None else float("-inf")
        high = check.max if check.max is not None else float("inf")
        ok = low <= value <= high
        return ok, value, f"{check.label}: {value!r} {'within' if ok else 'outside'} [{check.min}, {check.max}]"
    ok = value == check.expect
    return ok, value, f"{check.label}: {value!r} {'==' if ok else '!='} expected {check.expect!r}"
