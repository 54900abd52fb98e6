"""The state of one pipeline's storage volume and of one incarnation of its process."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .objectstore import Checkpoint

LOCAL_CHECKPOINTS_KEPT = 5


@dataclass
class LocalStorage:
    """The pipeline's storage volume: kept across process restarts, wiped by ``/clear``."""

    checkpoints: list[Checkpoint] = field(default_factory=list)
    activated: bool = False  # Feldera's activated.feldera marker

    def newest(self) -> Checkpoint | None:
        return max(self.checkpoints, key=lambda c: c.uuid) if self.checkpoints else None

    def find(self, uuid: str) -> Checkpoint | None:
        return next((c for c in self.checkpoints if c.uuid == uuid), None)

    def add(self, checkpoint: Checkpoint, protected: set[str]) -> None:
        if self.find(checkpoint.uuid) is None:
            self.checkpoints.append(checkpoint)
            self.checkpoints.sort(key=lambda c: c.uuid)
        # Local GC: keep the newest few, and never one that is being pushed (Feldera PRs #4602, #5469).
        while len(self.checkpoints) > LOCAL_CHECKPOINTS_KEPT:
            victim = next((c for c in self.checkpoints if c.uuid not in protected), None)
            if victim is None:
                break
            self.checkpoints.remove(victim)


@dataclass
class ProcessState:
    """One incarnation of the pipeline process. Everything here is lost when the process restarts."""

    incarnation_uuid: str
    start_wall: float
    runtime_desired_status: str
    runtime_status: str = "Initializing"
    runtime_status_since: float = 0.0
    runtime_desired_status_since: float = 0.0
    reason: str | None = None
    approval_diff: Any = None
    # initializing | replaying | standby | activating | awaiting_approval | bootstrapping | ready | suspending
    phase: str = "initializing"
    phase_due: float = 0.0
    outcome: tuple[str, Any] | None = None  # result of the job the current phase waits for
    job_running: bool = False
    tables: dict[str, list[Any]] = field(default_factory=dict)
    processed_records: int = 0
    input_records: int = 0
    input_bytes: int = 0
    steps: int = 0
    buffered: list[tuple[str, str, Any]] = field(default_factory=list)
    tokens_issued: int = 0
    tokens_done: int = 0
    next_seq: int = 0
    checkpoint_success: int | None = None
    checkpoint_failure: dict[str, Any] | None = None
    pending_checkpoints: list[tuple[int, float]] = field(default_factory=list)
    fail_next_checkpoint: str | None = None
    sync_success: str | None = None
    sync_failure: dict[str, Any] | None = None
    sync_periodic: str | None = None
    sync_running: set[str] = field(default_factory=set)
    periodic_push_running: bool = False
    last_sync_done: float = 0.0
    last_synced_uuid: str | None = None
    fail_next_sync: str | None = None
    next_pull: float = 0.0
    standby_pulls: int = 0
    left_standby: bool = False
    activate_to: str | None = None  # an activation waiting for the standby's pull loop to wake
    activation_noticed: bool = False  # the pull loop has seen the activation; its next wake is the final pull
    unavailable_until: float = 0.0  # the runner cannot reach the process until then (runtime status Unavailable)
    last_auto_checkpoint: float = 0.0
    suspend_seq: int | None = None

    @property
    def has_controller(self) -> bool:
        return self.phase in ("ready", "suspending")
