"""Pure readings of Feldera's status payloads: sync and checkpoint states, pipeline groups, UUIDv7 time,
freshness. No I/O, no Airflow. The wait rules built on them are in :mod:`airflow_checkpoint_sync.rules.waits`.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid as uuidlib
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

# The records below are NamedTuples rather than dataclasses because this module loads whenever a DAG file using an
# operator is parsed: defining a frozen dataclass costs about ten times as much (0.7 ms against 0.07 ms here).


class RequestState(enum.StrEnum):
    """Where one request Feldera works on in the background stands: a checkpoint (by sequence number) or the sync
    of one checkpoint uuid."""

    SUCCESS = "success"
    FAILURE = "failure"
    IN_PROGRESS = "in_progress"
    UNKNOWN = "unknown"


class SyncResult(NamedTuple):
    """The state of a checkpoint sync, with Feldera's error text on failure and how success was established."""

    state: RequestState
    error: str | None = None
    evidence: str | None = None


def sync_result(checkpoint_uuid: str, payload: Mapping[str, Any], stale_failure: str | None = None) -> SyncResult:
    """Read ``GET /checkpoint/sync_status`` for one uuid.

    Servers after Feldera 0.337 list in-flight manual syncs in ``running``; older ones do not, and "in progress" is
    then inferred from UUIDv7 order, as the official client does (a uuid newer than the last success has not
    finished yet). ``periodic`` counts as success because Feldera also fills it from successful manual syncs.

    A 0.337 server keeps an older failure of the same uuid visible while that checkpoint is pushed again:
    ``stale_failure`` is the error it showed before this push was asked for, and that failure is not this push's
    outcome.
    """
    running = payload.get("running")
    if running is not None and checkpoint_uuid in running:
        return SyncResult(RequestState.IN_PROGRESS)
    success, periodic = payload.get("success"), payload.get("periodic")
    if checkpoint_uuid in (success, periodic):
        return SyncResult(RequestState.SUCCESS, evidence="sync_status")
    failure = payload.get("failure") or {}
    if failure.get("uuid") == checkpoint_uuid:
        error = str(failure.get("error") or "no error text from Feldera")
        if running is None and stale_failure is not None and failure.get("error") == stale_failure:
            return SyncResult(RequestState.IN_PROGRESS)
        return SyncResult(RequestState.FAILURE, error=error)
    if running is None and (success is None or _uuid_int(checkpoint_uuid) > _uuid_int(success)):
        return SyncResult(RequestState.IN_PROGRESS)
    return SyncResult(RequestState.UNKNOWN)


def resolve_unknown(checkpoint_uuid: str, remote_uuids: Iterable[str]) -> SyncResult:
    """Settle an UNKNOWN sync state from ``GET /checkpoints/remote``: a uuid listed in the bucket is synced.

    Unknown happens when another sync displaced this uuid from ``success`` (or the pipeline is too old to say).
    A uuid that is not listed stays UNKNOWN; the caller keeps polling until its deadline, never forever.
    """
    if checkpoint_uuid in set(remote_uuids):
        return SyncResult(RequestState.SUCCESS, evidence="listed in the bucket's catalog")
    return SyncResult(RequestState.UNKNOWN)


class CheckpointResult(NamedTuple):
    """The state of one checkpoint request, with Feldera's error text on failure."""

    state: RequestState
    error: str | None = None


def checkpoint_result(sequence_number: int, payload: Mapping[str, Any]) -> CheckpointResult:
    """Read ``GET /checkpoint_status`` for one sequence number.

    ``success`` is the highest successful number; ``failure`` is the latest failure and is not cleared by a later
    success, so a number below ``success`` that is not the failure is UNKNOWN (superseded, it may or may not have
    completed on its own).
    """
    success = payload.get("success")
    if success == sequence_number:
        return CheckpointResult(RequestState.SUCCESS)
    failure = payload.get("failure") or {}
    if failure.get("sequence_number") == sequence_number:
        return CheckpointResult(RequestState.FAILURE, str(failure.get("error") or "no error text from Feldera"))
    if success is None or sequence_number > success:
        return CheckpointResult(RequestState.IN_PROGRESS)
    return CheckpointResult(RequestState.UNKNOWN)


class PipelineGroup(enum.StrEnum):
    """Feldera's many deployment statuses, grouped by what an operator may do next."""

    STOPPED = "stopped"
    FAILED = "failed"
    TRANSITIONAL = "transitional"
    STANDBY = "standby"
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    PAUSED = "paused"


