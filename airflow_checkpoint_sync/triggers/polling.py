"""The one polling loop every provider trigger runs: read, decide, sleep, until an event ends it."""

from __future__ import annotations

import asyncio
import random
import time
from abc import abstractmethod
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_checkpoint_sync.hooks.feldera import FelderaAsyncSession


class FelderaPollingTrigger(BaseTrigger):
    """Poll Feldera over one async session until :meth:`decide` returns an event or the deadline passes.

    :param feldera_conn_id: the ``feldera`` Airflow connection.
    :param pipeline_name: the pipeline being watched.
    :param end_time: the deadline, in seconds since the epoch (wall clock: it crosses processes).
    :param poll_interval: seconds between reads.
    """

    def __init__(self, *, feldera_conn_id: str, pipeline_name: str, end_time: float, poll_interval: float) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.feldera_conn_id = feldera_conn_id
        self.pipeline_name = pipeline_name
        self.end_time = float(end_time)
        self.poll_interval = float(poll_interval)

    def _kwargs(self) -> dict[str, Any]:
        return {
            "feldera_conn_id": self.feldera_conn_id,
            "pipeline_name": self.pipeline_name,
            "end_time": self.end_time,
            "poll_interval": self.poll_interval,
        }

    @abstractmethod
    async def read(self, session: FelderaAsyncSession) -> Any:
        """One look at Feldera."""

    @abstractmethod
    def decide(self, result: Any, error: Exception | None, now: float) -> dict[str, Any] | None:
        """The event for this look (``result`` is None when the read failed with ``error``), or None to go on."""

    @abstractmethod
    def failed_to_start(self, message: str) -> dict[str, Any]:
        """The error event when the wait cannot even begin (a bad connection, say)."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # Imported here: the triggerer loads triggers by class path, and DAG parsing never needs the hook.
        from airflow_checkpoint_sync.hooks.feldera import FelderaHook

        try:
            async with FelderaHook(self.feldera_conn_id).async_session() as session:
                # The task read the state just before deferring, so the first poll can wait a random part of the
                # interval: a triggerer holding many waits then spreads their requests instead of firing them in
                # bursts that stall its event loop.
                await asyncio.sleep(random.uniform(0, max(0.0, min(self.poll_interval, self.end_time - time.time()))))
                while True:
                    result, error = None, None
                    try:
                        result = await self.read(session)
                    except Exception as exc:  # every failure becomes an event: the task decides, not the triggerer
                        error = exc
                    event = self.decide(result, error, time.time())
                    if event is not None:
                        yield TriggerEvent(event)
                        return
                    await asyncio.sleep(max(0.0, min(self.poll_interval, self.end_time - time.time())))
        except Exception as exc:
            yield TriggerEvent(self.failed_to_start(f"could not wait on pipeline '{self.pipeline_name}': {exc}"))
