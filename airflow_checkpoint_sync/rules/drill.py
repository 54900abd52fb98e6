"""Pure rules of a restore drill: which checkpoint to drill, what a SQL check is and whether its answer passes, who
owns a scratch pipeline or a scratch location, and what a drill may delete. No I/O;
:class:`~airflow_checkpoint_sync.operators.drill.RestoreDrillOperator` does the requests."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_checkpoint_sync.exceptions import FelderaConfigError
from airflow_checkpoint_sync.rules.bucket_layout import CATALOG
from airflow_checkpoint_sync.rules.status import is_checkpoint_uuid, uuid7_time

if TYPE_CHECKING:
    import datetime as dt

#: Every scratch pipeline a drill creates says so in its description, followed by its owner (:data:`OWNER_TAG`).
SCRATCH_MARK = "airflow-checkpoint-sync restore drill scratch pipeline"
#: What precedes the owner (a JSON object) at the end of a scratch pipeline's description.
OWNER_TAG = " owner="
#: The object a drill writes at the root of its scratch location before it creates anything, and deletes last: the
#: proof that what lies under the location is the drill's own.
MARKER = ".airflow-checkpoint-sync-drill.json"
#: What the marker says it is, so that a foreign object of that name is not taken for one.
MARKER_KIND = "airflow-checkpoint-sync restore drill scratch location"
#: How many of a foreign location's object names a refusal lists.
NAMES_SHOWN = 5
DAY_S = 86400.0


@dataclass(frozen=True)
class DrillOwner:
    """The task instance a drill runs as: what it creates is its own, on every try (the try number is not part of
    it, so that a retry may remove what its killed try left).

    :param dag_id: the DAG's id.
    :param task_id: the task's id.
    :param map_index: the map index (-1 for a task that is not mapped).
    :param run_id: the DAG run's id.
    """

    dag_id: str
    task_id: str
    map_index: int
    run_id: str

    @classmethod
    def of(cls, ti: Any) -> DrillOwner:
        """The owner of task instance ``ti`` (anything with ``dag_id``, ``task_id``, ``run_id``, ``map_index``)."""
        map_index = getattr(ti, "map_index", -1)
        return cls(str(ti.dag_id), str(ti.task_id), -1 if map_index is None else int(map_index), str(ti.run_id))

    def as_dict(self) -> dict[str, Any]:
        return {"dag_id": self.dag_id, "task_id": self.task_id, "map_index": self.map_index, "run_id": self.run_id}

    @classmethod
    def from_dict(cls, value: object) -> DrillOwner | None:
        """The owner a description or a marker records, or None when ``value`` is not one."""
        if not isinstance(value, Mapping):
            return None
        dag_id, task_id, run_id = (value.get(k) for k in ("dag_id", "task_id", "run_id"))
        index = value.get("map_index")
        if not all(isinstance(v, str) and v for v in (dag_id, task_id, run_id)):
            return None
        if isinstance(index, bool) or not isinstance(index, int):
            return None
        return cls(str(dag_id), str(task_id), index, str(run_id))

    @property
    def key(self) -> str:
        """One string for the owner, the same on every try and on every machine."""
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def suffix(self) -> str:
        """Eight hex digits of the owner's key: what makes the default scratch names of two drills differ."""
        return hashlib.sha256(self.key.encode()).hexdigest()[:8]

    def __str__(self) -> str:
        where = f", map index {self.map_index}" if self.map_index >= 0 else ""
        return f"task '{self.task_id}'{where} of DAG '{self.dag_id}', run '{self.run_id}'"


def default_scratch_names(source: str, location: tuple[str, str], owner: DrillOwner) -> tuple[str, str | None]:
    """``(scratch_pipeline_name, scratch_bucket)`` by default: ``<pipeline>-drill-<suffix>`` and
    ``<bucket>/<prefix>-drill-<suffix>`` (None when the location is a whole bucket: there is no place next to it).

    The suffix is the owner's, so two drills of one pipeline that overlap (a manual run beside the scheduled one, a
    backfill) never share a scratch pipeline or location, and every try of one task instance uses the same ones."""
    container, prefix = location
    bucket = f"{container}/{prefix}-drill-{owner.suffix}" if prefix else None
    return f"{source}-drill-{owner.suffix}", bucket