#: The deployment status a pipeline started (or activated) with each ``initial`` ends up in.
INITIAL_STATUS = {"running": "Running", "paused": "Paused", "standby": "Standby"}
#: The statuses of a pipeline that holds its input's state and takes input or may resume it: Running or Paused.
ACTIVE_STATUSES = ("Running", "Paused")

_TRANSITIONAL = {
    "Provisioning",
    "Unavailable",
    "Coordination",
    "Initializing",
    "Bootstrapping",
    "ConcurrentBootstrapping",
    "Synchronizing",
    "Replaying",
    "Suspended",
    "Stopping",
}


def pipeline_group(pipeline: Mapping[str, Any]) -> PipelineGroup:
    """The group of a pipeline payload (``GET /v0/pipelines/{name}``).

    A Stopped pipeline with a ``deployment_error`` is FAILED; an unrecognised status (a newer Feldera) counts as
    TRANSITIONAL, so waits keep polling it until their deadline instead of misreading it.
    """
    status = str(pipeline.get("deployment_status"))
    if status == "Stopped":
        return PipelineGroup.FAILED if pipeline.get("deployment_error") else PipelineGroup.STOPPED
    direct = {
        "Standby": PipelineGroup.STANDBY,
        "AwaitingApproval": PipelineGroup.AWAITING_APPROVAL,
        "Running": PipelineGroup.RUNNING,
        "Paused": PipelineGroup.PAUSED,
    }
    return direct.get(status, PipelineGroup.TRANSITIONAL)


def deployment_error_message(pipeline: Mapping[str, Any]) -> str | None:
    """Feldera's own words for why the pipeline stopped, if it did."""
    error = pipeline.get("deployment_error")
    if not error:
        return None
    if isinstance(error, Mapping):
        return str(error.get("message") or error.get("error_code") or error)
    return str(error)


#: Program statuses after which a compilation will not succeed without a change to the program.
COMPILE_FAILURES = frozenset({"SqlError", "RustError", "SystemError"})


def program_error_message(pipeline: Mapping[str, Any], limit: int = 3) -> str | None:
    """The compiler's own words from ``program_error`` (the first ``limit`` SQL errors, the Rust compiler's last
    lines, or the system error); None when the payload carries none."""
    error = pipeline.get("program_error")
    if not isinstance(error, Mapping):
        return None
    if error.get("system_error"):
        return str(error["system_error"])
    sql = error.get("sql_compilation")
    if isinstance(sql, Mapping):
        found = [m for m in sql.get("messages") or () if isinstance(m, Mapping) and not m.get("warning")]
        if found:
            said = [
                f"{m.get('error_type') or 'error'} at line {m.get('start_line_number', '?')}: {m.get('message')}"
                for m in found[:limit]
            ]
            more = f" (and {len(found) - limit} more)" if len(found) > limit else ""
            return "; ".join(said) + more
    rust = error.get("rust_compilation")
    if isinstance(rust, Mapping) and rust.get("exit_code") not in (None, 0):
        tail = str(rust.get("stderr") or "").strip().splitlines()[-limit:]
        return " / ".join(tail) or f"the Rust compiler exited with {rust.get('exit_code')}"
    return None


def uuid7_time(value: str) -> dt.datetime:
    """The creation time inside a UUIDv7 (Feldera's checkpoint uuids), as an aware UTC datetime."""
    parsed = uuidlib.UUID(value)
    if parsed.version != 7:
        raise ValueError(f"{value} is a version {parsed.version} UUID, not a UUIDv7")
    return dt.datetime.fromtimestamp((parsed.int >> 80) / 1000.0, tz=dt.UTC)


def is_checkpoint_uuid(value: object) -> bool:
    """Whether ``value`` can be a Feldera checkpoint uuid: a UUIDv7 in canonical lower-case text form."""
    return is_uuid(value) and uuidlib.UUID(str(value)).version == 7


def is_uuid(value: object) -> bool:
    """Whether ``value`` is a UUID in canonical lower-case text form, the only form Feldera reports."""
    try:
        return isinstance(value, str) and str(uuidlib.UUID(value)) == value
    except ValueError:
        return False


def _uuid_int(value: str) -> int:
    return uuidlib.UUID(value).int


def newest_uuid(candidates: Iterable[object]) -> str | None:
    """The newest of some checkpoint uuids by their UUIDv7 time; anything that is not a uuid is ignored."""
    uuids = [c for c in candidates if isinstance(c, str) and is_uuid(c)]
    return max(uuids, key=_uuid_int) if uuids else None


