"""RemoteCheckpointTrigger: one asset event per new checkpoint in a pipeline's sync bucket, for an AssetWatcher."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_checkpoint_sync.exceptions import Failure, FelderaWatchError, classify
from airflow_checkpoint_sync.rules import params
from airflow_checkpoint_sync.rules.status import is_checkpoint_uuid, listed_uuids, newer_uuids, uuid7_time

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

log = logging.getLogger(__name__)

#: The asset state store key of a pipeline's watermark: the newest checkpoint uuid an event was fired for.
WATERMARK_KEY = "feldera_remote_checkpoint_watermark:{pipeline_name}"
#: Seconds between firing an event and storing the watermark past it. The triggerer hands events to the metadata
#: database on its next loop (about every second), over the same channel the state store uses: storing after
#: that means a triggerer killed in between repeats the event rather than losing it.
PERSIST_AFTER_S = 3.0


def checkpoint_event(pipeline_name: str, uuid: str) -> dict[str, Any]:
    """The event (and so the asset event's extra) for one new remote checkpoint: its uuid and the time inside it
    (Feldera lists remote checkpoints by uuid only: ``RemoteCheckpoint`` has no other field)."""
    made = uuid7_time(uuid).isoformat() if is_checkpoint_uuid(uuid) else None
    return {"pipeline_name": pipeline_name, "checkpoint_uuid": uuid, "checkpoint_time": made}


class RemoteCheckpointTrigger(BaseEventTrigger):
    """Watch a pipeline's synced checkpoints and fire one event per new one, whoever pushed it: a
    ``SyncCheckpointOperator``, Feldera's own ``push_interval``, or a person. Use it in an ``AssetWatcher``::

        RECOVERY_POINTS = Asset(
            "x-feldera://prod/recovery-points",
            watchers=[AssetWatcher(name="prod_recovery_points", trigger=RemoteCheckpointTrigger(pipeline_name="prod"))],
        )

    and schedule a DAG on the asset. Each event is ``{"pipeline_name", "checkpoint_uuid", "checkpoint_time"}`` (the
    time inside the UUIDv7); Airflow puts it in the asset event's extra as ``{"from_trigger": true, "payload":
    <the event>}``.

    It reads the bucket's listing (``GET /checkpoints/remote``, which needs the pipeline running) every
    ``poll_interval`` seconds. Its watermark, the newest uuid it fired for, lives in Airflow's asset state store
    (Airflow 3.3), so a restarted triggerer goes on from there: checkpoints pushed while it was down each fire once.
    With no watermark yet, the first listing is the starting point and fires nothing. A triggerer killed within a
    few seconds of an event fires that event again rather than lose it, and two triggerers can run one watcher at
    once during a handover: Airflow does not deduplicate watcher events, so consumers key on ``checkpoint_uuid``.
    A listing that fails for a while (Feldera down, the pipeline stopped) is logged and tried again. One that cannot
    work as set up (the pipeline does not exist, the key is rejected: what :func:`~airflow_checkpoint_sync.
    exceptions.classify` calls final) is logged as an error and, a ``poll_interval`` later, fails the trigger with
    :class:`~airflow_checkpoint_sync.exceptions.FelderaWatchError`, counted in Airflow's ``triggers.failed``; the
    triggerer starts a watcher's trigger again on its next loop, so the watch resumes by itself once the pipeline
    exists, failing at most once per ``poll_interval`` until then.
    The watermark is kept per asset: give each watcher's asset one trigger (Airflow's accessor refuses to guess
    between several assets).

    :param pipeline_name: the pipeline whose synced checkpoints are watched.
    :param feldera_conn_id: the ``feldera`` Airflow connection.
    :param poll_interval: seconds between listings.
    """

    def __init__(self, *, pipeline_name: str, feldera_conn_id: str = "feldera_default", poll_interval: float = 30.0):
        super().__init__()  # type: ignore[no-untyped-call]
        # Checked when the DAG file is parsed: a watcher with a bad argument would otherwise fail quietly, forever.
        self.pipeline_name = params.pipeline_name(pipeline_name)
        self.feldera_conn_id = params.conn_id(feldera_conn_id, "feldera_conn_id")
        self.poll_interval = params.positive_seconds(poll_interval, "poll_interval")

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {
            "pipeline_name": self.pipeline_name,
            "feldera_conn_id": self.feldera_conn_id,
            "poll_interval": self.poll_interval,
        }
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def _watermark(self) -> str | None:
        """The stored watermark (None outside a 3.3 triggerer, or before the first event)."""
        if self.asset_state_store is None:
            return None
        value = await self.asset_state_store.aget(WATERMARK_KEY.format(pipeline_name=self.pipeline_name))
        return value if isinstance(value, str) else None

    async def _store_watermark(self, uuid: str) -> None:
        if self.asset_state_store is not None:
            await self.asset_state_store.aset(WATERMARK_KEY.format(pipeline_name=self.pipeline_name), uuid)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_checkpoint_sync.hooks import feldera_api as api
        from airflow_checkpoint_sync.hooks.feldera import FelderaHook

        watermark = await self._watermark()
        started = watermark is not None
        log.info(
            "Watching the synced checkpoints of '%s' (every %gs) from %s",
            self.pipeline_name,
            self.poll_interval,
            watermark or "the next listing",
        )
        hook = FelderaHook(self.feldera_conn_id)
        last_error = ""
        while True:
            try:
                async with hook.async_session() as session:
                    while True:
                        listed = await session.send(api.remote_checkpoints(self.pipeline_name))
                        last_error = ""
                        entries = listed_uuids(listed)
                        if not started:
                            # The starting point: what is there already is not new.
                            existing = newer_uuids(entries, None)
                            watermark, started = (existing[-1] if existing else None), True
                            if watermark:
                                await self._store_watermark(watermark)
                            log.info("'%s' starts after checkpoint %s", self.pipeline_name, watermark)
                        new = newer_uuids(entries, watermark)
                        for uuid in new:
                            yield TriggerEvent(checkpoint_event(self.pipeline_name, uuid))
                        if not new:
                            await asyncio.sleep(self.poll_interval)
                            continue
                        watermark = new[-1]
                        # Stored once the triggerer has handed the events on (see PERSIST_AFTER_S).
                        await asyncio.sleep(PERSIST_AFTER_S)
                        await self._store_watermark(watermark)
                        await asyncio.sleep(max(0.0, self.poll_interval - PERSIST_AFTER_S))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a watch outlives any outage: log once per kind of failure, then look again
                if classify(exc) is Failure.FINAL:
                    log.error("Watching the synced checkpoints of '%s' cannot work: %s", self.pipeline_name, exc)
                    # The triggerer starts a failed watcher again at once: failing a poll later bounds that loop.
                    await asyncio.sleep(self.poll_interval)
                    raise FelderaWatchError(
                        f"watching the synced checkpoints of '{self.pipeline_name}' through "
                        f"'{self.feldera_conn_id}' cannot work: {exc}"
                    ) from exc
                if str(exc) != last_error:
                    log.warning("Listing the synced checkpoints of '%s' failed: %s", self.pipeline_name, exc)
                    last_error = str(exc)
                await asyncio.sleep(self.poll_interval)