def scratch_description(source: str, owner: DrillOwner) -> str:
    """The description of a scratch pipeline: the mark, the source, and the owner (as JSON, read back by
    :func:`scratch_owner`)."""
    return f"{SCRATCH_MARK} of '{source}': deleted when the drill ends.{OWNER_TAG}{owner.key}"


def is_scratch(pipeline: Mapping[str, Any]) -> bool:
    """Whether a pipeline says it is a drill's scratch pipeline (whose, :func:`scratch_owner` tells)."""
    return str(pipeline.get("description") or "").startswith(SCRATCH_MARK)


def scratch_owner(pipeline: Mapping[str, Any]) -> DrillOwner | None:
    """The owner a scratch pipeline's description records; None for any other pipeline, and for a scratch pipeline
    of a version that recorded no owner (nobody can prove it is theirs, so no drill deletes it)."""
    description = str(pipeline.get("description") or "")
    if not description.startswith(SCRATCH_MARK) or OWNER_TAG not in description:
        return None
    try:
        return DrillOwner.from_dict(json.loads(description.rpartition(OWNER_TAG)[2]))
    except ValueError:
        return None


def pipeline_claim(name: str, pipeline: Mapping[str, Any] | None, owner: DrillOwner) -> bool:
    """Whether pipeline ``name`` (None: there is none) is this drill's own, left by an earlier try (True: remove
    it), or absent (False); ValueError when it is somebody else's, which no drill may stop or delete."""
    if pipeline is None:
        return False
    if not is_scratch(pipeline):
        raise FelderaConfigError(
            f"scratch_pipeline_name={name!r} names an existing pipeline that is not a drill's scratch pipeline: a "
            "drill deletes its scratch pipeline when it ends, so name one that does not exist"
        )
    theirs = scratch_owner(pipeline)
    if theirs == owner:
        return True
    whose = f"the drill of {theirs}" if theirs else "a drill that recorded no owner (an older version)"
    raise FelderaConfigError(
        f"scratch_pipeline_name={name!r} is the scratch pipeline of {whose}, which may be running now: a drill only "
        "removes its own. Leave scratch_pipeline_name unset (each task instance then has a name of its own) or name "
        "one that does not exist; delete that pipeline yourself once no drill uses it"
    )


def removal_refusal(pipeline: Mapping[str, Any], owner: DrillOwner, pipeline_id: str | None = None) -> str | None:
    """Why a drill of ``owner`` may not stop and delete ``pipeline`` (None: it may).

    Only the scratch pipeline whose description names ``owner`` may go. Given ``pipeline_id`` (the ``id`` Feldera
    gave the pipeline the drill created), only that very pipeline: a later try of the same task instance deletes a
    leftover and creates its own, of the same name and owner, which a remover acting for the earlier try (a killed
    deferred try's trigger) must not touch."""
    theirs = scratch_owner(pipeline)
    if theirs != owner:
        return f"it is not this task instance's scratch pipeline (its owner: {theirs or 'none recorded'})"
    if pipeline_id is not None and pipeline.get("id") != pipeline_id:
        return (
            f"it is not the pipeline this try created (id {pipeline.get('id')}, not {pipeline_id}): a later try of "
            "this task instance made it"
        )
    return None


class RemovalStep(NamedTuple):
    """One step of removing a scratch pipeline: ask for ``action`` (unless one is under way) and wait until the
    pipeline's ``field`` is ``target``."""

    #: ``stop`` (forced) or ``clear`` (its storage).
    action: str
    field: str
    target: str
    #: False when the pipeline is on its way already (a clear under way): only wait, as Feldera refuses a second.
    send: bool


#: How a scratch pipeline is removed: Feldera deletes only a stopped pipeline whose storage is cleared. A stop is safe
#: to repeat; a clear under way is not (a killed try's trigger and the retry may both be removing one pipeline).
REMOVAL = (("stop", "deployment_status", "Stopped", ()), ("clear", "storage_status", "Cleared", ("Clearing",)))


