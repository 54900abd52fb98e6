"""Fault injection: the control API's rules for failing, slowing or dropping the next matching requests."""

from __future__ import annotations

import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

FAULT_KINDS = ("status", "drop_before", "drop_after", "delay", "restart")


@dataclass
class FaultRule:
    """Act on the next ``count`` requests whose method and path match.

    ``kind``: ``status`` answers ``status`` (with Feldera's error body when ``error_code`` is set, and a
    ``Retry-After`` header when ``retry_after`` is set) without touching the pipeline; ``drop_before`` closes the
    connection without handling the request; ``drop_after`` handles it, then closes the connection before the
    response is complete (the request took effect, the client cannot know); ``delay`` waits ``delay_s`` first;
    ``restart`` restarts the process of the pipeline named in the path, then handles the request. The first
    ``skip`` matching requests pass untouched (to hit, say, the second status read of a task and not its first).
    """

    path: str
    method: str = "*"
    kind: str = "status"
    status: int = 503
    error_code: str | None = None
    message: str | None = None
    retry_after: float | None = None
    delay_s: float = 0.0
    count: int = 1
    skip: int = 0
    id: int = 0
    matched: int = 0
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS}, got {self.kind!r}")
        if self.count < 1:
            raise ValueError("count must be at least 1")
        if self.skip < 0:
            raise ValueError("skip must be 0 or more")
        self._pattern = re.compile(self.path)

    def matches(self, method: str, path: str) -> bool:
        assert self._pattern is not None
        return (self.method == "*" or self.method.upper() == method.upper()) and bool(self._pattern.fullmatch(path))

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("_pattern", None)
        return data


class FaultInjector:
    """The set of active rules; each request consumes at most one rule."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._next_id = 1

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            rule.id = self._next_id
            self._next_id += 1
            self._rules.append(rule)
            return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.public() for r in self._rules]

    def take(self, method: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    if rule.skip > 0:
                        rule.skip -= 1
                        continue
                    rule.matched += 1
                    if rule.matched >= rule.count:
                        self._rules.remove(rule)
                    return rule
        return None
