"""The provider's metrics, sent through Airflow's own metrics (StatsD, Datadog or OpenTelemetry, as ``[metrics]``
configures them; nothing is sent when metrics are off).

Each metric is sent twice, as Airflow sends its own: under its name with a ``pipeline`` tag (for OpenTelemetry and
tag-aware StatsD), and under ``<name>.<pipeline>`` with no tag (for plain StatsD, which drops tags). The names are
in the docs' metrics table; a test checks each against a real StatsD listener.

A metric that cannot be sent is logged and dropped: a monitoring hiccup never fails a recovery task.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Literal

from airflow_checkpoint_sync.rules.status import freshness

log = logging.getLogger(__name__)

#: Gauge, seconds: how old the pipeline's newest synced checkpoint is (freshness sensor) or was when synced (sync).
CHECKPOINT_AGE = "feldera.checkpoint.age"
#: Timer: from the checkpoint's creation (its UUIDv7 time) to Feldera reporting it synced.
SYNC_DURATION = "feldera.sync.duration"
#: Counter: syncs that ended synced.
SYNC_SUCCEEDED = "feldera.sync.succeeded"
#: Counters: restore drills whose checks all passed, and those that failed for any reason.
DRILL_PASSED = "feldera.drill.passed"
DRILL_FAILED = "feldera.drill.failed"
#: Counters: failed drills by cause (the result's ``cause``), each beside DRILL_FAILED: a failed check, a checkpoint
#: that did not restore, a scratch pipeline that did not run in time, a drill refused before it created anything, and
#: any other error (Feldera or the store unreachable, a teardown that failed).
DRILL_CHECKS_FAILED = "feldera.drill.checks_failed"
DRILL_RESTORE_FAILED = "feldera.drill.restore_failed"
DRILL_TIMEOUT = "feldera.drill.timeout"
DRILL_REFUSED = "feldera.drill.refused"
DRILL_ERROR = "feldera.drill.error"
DRILL_FAILED_BY_CAUSE = {
    "checks_failed": DRILL_CHECKS_FAILED,
    "restore_failed": DRILL_RESTORE_FAILED,
    "timeout": DRILL_TIMEOUT,
    "refused": DRILL_REFUSED,
    "error": DRILL_ERROR,
}
#: Timer: a drill's recovery time, from its start request to the scratch pipeline running.
DRILL_RECOVERY = "feldera.drill.recovery"
#: Counters: bytes and objects a replication copied.
REPLICATION_BYTES = "feldera.replication.bytes"
REPLICATION_OBJECTS = "feldera.replication.objects"
#: Gauge, seconds: how old the newest checkpoint in the replica is once replication ends.
REPLICATION_LAG = "feldera.replication.lag"
#: Timer: a restore, from its start request to the pipeline in its initial status (Running, Paused or Standby).
RESTORE_DURATION = "feldera.restore.duration"
#: Timer: a failover, from the activate request to the standby running (or paused).
ACTIVATION_DURATION = "feldera.activation.duration"

Kind = Literal["gauge", "incr", "timing"]


def send(kind: Kind, name: str, value: float, pipeline: str, tag: str = "pipeline") -> None:
    """Send ``value`` (seconds for timers) as metric ``name`` of ``pipeline`` (or of another subject, named by
    ``tag``), once tagged and once under ``<name>.<subject>``."""
    try:
        from airflow.sdk.observability import stats

        per_pipeline = f"{name}.{stats.normalize_name_for_stats(pipeline, log_warning=False)}"
        for stat, tags in ((name, {tag: pipeline}), (per_pipeline, None)):
            if kind == "gauge":
                stats.gauge(stat, value, tags=tags)
            elif kind == "incr":
                stats.incr(stat, int(value), tags=tags)
            else:
                stats.timing(stat, dt.timedelta(seconds=value), tags=tags)
    except Exception as exc:
        log.warning("could not send metric %s of pipeline '%s': %s", name, pipeline, exc)


def checkpoint_age(pipeline: str, uuid: str) -> float | None:
    """Seconds since checkpoint ``uuid`` was made, by the freshness rule's own reading of its time; None when the
    uuid carries no trustworthy time (not a UUIDv7, dated in the future, not a uuid at all)."""
    try:
        return freshness(pipeline, uuid, float("inf"), dt.datetime.now(dt.UTC)).age_seconds
    except ValueError:
        return None


def sync_ended(pipeline: str, uuid: str) -> None:
    """A sync of ``uuid`` ended synced: its age now is both the sync's duration and the pipeline's recovery point."""
    send("incr", SYNC_SUCCEEDED, 1, pipeline)
    age = checkpoint_age(pipeline, uuid)
    if age is not None:
        send("timing", SYNC_DURATION, age, pipeline)
        send("gauge", CHECKPOINT_AGE, age, pipeline)


def freshness_measured(measurement: dict[str, Any]) -> None:
    """A freshness sensor's measurement; no synced checkpoint at all sends no age."""
    if measurement.get("age_seconds") is not None:
        send("gauge", CHECKPOINT_AGE, float(measurement["age_seconds"]), str(measurement["pipeline_name"]))


def drill_ended(result: dict[str, Any]) -> None:
    """A restore drill's result, passed or failed: a failed one counts in DRILL_FAILED and in the counter of its
    ``cause`` (an unknown cause counts as ``error``)."""
    pipeline = str(result["pipeline_name"])
    send("incr", DRILL_PASSED if result.get("passed") else DRILL_FAILED, 1, pipeline)
    if not result.get("passed"):
        cause = str(result.get("cause") or "error")
        send("incr", DRILL_FAILED_BY_CAUSE.get(cause, DRILL_ERROR), 1, pipeline)
    if result.get("recovery_seconds") is not None:
        send("timing", DRILL_RECOVERY, float(result["recovery_seconds"]), pipeline)


def replication_ended(source: str, report: dict[str, Any]) -> None:
    """A replication's report, for its ``source`` location (``bucket/prefix``; tag ``source``)."""
    send("incr", REPLICATION_BYTES, int(report["bytes_copied"]), source, tag="source")
    send("incr", REPLICATION_OBJECTS, int(report["copied"]), source, tag="source")
    age = checkpoint_age(source, str(report.get("newest_checkpoint_uuid") or ""))  # an empty replica has no lag
    if age is not None:
        send("gauge", REPLICATION_LAG, age, source, tag="source")


def recovery_ended(name: str, pipeline: str, requested_at: object) -> None:
    """A restore or an activation (metric ``name``) reached its status; ``requested_at`` is when it was asked for,
    ISO 8601 (it crosses a deferral in the task's result). Anything else sends nothing."""
    if not isinstance(requested_at, str):
        return
    try:
        start = dt.datetime.fromisoformat(requested_at)
    except ValueError:
        return
    if start.tzinfo is None:
        return
    send("timing", name, max(0.0, (dt.datetime.now(dt.UTC) - start).total_seconds()), pipeline)