def removal_step(pipeline: Mapping[str, Any]) -> RemovalStep | None:
    """The next step of removing ``pipeline`` (its payload) before it can be deleted; None when it can be: the one
    order both the drill's teardown and a killed deferred drill's trigger follow."""
    for action, field, target, under_way in REMOVAL:
        if pipeline.get(field) != target:
            return RemovalStep(action, field, target, send=pipeline.get(field) not in under_way)
    return None


def marker_body(owner: DrillOwner, now: dt.datetime) -> bytes:
    """The marker's content: what it is, its owner and when it was written."""
    return json.dumps({"kind": MARKER_KIND, "owner": owner.as_dict(), "written_at": now.isoformat()}).encode()


def marker_owner(body: bytes | None) -> DrillOwner | None:
    """The owner a marker names; None when there is no marker or it is not one a drill wrote."""
    if body is None:
        return None
    try:
        marker = json.loads(body)
    except ValueError:
        return None
    if not isinstance(marker, Mapping) or marker.get("kind") != MARKER_KIND:
        return None
    return DrillOwner.from_dict(marker.get("owner"))


def location_claim(where: str, names: Sequence[str], marker: DrillOwner | None, owner: DrillOwner) -> bool:
    """Whether scratch location ``where`` holds an earlier try's objects (True: this drill's own, to delete),
    nothing (False); ValueError when anything in it is not provably this drill's, which is never deleted.

    :param names: the object names under the location (relative to it).
    :param marker: the owner its :data:`MARKER` names (None: no marker, or one no drill wrote).
    """
    if not names:
        return False
    if marker == owner:
        return True
    shown = ", ".join(sorted(names)[:NAMES_SHOWN]) + (", ..." if len(names) > NAMES_SHOWN else "")
    if marker is not None:
        whose = f"it is the scratch location of the drill of {marker}, which may be running now"
    elif CATALOG in names:
        whose = f"it holds a {CATALOG}: it is a sync location"
    else:
        whose = "nothing in it says a drill wrote it"
    raise FelderaConfigError(
        f"scratch_bucket={where!r} is not empty ({len(names)} object(s): {shown}) and {whose}. A drill empties its "
        "scratch location when it ends, so it only uses an empty one or its own: leave scratch_bucket unset (each "
        "task instance then has one of its own) or give it an empty location"
    )


def check_selection(checkpoint: object, within_days: object) -> tuple[str, float | None]:
    """``(checkpoint, within_days)`` checked: ``"latest"``, ``"random"`` (with a window in days above 0) or a uuid."""
    if checkpoint == "random":
        if isinstance(within_days, bool) or not isinstance(within_days, int | float) or not within_days > 0:
            raise FelderaConfigError(
                f"random_within_days={within_days!r} is not valid: with checkpoint='random', a number of days above 0"
            )
        return "random", float(within_days)
    if checkpoint == "latest" or is_checkpoint_uuid(checkpoint):
        return str(checkpoint), None
    raise FelderaConfigError(
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
        raise FelderaConfigError("the location holds no synced checkpoint (no checkpoints.feldera, or an empty one)")
    if checkpoint == "latest":
        return max(catalog, key=uuid7_time)
    if checkpoint != "random":
        if checkpoint not in catalog:
            raise FelderaConfigError(
                f"checkpoint {checkpoint} is not in the location's catalog ({len(catalog)} checkpoints)"
            )
        return checkpoint
    window = (within_days or 0) * DAY_S
    recent = sorted(u for u in catalog if (now - uuid7_time(u)).total_seconds() <= window)
    if not recent:
        raise FelderaConfigError(f"no checkpoint in the location is from the last {within_days:g} days")
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


#: What a query's text holds besides its words: comments and quoted strings or identifiers (whose ``;`` and words are
#: not the statement's).
_NOT_WORDS = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"", re.DOTALL)
#: Words that make a ``WITH`` statement write or define something instead of answering a query.
_NOT_A_QUERY = re.compile(
    r"\b(INSERT|UPDATE|DELETE|MERGE|UPSERT|CREATE|DROP|ALTER|TRUNCATE|GRANT|REVOKE|COPY|SET|CALL)\b", re.IGNORECASE
)