def listed_uuids(entries: object) -> list[str]:
    """The checkpoint uuids of a listing (``GET /checkpoints`` or ``/checkpoints/remote``: a list of objects with a
    ``uuid``), in its order. What is not such an object with a uuid is skipped: a newer Feldera may list more, and
    one odd entry must not hide the others."""
    if not isinstance(entries, list):
        return []
    found = (entry.get("uuid") for entry in entries if isinstance(entry, Mapping))
    return [uuid for uuid in found if isinstance(uuid, str) and is_uuid(uuid)]


def newest_listed(entries: object) -> str | None:
    """The newest checkpoint of a listing by its UUIDv7 time (never by list order): the one "newest checkpoint" of a
    pipeline's local or remote checkpoints."""
    return newest_uuid(listed_uuids(entries))


def newer_uuids(candidates: Iterable[object], than: str | None) -> list[str]:
    """The checkpoint uuids among ``candidates`` newer than ``than`` by their UUIDv7 time, oldest first, each once;
    with ``than`` None, all of them. Anything that is not a uuid is ignored."""
    uuids = {c for c in candidates if isinstance(c, str) and is_uuid(c)}
    floor = _uuid_int(than) if than is not None and is_uuid(than) else -1
    return sorted((u for u in uuids if _uuid_int(u) > floor), key=_uuid_int)


class Freshness(enum.StrEnum):
    """How recent a pipeline's newest synced checkpoint is, against a recovery-point objective."""

    FRESH = "fresh"
    STALE = "stale"
    NONE = "none"  # nothing synced at all


#: How far ahead of this worker's clock a checkpoint's own time may be before its age is not believed.
CLOCK_SKEW_TOLERANCE_S = 60.0


class FreshnessReport(NamedTuple):
    """The newest synced checkpoint, its age and the verdict; ``as_dict`` is what XCom and the events carry."""

    pipeline_name: str
    checkpoint_uuid: str | None
    age_seconds: float | None
    max_age_seconds: float
    state: Freshness
    #: Why the age cannot be trusted (a uuid that carries no time, a clock far apart), when it cannot.
    problem: str | None = None

    @property
    def message(self) -> str:
        if self.problem:
            return (
                f"newest synced checkpoint of '{self.pipeline_name}' is {self.checkpoint_uuid}, but {self.problem}: "
                f"counted as older than max_age {self.max_age_seconds:g}s"
            )
        if self.state is Freshness.NONE:
            return f"pipeline '{self.pipeline_name}' has no synced checkpoint (max_age {self.max_age_seconds:g}s)"
        verdict = "within" if self.state is Freshness.FRESH else "older than"
        return (
            f"newest synced checkpoint of '{self.pipeline_name}' is {self.checkpoint_uuid}, {self.age_seconds:.0f}s "
            f"old: {verdict} max_age {self.max_age_seconds:g}s"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "pipeline_name": self.pipeline_name,
            "checkpoint_uuid": self.checkpoint_uuid,
            "age_seconds": self.age_seconds,
            "max_age_seconds": self.max_age_seconds,
            "state": str(self.state),
            "problem": self.problem,
            "message": self.message,
        }


def freshness(pipeline_name: str, newest: str | None, max_age_seconds: float, now: dt.datetime) -> FreshnessReport:
    """Judge ``newest`` (a UUIDv7) against ``max_age_seconds`` at ``now``; the age comes from the uuid's own time."""
    if newest is None:
        return FreshnessReport(pipeline_name, None, None, max_age_seconds, Freshness.NONE)
    version = uuidlib.UUID(newest).version
    if version != 7:
        # Never "fresh" on a time that is not there.
        problem = f"it is a version {version} UUID, not a UUIDv7, so it carries no time"
        return FreshnessReport(pipeline_name, newest, None, max_age_seconds, Freshness.STALE, problem)
    made = uuid7_time(newest)
    ahead = (made - now).total_seconds()
    if ahead > CLOCK_SKEW_TOLERANCE_S:
        problem = (
            f"it is dated {ahead:.0f}s in the future: the clocks of Feldera and this worker disagree, so its age is "
            "unknown"
        )
        return FreshnessReport(pipeline_name, newest, None, max_age_seconds, Freshness.STALE, problem)
    # A Feldera clock slightly ahead of the worker's gives a small negative age; it is as fresh as it gets.
    age = max(0.0, (now - made).total_seconds())
    state = Freshness.FRESH if age <= max_age_seconds else Freshness.STALE
    return FreshnessReport(pipeline_name, newest, round(age, 3), max_age_seconds, state)
