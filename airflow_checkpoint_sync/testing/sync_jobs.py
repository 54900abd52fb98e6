"""A pipeline's object-storage jobs: pushes, the pull at start and a standby's pulls.

Each runs off the sandbox's lock as a background job, so a slow bucket never blocks the API, exactly like Feldera's
asynchronous push and pull; its result is applied under the lock, and only if the process that asked is still alive.
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

from .objectstore import BucketPath, Checkpoint, CheckpointNotFound, CheckpointStore, SyncError, SyncTarget

if TYPE_CHECKING:
    from collections.abc import Callable

    from .process import LocalStorage, ProcessState
    from .runtime import Runtime


class SyncJobs:
    """The push and pull jobs of :class:`~airflow_checkpoint_sync.testing.pipeline.SandboxPipeline` (a mixin)."""

    runtime: Runtime
    id: str
    storage: LocalStorage
    process: ProcessState | None

    def sync_config(self) -> dict[str, Any] | None:
        raise NotImplementedError

    def _note(self, message: str) -> None:
        raise NotImplementedError

    def _store(self, sync: dict[str, Any]) -> CheckpointStore:
        return CheckpointStore(SyncTarget.from_sync_config(sync, self.runtime.settings.env_credentials))

    def _alive(self, incarnation: str) -> Callable[[], bool]:
        return lambda: self.process is not None and self.process.incarnation_uuid == incarnation

    def _start_push(self, p: ProcessState, checkpoint: Checkpoint, *, manual: bool) -> None:
        sync = copy.deepcopy(self.sync_config() or {})
        if manual:
            p.sync_running.add(checkpoint.uuid)
            self._note(f"checkpoint sync of {checkpoint.uuid} started")
        else:
            p.periodic_push_running = True
        injected, p.fail_next_sync = p.fail_next_sync, None
        alive = self._alive(p.incarnation_uuid)
        owner = f"pipeline-{self.id}"
        delay = self.runtime.timings.sync_delay_s
        snapshot = copy.deepcopy(checkpoint)

        def push() -> list[str]:
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline:
                if self.runtime.stopping or not self.runtime.locked_read(alive):
                    raise SyncError("the pipeline process exited while the checkpoint was being pushed")
                time.sleep(min(0.02, max(deadline - time.monotonic(), 0)))
            if injected:
                raise SyncError(injected)
            return self._store(sync).push(
                BucketPath.parse(sync["bucket"]),
                snapshot,
                owner,
                now=self.runtime.clock.now(),
                retention_min_count=int(sync.get("retention_min_count", 10)),
                retention_min_age_days=int(sync.get("retention_min_age", 30)),
                still_wanted=lambda: self.runtime.locked_read(alive),
            )

        def done(result: Any, exc: BaseException | None) -> None:
            if not alive():
                return
            p.sync_running.discard(checkpoint.uuid)
            if not manual:
                p.periodic_push_running = False
            if exc is not None:
                self._note(f"checkpoint sync of {checkpoint.uuid} failed: {exc}")
                if manual:
                    p.sync_failure = {"uuid": checkpoint.uuid, "error": str(exc)}
                    # From 0.347 (PR #6930) the most recent outcome wins; 0.337 keeps success and failure apart.
                    if self.runtime.settings.sync_running_field and p.sync_success == checkpoint.uuid:
                        p.sync_success = None
                return
            # The periodic timer counts from the last successful push; after a failure it pushes again at once.
            p.last_sync_done = time.monotonic()
            self._note(f"checkpoint sync of {checkpoint.uuid} succeeded")
            if result:
                self._note(f"retention deleted remote checkpoints {result}")
            p.last_synced_uuid = checkpoint.uuid
            # Feldera fills `periodic` from the controller's last successful sync, which manual syncs update too.
            p.sync_periodic = checkpoint.uuid
            if manual:
                p.sync_success = checkpoint.uuid
                if (
                    self.runtime.settings.sync_running_field
                    and p.sync_failure
                    and p.sync_failure.get("uuid") == checkpoint.uuid
                ):
                    p.sync_failure = None

        self.runtime.submit(push, done)

    def _pull_sources(self, sync: dict[str, Any]) -> list[BucketPath]:
        sources = [BucketPath.parse(sync["bucket"])]
        if sync.get("read_bucket"):
            sources.append(BucketPath.parse(sync["read_bucket"]))
        return sources

    def _pull_remote(self, sync: dict[str, Any], wanted: str) -> Checkpoint:
        store = self._store(sync)
        missing = []
        for source in self._pull_sources(sync):
            try:
                return store.pull(source, wanted)
            except CheckpointNotFound as exc:
                missing.append(str(exc))
        raise CheckpointNotFound(f"checkpoint(s) [{wanted}] were not found in source(s): " + "; ".join(missing))

    def _submit_initial_pull(self, p: ProcessState, sync: dict[str, Any]) -> None:
        wanted = str(sync["start_from_checkpoint"])
        strict = bool(sync.get("fail_if_no_checkpoint", False))
        local = self.storage.newest() if wanted == "latest" else self.storage.find(wanted)
        if local is not None:
            # Priority 1: a matching local checkpoint is used without downloading (Feldera issue #5502).
            p.outcome = ("open", local)
            return
        sync = copy.deepcopy(sync)

        def pull() -> Checkpoint | None:
            try:
                return self._pull_remote(sync, wanted)
            except CheckpointNotFound:
                if strict:
                    raise
                return None

        def done(result: Any, exc: BaseException | None) -> None:
            if self.process is not p:
                return
            if exc is not None:
                p.outcome = ("error", ("CheckpointPullFailed", f"failed to fetch checkpoint: {exc}"))
                return
            if result is None:
                self._note(f"checkpoint {wanted} not found in object storage; starting from scratch")
            else:
                self.storage.add(result, protected=set())
            p.outcome = ("open", result)

        self.runtime.submit(pull, done)

    def _submit_pull(self, p: ProcessState, *, final: bool) -> None:
        sync = copy.deepcopy(self.sync_config() or {})
        wanted = str(sync.get("start_from_checkpoint") or "latest")
        pull_interval = float(sync.get("pull_interval", 10)) * self.runtime.timings.interval_scale
        p.job_running = True

        def pull() -> Checkpoint:
            return self._pull_remote(sync, wanted)

        def done(result: Any, exc: BaseException | None) -> None:
            if self.process is not p:
                return
            p.job_running = False
            if exc is None:
                self.storage.add(result, protected=set())
                p.standby_pulls += 1
                self._note(f"checkpoint pulled successfully: {result.uuid}")
            if final:
                if exc is not None:
                    p.outcome = (
                        "error",
                        ("ActivationFailed", f"activation failed: could not pull checkpoint: {exc}"),
                    )
                else:
                    p.outcome = ("open", self.storage.newest())
                return
            if exc is not None:
                # Pull errors in standby are logged and retried; the pipeline stays in Standby.
                self._note(f"standby pull failed (will retry): {exc}")
            p.next_pull = time.monotonic() + pull_interval

        self.runtime.submit(pull, done)