def select_problem(sql: str) -> str | None:
    """Why ``sql`` is not one SELECT statement (comments and whitespace around it, ``WITH ... SELECT`` and one
    trailing ``;`` allowed), or None when it is one."""
    words = _NOT_WORDS.sub(lambda m: " " if m.group(0)[0] in "-/" else "''", sql).strip()
    body = words[:-1].rstrip() if words.endswith(";") else words
    if ";" in body:
        return "it holds more than one statement (only one trailing ';' is allowed)"
    leading = re.match(r"[\s(]*(\w*)", body)
    first = leading.group(1) if leading else ""
    if first.upper() == "SELECT":
        return None
    if first.upper() == "WITH":
        found = _NOT_A_QUERY.search(body)
        if found:
            return f"its WITH statement does {found.group(1).upper()}, not a SELECT"
        if re.search(r"\bSELECT\b", body, re.IGNORECASE):
            return None
        return "its WITH clause is followed by no SELECT"
    return f"it starts with {first or 'nothing but comments'}, not SELECT or WITH ... SELECT"


def parse_checks(checks: object) -> tuple[SqlCheck, ...]:
    """``sql_checks`` as given (a list of dicts) into SqlChecks, or ValueError naming the check, the bad value and
    what is accepted: one SELECT each, and either ``expect`` or ``min``/``max`` (with ``min <= max``)."""
    if checks is None:
        return ()
    if not isinstance(checks, Sequence) or isinstance(checks, str | bytes):
        raise FelderaConfigError(
            f"sql_checks={checks!r} is not valid: a list of {{'sql': ..., 'expect' or 'min'/'max'}}"
        )
    parsed = []
    for index, check in enumerate(checks):
        where = f"sql_checks[{index}]"
        if not isinstance(check, Mapping):
            raise FelderaConfigError(f"{where}={check!r} is not valid: a dict with 'sql' and 'expect', 'min' or 'max'")
        unknown = sorted(set(check) - {"sql", "expect", "min", "max", "name"})
        if unknown:
            raise FelderaConfigError(f"{where} has unknown keys {unknown}: use sql, expect, min, max, name")
        sql = check.get("sql")
        if not isinstance(sql, str) or not sql.strip():
            raise FelderaConfigError(f"{where}: 'sql' must be a SELECT statement, not {sql!r}")
        problem = select_problem(sql)
        if problem:
            raise FelderaConfigError(
                f"{where}: 'sql'={sql.strip()!r} is not valid: {problem}. A check is one SELECT statement (or WITH ... "
                "SELECT) that answers one row of one value"
            )
        bounds: dict[str, float] = {key: check[key] for key in ("min", "max") if check.get(key) is not None}
        if "expect" not in check and not bounds:
            raise FelderaConfigError(f"{where}: give 'expect' (the exact value) or 'min'/'max' (bounds)")
        if "expect" in check and bounds:
            given = ", ".join(f"'{k}'={v!r}" for k, v in bounds.items())
            raise FelderaConfigError(
                f"{where}: 'expect'={check['expect']!r} and {given} are both given: give 'expect' (the exact value) "
                "or 'min'/'max' (bounds), not both"
            )
        for key, value in bounds.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
                raise FelderaConfigError(f"{where}: '{key}'={value!r} is not a number")
        if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
            raise FelderaConfigError(
                f"{where}: 'min'={bounds['min']!r} is above 'max'={bounds['max']!r}: no value can pass; give min <= max"
            )
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


#: Why a drill failed, as its result's ``cause`` and its metric say it.
CAUSES = {
    "checks_failed": "a check failed",
    "restore_failed": "the checkpoint did not restore",
    "timeout": "the scratch pipeline did not reach Running within the timeout",
    "refused": "refused before it created anything",
    "error": "an error ended it",
}


def missing_files_cause(reason: str, uuid: str, location: str) -> str | None:
    """The drill's own words when Feldera could not find the files of checkpoint ``uuid`` that the catalog of
    ``location`` names (``reason`` is Feldera's deployment error); None for any other failure to start.

    The drill took the uuid from the catalog, so the uuid is right: the location is damaged."""
    if "not found in source" not in reason:
        return None
    return (
        f"the catalog of {location} names checkpoint {uuid}, but its files are missing there (Feldera: {reason}). "
        "The location is damaged: verify it (VerifyCheckpointsOperator) and sync or replicate again"
    )
