"""Time for the sandbox: a wall clock that tests can move forward, and UUIDv7s minted from it.

Feldera names checkpoints with UUIDv7s, whose first 48 bits are the creation time in milliseconds. Retention
(``retention_min_age`` in days) and "newest" both read that time, so the sandbox mints its uuids from the same
clock it measures ages with; moving the clock forward (``advance``) ages every existing checkpoint at once.
"""

from __future__ import annotations

import os
import threading
import time
import uuid


class SandboxClock:
    """Wall-clock time with an adjustable offset, plus a monotonic UUIDv7 generator."""

    def __init__(self) -> None:
        self._offset_s = 0.0
        self._lock = threading.Lock()
        self._last_ms = 0
        self._seq = 0

    def now(self) -> float:
        """Seconds since the epoch, as the sandbox sees it."""
        return time.time() + self._offset_s

    def advance(self, seconds: float) -> None:
        """Move the sandbox's wall clock forward (or back) by ``seconds``."""
        with self._lock:
            self._offset_s += seconds

    @property
    def offset_s(self) -> float:
        """How far the sandbox's wall clock is ahead of the machine's."""
        return self._offset_s

    def uuid7(self) -> str:
        """A UUIDv7 for the current sandbox time, strictly greater than every earlier one."""
        with self._lock:
            ms = int(self.now() * 1000)
            if ms <= self._last_ms:
                # Same (or an earlier, after a clock change) millisecond: keep the order total by
                # counting up in the 12-bit field that follows the timestamp.
                self._seq += 1
                if self._seq >= 0x1000:
                    self._last_ms += 1
                    self._seq = 0
                ms = self._last_ms
            else:
                self._last_ms = ms
                self._seq = 0
            rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
            value = (ms & ((1 << 48) - 1)) << 80
            value |= 0x7 << 76
            value |= self._seq << 64
            value |= 0b10 << 62
            value |= rand_b
            return str(uuid.UUID(int=value))


def uuid7_unix_seconds(value: str) -> float:
    """The creation time inside a UUIDv7, in seconds since the epoch."""
    return (uuid.UUID(value).int >> 80) / 1000.0
