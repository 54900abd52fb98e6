"""What kind of Feldera the sandbox is and how fast it runs: its settings, version profiles and timings."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass
class Timings:
    """How long each simulated step takes, in seconds. The defaults keep tests fast."""

    compile_s: float = 0.2
    provision_s: float = 0.1
    initialize_s: float = 0.1
    #: A fault-tolerant pipeline's replay after a restart (Runtime status ``Replaying``): minutes for a large state.
    replay_s: float = 0.1
    stop_s: float = 0.1
    checkpoint_s: float = 0.05
    clear_s: float = 0.05
    sync_delay_s: float = 0.0
    tick_s: float = 0.01
    #: What the pipelines' own intervals (``pull_interval``, ``push_interval``) are multiplied by: below 1 compresses
    #: production-shaped time (see :func:`production_timings`).
    interval_scale: float = 1.0

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name for f in fields(self)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown timing(s) {sorted(unknown)}; known: {sorted(known)}")
        for key, value in values.items():
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"timing {key} must be a non-negative number, got {value!r}")
            setattr(self, key, float(value))


def production_timings(speed: float = 1.0) -> Timings:
    """Timings shaped like a production Feldera's, run ``speed`` times faster: a compile of 20 s, provisioning of 5 s,
    an initialization of 10 s after every start or restart, a fault-tolerant pipeline's replay of 2 minutes after a
    restart, checkpoints of 2 s and pushes of 5 s; a standby's ``pull_interval`` and the push timer's
    ``push_interval`` pass ``speed`` times faster too. ``speed=1`` is real time; tests compress it (``speed=8``
    replays for 15 s) and keep its proportions, which is what the provider's waits meet."""
    if not speed > 0:
        raise ValueError(f"speed must be above 0, got {speed!r}")
    return Timings(
        compile_s=20 / speed,
        provision_s=5 / speed,
        initialize_s=10 / speed,
        replay_s=120 / speed,
        stop_s=3 / speed,
        checkpoint_s=2 / speed,
        clear_s=2 / speed,
        sync_delay_s=5 / speed,
        interval_scale=1 / speed,
    )


@dataclass(frozen=True)
class VersionProfile:
    """How one line of Feldera releases answers where the lines differ.

    :param version: what ``GET /v0/config`` reports.
    :param sync_running_field: ``/checkpoint/sync_status`` lists the pushes under way (``running``), a repeated
        request for a checkpoint being pushed joins that push, and the most recent outcome of a checkpoint wins
        (PR #6930). Without it (0.337), success and failure are kept apart and an older failure stays visible while
        the checkpoint is pushed again.
    """

    version: str
    sync_running_field: bool


#: The version profiles the sandbox serves: the 0.337 line (the newest server source read) and the later line.
PROFILES = {
    "0.337": VersionProfile(version="0.337.0", sync_running_field=False),
    "0.369": VersionProfile(version="0.369.0", sync_running_field=True),
}
DEFAULT_PROFILE = "0.369"


@dataclass
class SandboxSettings:
    """What kind of Feldera the sandbox pretends to be.

    ``profile`` (a key of :data:`PROFILES`) picks the release line; ``sync_running_field`` set explicitly picks the
    line that matches it (False is 0.337).
    """

    edition: str = "enterprise"  # or "community"
    api_key: str | None = None  # a key with the Write role
    read_api_keys: tuple[str, ...] = ()  # keys with the Read role: every change is 403 InsufficientPermissions
    sync_running_field: bool | None = None
    env_credentials: tuple[str, str] | None = None  # what Feldera would find in its environment (IAM role, ...)
    version: str = ""
    profile: str | None = None

    def __post_init__(self) -> None:
        if self.edition not in ("enterprise", "community"):
            raise ValueError(f"edition must be 'enterprise' or 'community', got {self.edition!r}")
        if self.profile is None:
            self.profile = "0.337" if self.sync_running_field is False else DEFAULT_PROFILE
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {self.profile!r}")
        chosen = PROFILES[self.profile]
        if self.sync_running_field is None:
            self.sync_running_field = chosen.sync_running_field
        if not self.version:
            self.version = chosen.version
