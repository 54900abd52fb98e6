"""The one polling loop every provider trigger runs: read, decide, sleep, until an event ends it."""

from __future__ import annotations

import asyncio
import inspect
import random
import time
from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_checkpoint_sync.rules.waits import look, read_failed
from airflow_checkpoint_sync.triggers.kill_cleanup import check_cleanup

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_checkpoint_sync.hooks.feldera import FelderaHook
    from airflow_checkpoint_sync.hooks.feldera_api import Flow

_BASE_FIELDS = ("feldera_conn_id", "pipeline_name", "end_time", "poll_interval", "echo", "on_kill_cleanup")
#: The shares of ``[triggerer] on_kill_timeout`` that :meth:`FelderaPollingTrigger.on_kill` gives its waits, and
#: itself in all (a request under way at the first may run on a little): it ends, saying how far it got, before the
#: triggerer gives up on it.
KILL_WAIT_SHARE, KILL_BOUND_SHARE = 0.8, 0.9
#: Cleanups under way, held so that one nobody awaits any more is not collected before it ends.
_UNDOING: set[asyncio.Task[None]] = set()


class FelderaPollingTrigger(BaseTrigger):
    """Poll Feldera over one async session until :meth:`decide` returns an event or the deadline passes.

    A subclass names its own constructor arguments in ``fields``, says what one look reads in :meth:`reads` (a
    request flow, so the worker's sync hook and the triggerer's async session run the very same reads) and decides
    with a rule from :mod:`airflow_checkpoint_sync.rules.waits`. :meth:`look` is the worker-side twin of one
    iteration of :meth:`run`, for pokes and worker waits.

    :param feldera_conn_id: the ``feldera`` Airflow connection.
    :param pipeline_name: the pipeline being watched.
    :param end_time: the deadline, in seconds since the epoch (wall clock: it crosses processes).
    :param poll_interval: seconds between reads.
    :param echo: what the deferring task needs when it resumes; it comes back unchanged in the event, as
        ``event["echo"]``. State crosses a deferral only this way: it holds for mapped tasks, retries, a real
        triggerer and ``dag.test()`` alike. Plain JSON values only.
    :param on_kill_cleanup: what to undo if a user kills the deferred task, run by :meth:`on_kill`: a spec from
        :mod:`airflow_checkpoint_sync.triggers.kill_cleanup` (plain JSON values, checked here), or None to undo
        nothing. Unrelated to Airflow's ``cleanup()``, which runs on every exit of a trigger.
    """

    #: The subclass's own constructor arguments, stored as attributes of the same names and serialized as they are.
    fields: ClassVar[tuple[str, ...]] = ()
    #: The ``status`` values the events of this trigger can carry.
    event_statuses: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A field serialize() would send that __init__ cannot take back breaks in the triggerer, after the task
        # has deferred: refuse such a class when it is defined instead.
        accepted = set(inspect.signature(cls.__init__).parameters)
        missing = [name for name in (*_BASE_FIELDS, *cls.fields) if name not in accepted]
        if missing:
            raise TypeError(f"{cls.__name__}.__init__ does not accept serialized fields {missing}")

    def __init__(
        self,
        *,
        feldera_conn_id: str,
        pipeline_name: str,
        end_time: float,
        poll_interval: float,
        echo: dict[str, Any] | None = None,
        on_kill_cleanup: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.feldera_conn_id = feldera_conn_id
        self.pipeline_name = pipeline_name
        self.end_time = float(end_time)
        self.poll_interval = float(poll_interval)
        self.echo = dict(echo or {})
        self.on_kill_cleanup = check_cleanup(on_kill_cleanup)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {name: getattr(self, name) for name in (*_BASE_FIELDS, *self.fields)}
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    @abstractmethod
    def reads(self) -> Flow[Any]:
        """The requests of one look, as a flow; its result goes to :meth:`decide`."""

    @abstractmethod
    def decide(self, result: Any, error: BaseException | None, now: float) -> dict[str, Any] | None:
        """The event for this look (``result`` is None when the read failed with ``error``), or None to go on."""

    def look(self, hook: FelderaHook) -> dict[str, Any] | None:
        """One look from a worker (a poke, or a wait before deferring), decided as :meth:`run` decides."""
        return look(lambda: hook.run(self.reads()), self._event)

    def _event(self, result: Any, error: BaseException | None, now: float) -> dict[str, Any] | None:
        event = self.decide(result, error, now)
        return None if event is None else {**event, "echo": self.echo}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # Imported here: the triggerer loads triggers by class path, and DAG parsing never needs the hook.
        from airflow_checkpoint_sync.hooks.feldera import FelderaHook

        hook = FelderaHook(self.feldera_conn_id)
        hook.deadline = self.end_time  # no read outlives the wait's deadline by more than a second
        try:
            async with hook.async_session() as session:
                # The task looked just before deferring, so the first poll can wait a random part of the interval:
                # a triggerer holding many waits then spreads their requests instead of firing them in bursts.
                await asyncio.sleep(random.uniform(0, max(0.0, min(self.poll_interval, self.end_time - time.time()))))
                while True:
                    result, error = None, None
                    try:
                        result = await session.run(self.reads())
                    except Exception as exc:  # every failure becomes an event: the task decides, not the triggerer
                        error = exc
                    event = self._event(result, error, time.time())
                    if event is not None:
                        yield TriggerEvent(event)
                        return
                    await asyncio.sleep(max(0.0, min(self.poll_interval, self.end_time - time.time())))
        except Exception as exc:
            # No session at all (a bad connection, say): the same rule as a failed read.
            failed = read_failed(self.pipeline_name, f"Feldera through connection '{self.feldera_conn_id}'", exc)
            yield TriggerEvent({**failed, "echo": self.echo})

    async def on_kill(self) -> None:
        """Undo :attr:`on_kill_cleanup`, if any: Airflow 3.3 calls this when a user kills the deferred task (marks
        it failed or succeeded, or clears it), never on a trigger timeout, a triggerer restart or a fired event.

        It runs over the same shared connection pool as the waits and ends within ``KILL_BOUND_SHARE`` of
        ``[triggerer] on_kill_timeout``. Whatever stops it is logged and swallowed: the user has decided the task's
        state already, and what it leaves stays until the task instance runs again.
        """
        if not self.on_kill_cleanup:
            return
        # A task of its own, awaited without passing a cancellation on: Airflow 3.3.2's triggerer cancels the
        # trigger's task again on each of its loops (about every second) until on_kill returns, which would cut
        # short every cleanup that takes longer. The cleanup ends by its own bound instead.
        undo = asyncio.get_running_loop().create_task(self._undo(self.on_kill_cleanup))
        _UNDOING.add(undo)
        undo.add_done_callback(_UNDOING.discard)
        await asyncio.wait({undo})

    async def _undo(self, spec: dict[str, Any]) -> None:
        """Run ``spec`` over a session of the shared pool, within the bound, and log what came of it."""
        from airflow.sdk import conf

        from airflow_checkpoint_sync.hooks.feldera import FelderaHook
        from airflow_checkpoint_sync.triggers.kill_cleanup import LeftAlone, run_cleanup

        what = f"{spec['action']} of '{spec.get('pipeline_name')}'"
        limit = conf.getint("triggerer", "on_kill_timeout", fallback=30)
        end_time = time.time() + KILL_WAIT_SHARE * limit
        hook = FelderaHook(self.feldera_conn_id)
        hook.deadline = end_time  # each request is cut short too, not only the waits
        try:
            async with asyncio.timeout(KILL_BOUND_SHARE * limit), hook.async_session() as session:
                said = await run_cleanup(session, spec, end_time)
        except LeftAlone as exc:
            self.log.warning("Task killed: %s", exc)
        except TimeoutError:
            self.log.warning(
                "Task killed: %s not done within %.1fs; what is left stays until the task instance runs again",
                what,
                KILL_BOUND_SHARE * limit,
            )
        except Exception as exc:  # never raised: the triggerer would only log it, without saying what was undone
            self.log.warning("Task killed: %s failed (%s: %s)", what, type(exc).__name__, exc)
        else:
            self.log.info("Task killed: %s", said)
