"""The sandbox's pipeline manager: the registry of pipelines, the clock thread and the background jobs."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from . import errors
from .clock import SandboxClock
from .errors import FelderaError
from .pipeline import SandboxPipeline
from .runtime import Runtime
from .settings import DEFAULT_PROFILE, PROFILES, SandboxSettings, Timings, VersionProfile

if TYPE_CHECKING:
    from collections.abc import Callable

# Settings lived here before they had a module of their own; importing them from here still works.
__all__ = [
    "DEFAULT_PROFILE",
    "PROFILES",
    "RequestRecord",
    "SandboxEngine",
    "SandboxSettings",
    "Timings",
    "VersionProfile",
]

T = TypeVar("T")
NAME_PATTERN = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_]*)?[A-Za-z0-9]$")


@dataclass
class RequestRecord:
    """One request as the sandbox saw it (the log tests read to prove nothing was mutated)."""

    method: str
    path: str
    query: str
    status: int
    fault: str | None = None
    content_type: str | None = None
    body: str | None = None  # kept only when the engine records bodies
    client: str | None = None  # "host:port" of the TCP connection the request came on

    @property
    def mutating(self) -> bool:
        return self.method not in ("GET", "HEAD", "OPTIONS")


@dataclass
class SandboxEngine:
    """All sandbox state behind one lock, advanced by a clock thread."""

    settings: SandboxSettings = field(default_factory=SandboxSettings)
    timings: Timings = field(default_factory=Timings)
    record_bodies: bool = False

    def __post_init__(self) -> None:
        self.clock = SandboxClock()
        self.lock = threading.RLock()
        self.pipelines: dict[str, SandboxPipeline] = {}
        self.requests: list[RequestRecord] = []
        # Each Feldera pipeline pushes and pulls in its own process: a pool shared by a fleet of sandbox pipelines
        # must not make one pipeline's push wait for another's (a push holds its worker for sync_delay_s).
        self._executor = ThreadPoolExecutor(max_workers=256, thread_name_prefix="sandbox-job")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runtime = Runtime(
            settings=self.settings,
            timings=self.timings,
            clock=self.clock,
            submit=self.submit,
            locked_read=self.locked_read,
            is_stopping=self._stop.is_set,
        )

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sandbox-clock", daemon=True)
            self._thread.start()

    def shutdown(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.lock:
                now = time.monotonic()
                for pipeline in list(self.pipelines.values()):
                    pipeline.tick(now)
            self._stop.wait(self.timings.tick_s)

    # -- jobs --------------------------------------------------------------------------------------------------
    def submit(self, job: Callable[[], T], done: Callable[[T | None, BaseException | None], None]) -> None:
        """Run ``job`` off the lock; then call ``done(result, exception)`` under the lock."""

        def finished(future: Future[T]) -> None:
            if future.cancelled():  # the sandbox is shutting down
                return
            exc = future.exception()
            with self.lock:
                done(None if exc else future.result(), exc)

        self._executor.submit(job).add_done_callback(finished)

    @property
    def stopping(self) -> bool:
        """True once :meth:`shutdown` began: long-running jobs give up so the process can exit."""
        return self._stop.is_set()

    def locked_read(self, read: Callable[[], T]) -> T:
        with self.lock:
            return read()

    # -- registry ----------------------------------------------------------------------------------------------
    def get(self, name: str) -> SandboxPipeline:
        pipeline = self.pipelines.get(name)
        if pipeline is None:
            raise errors.unknown_pipeline(name)
        return pipeline

    def create(self, body: dict[str, Any]) -> SandboxPipeline:
        name = _valid_name(body)
        if name in self.pipelines:
            raise FelderaError(409, "DuplicateName", "An entity with this name already exists")
        pipeline = SandboxPipeline(self.runtime, body)
        self.pipelines[name] = pipeline
        return pipeline

    def put(self, name: str, body: dict[str, Any]) -> tuple[SandboxPipeline, bool]:
        body = {**body, "name": body.get("name") or name}
        new_name = _valid_name(body)
        existing = self.pipelines.get(name)
        if existing is None:
            if new_name != name:
                raise FelderaError(400, "NameMismatch", f"The body names '{new_name}' but the path names '{name}'")
            return self.create(body), True
        if new_name != name and new_name in self.pipelines:
            raise FelderaError(409, "DuplicateName", "An entity with this name already exists")
        existing.replace(body)
        self._rename(name, existing)
        return existing, False

    def patch(self, name: str, body: dict[str, Any]) -> SandboxPipeline:
        pipeline = self.get(name)
        if body.get("name") is not None:
            _valid_name(body)
            if body["name"] != name and body["name"] in self.pipelines:
                raise FelderaError(409, "DuplicateName", "An entity with this name already exists")
        pipeline.patch(body)
        self._rename(name, pipeline)
        return pipeline

    def delete(self, name: str) -> None:
        pipeline = self.get(name)
        if pipeline.resources_status != "Stopped" or pipeline.resources_desired_status != "Stopped":
            raise FelderaError(
                400,
                "DeleteRestrictedToFullyStopped",
                "Cannot delete a pipeline which is not fully stopped. Stop the pipeline first fully by invoking the "
                "'/stop' endpoint.",
            )
        if pipeline.storage_status != "Cleared":
            raise FelderaError(
                400,
                "DeleteRestrictedToClearedStorage",
                "Cannot delete pipeline unless its storage is cleared. Clear storage first using `/clear`.",
            )
        del self.pipelines[name]

    def _rename(self, old: str, pipeline: SandboxPipeline) -> None:
        if pipeline.name != old:
            del self.pipelines[old]
            self.pipelines[pipeline.name] = pipeline

    def describe(self) -> dict[str, Any]:
        # The control API never echoes a key: it says only how many there are of each role.
        keys = {"api_key": None, "read_api_keys": len(self.settings.read_api_keys)}
        return {"settings": {**asdict(self.settings), **keys}, "timings": asdict(self.timings)}


def _valid_name(body: dict[str, Any]) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        description = (
            "be non-empty and only contain lowercase (a-z), uppercase (A-Z), number (0-9), underscore (_) or "
            "hyphen (-) characters, but cannot start or end with hyphen or underscore"
        )
        raise FelderaError(
            400,
            "NameDoesNotMatchPattern",
            f"Name '{name}' should {description} (pattern: '{NAME_PATTERN.pattern}')",
            {"name": name, "pattern": NAME_PATTERN.pattern, "pattern_description": description},
        )
    if not isinstance(body.get("program_code", ""), str):
        raise FelderaError(400, "InvalidPipelineBody", "program_code must be a string")
    return name
