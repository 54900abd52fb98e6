"""What a sandbox pipeline needs from the manager that runs it, and nothing more.

A pipeline gets a :class:`Runtime` instead of the engine itself, so the pipeline modules never import the engine
(no import cycle) and cannot reach the registry of other pipelines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import errors

if TYPE_CHECKING:
    from collections.abc import Callable

    from .clock import SandboxClock
    from .settings import SandboxSettings, Timings


@dataclass(frozen=True)
class Runtime:
    """The sandbox's settings, timings and clock, and its way to run background jobs.

    :param submit: run a job off the sandbox's lock, then call ``done(result, exception)`` under it.
    :param locked_read: run a read under the sandbox's lock (a job checking its pipeline is still alive).
    :param is_stopping: whether the sandbox is shutting down (long jobs give up).
    """

    settings: SandboxSettings
    timings: Timings
    clock: SandboxClock
    submit: Callable[[Callable[[], Any], Callable[[Any, BaseException | None], None]], None]
    locked_read: Callable[[Callable[[], Any]], Any]
    is_stopping: Callable[[], bool]

    @property
    def stopping(self) -> bool:
        return self.is_stopping()

    def require_enterprise(self, feature: str) -> None:
        """The open-source edition answers 501 ``EnterpriseFeature`` for ``feature``: the one edition check."""
        if self.settings.edition == "community":
            raise errors.enterprise_feature(feature)
