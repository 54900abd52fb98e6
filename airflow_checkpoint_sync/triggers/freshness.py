"""Waiting for a fresh synced checkpoint, for the triggerer; and the event rule the sensor's poke shares with it."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_checkpoint_sync.status import Freshness, freshness
from airflow_checkpoint_sync.triggers.polling import FelderaPollingTrigger

if TYPE_CHECKING:
    from airflow_checkpoint_sync.hooks.feldera import FelderaAsyncSession, FelderaHook

FRESHNESS_STATUSES = frozenset({"fresh", "stale", "none", "error"})


def freshness_event(
    *,
    pipeline_name: str,
    newest: str | None,
    error: Exception | None,
    max_age_seconds: float,
    end_time: float,
    now: float,
) -> dict[str, Any] | None:
    """The event that ends a wait for a fresh checkpoint, or None to look again.

    ``newest`` is the newest synced checkpoint (None when nothing is synced, or when the read failed with
    ``error``). A stale or missing checkpoint ends the wait only at ``end_time``: a sync may be on its way.
    """
    if error is not None:
        status = getattr(error, "status", None)
        return {
            "status": "error",
            "pipeline_name": pipeline_name,
            "message": f"could not read the newest synced checkpoint of '{pipeline_name}': {error}",
            "transient": status is None or status >= 500,
        }
    report = freshness(pipeline_name, newest, max_age_seconds, dt.datetime.fromtimestamp(now, dt.UTC))
    if report.state is Freshness.FRESH or now >= end_time:
        return {"status": str(report.state), **report.as_dict()}
    return None


def read_freshness_event(
    hook: FelderaHook, *, pipeline_name: str, max_age_seconds: float, end_time: float
) -> dict[str, Any] | None:
    """One worker-side look (the sensor's poke), decided by :func:`freshness_event`."""
    newest, error = None, None
    try:
        newest = hook.newest_synced_checkpoint(pipeline_name)
    except Exception as exc:  # decided below, like the trigger does
        error = exc
    return freshness_event(
        pipeline_name=pipeline_name,
        newest=newest,
        error=error,
        max_age_seconds=max_age_seconds,
        end_time=end_time,
        now=time.time(),
    )


def validate_freshness_event(event: Any) -> dict[str, Any]:
    """Accept only well-formed freshness events; anything else fails closed (lost payload, version skew)."""
    if not isinstance(event, Mapping) or event.get("status") not in FRESHNESS_STATUSES:
        raise ValueError(f"unexpected event from CheckpointFreshnessTrigger: {event!r}")
    if not event.get("pipeline_name") or not event.get("message"):
        raise ValueError(f"event from CheckpointFreshnessTrigger lacks the pipeline or message: {event!r}")
    return dict(event)


class CheckpointFreshnessTrigger(FelderaPollingTrigger):
    """Wait in the triggerer until a pipeline's newest synced checkpoint is younger than ``max_age_seconds``.

    It fires once with ``{"status": "fresh" | "stale" | "none" | "error", ...}``; ``stale`` and ``none`` only at
    the deadline.

    :param feldera_conn_id: the ``feldera`` Airflow connection.
    :param pipeline_name: the pipeline whose synced checkpoints are watched.
    :param max_age_seconds: the recovery-point objective: how old the newest synced checkpoint may be.
    :param end_time: the deadline, in seconds since the epoch (wall clock: it crosses processes).
    :param poll_interval: seconds between reads.
    """

    def __init__(
        self,
        *,
        feldera_conn_id: str,
        pipeline_name: str,
        max_age_seconds: float,
        end_time: float,
        poll_interval: float,
    ) -> None:
        super().__init__(
            feldera_conn_id=feldera_conn_id, pipeline_name=pipeline_name, end_time=end_time, poll_interval=poll_interval
        )
        self.max_age_seconds = float(max_age_seconds)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {**self._kwargs(), "max_age_seconds": self.max_age_seconds},
        )

    async def read(self, session: FelderaAsyncSession) -> Any:
        return await session.newest_synced_checkpoint(self.pipeline_name)

    def decide(self, result: Any, error: Exception | None, now: float) -> dict[str, Any] | None:
        return freshness_event(
            pipeline_name=self.pipeline_name,
            newest=result,
            error=error,
            max_age_seconds=self.max_age_seconds,
            end_time=self.end_time,
            now=now,
        )

    def failed_to_start(self, message: str) -> dict[str, Any]:
        return {"status": "error", "pipeline_name": self.pipeline_name, "message": message, "transient": False}
