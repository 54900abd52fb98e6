"""A FelderaHook whose transport answers from a table: for unit tests of a task's branches (not part of the provider).

It replaces only the wire, below the hook's request building and answer parsing; integration tests talk to the
Feldera sandbox over real HTTP instead.
"""

from __future__ import annotations

from typing import Any

from airflow_checkpoint_sync.hooks.connection import FelderaConnectionSettings
from airflow_checkpoint_sync.hooks.feldera import FelderaHook


class StubHook(FelderaHook):
    """FelderaHook whose transport answers from a table keyed by ``"METHOD /suffix"`` (the path after
    ``/v0/pipelines/p``): a value, an exception, or a list consumed in turn, its last answer repeated."""

    def __init__(self, answers: dict[str, Any]) -> None:
        super().__init__("stub")
        self.answers = answers
        self.sent: list[str] = []
        self.bodies: dict[str, Any] = {}
        self._settings = FelderaConnectionSettings("http://feldera", None, True, 1.0, None, "http://feldera", "stub")

    def send(self, request: Any) -> Any:
        key = f"{request.method} {request.path.removeprefix('/v0/pipelines/p')}"
        self.sent.append(key)
        self.bodies[key] = request.json
        answer = self.answers[key]
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def mutations(self) -> list[str]:
        """The requests sent that change something (every one but a GET)."""
        return [key for key in self.sent if not key.startswith("GET")]
