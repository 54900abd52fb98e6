"""One sandbox pipeline: its definition, its storage, and the pipeline process that runs it.

The pipeline moves through Feldera's real states on the sandbox's clock. Requests change *desired* states and return
at once; :meth:`SandboxPipeline.tick` (called by the engine every few milliseconds) moves the *current* states towards
them, as Feldera's runner does. Anything that touches object storage runs as a background job so a slow bucket never
blocks the API, exactly like Feldera's asynchronous push and pull.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
import uuid as uuidlib
from typing import TYPE_CHECKING, Any

from . import errors
from .adhoc import run_query
from .errors import FelderaError
from .objectstore import BucketPath, Checkpoint, CheckpointStore
from .process import LocalStorage, ProcessState
from .runtime_config import check_edition_allows, sync_config_problem, validate_runtime_config, with_runtime_defaults
from .sql import compile_errors, declared_tables, normalize_identifier, program_fingerprint
from .sync_jobs import SyncJobs

if TYPE_CHECKING:
    from .runtime import Runtime

COMPILING = ("Pending", "CompilingSql", "SqlCompiled", "CompilingRust")
INITIAL_TO_STATUS = {"running": "Running", "paused": "Paused", "standby": "Standby"}


#: Runtime settings the stored state depends on: changed only while storage is cleared (Feldera's
#: EditRestrictedToClearedStorage).
RESTRICTED_UNLESS_CLEARED = (
    "workers",
    "hosts",
    "fault_tolerance",
    "resources.storage_mb_max",
    "resources.namespace",
    "resources.storage_class",
    "clock_timezone_offset",
)


def _at(config: dict[str, Any], path: str) -> Any:
    value: Any = config
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def rfc3339(wall: float) -> str:
    return dt.datetime.fromtimestamp(wall, tz=dt.UTC).isoformat().replace("+00:00", "Z")


class SandboxPipeline(SyncJobs):
    """A pipeline as the pipeline manager keeps it, plus its running process (if any)."""

    def __init__(self, runtime: Runtime, body: dict[str, Any]) -> None:
        self.runtime = runtime
        now = runtime.clock.now()
        self.id = str(uuidlib.uuid4())
        self.created_at = now
        self.version = 1
        self.refresh_version = 1
        self.program_version = 0
        self.program_code = ""
        self.udf_rust = ""
        self.udf_toml = ""
        self.program_config: dict[str, Any] = {}
        self.runtime_config: dict[str, Any] = {}
        self.description = ""
        self.tags: list[str] = []
        self.name = ""
        self.program_status = "Pending"
        self.program_status_since = now
        self.program_error: dict[str, Any] = {
            "sql_compilation": None,
            "rust_compilation": None,
            "system_error": None,
        }
        self._compile_started = time.monotonic()
        self.storage_status = "Cleared"
        self.storage_status_since = now
        self._clear_due = 0.0
        self.storage = LocalStorage()
        self.resources_status = "Stopped"
        self.resources_status_since = now
        self.resources_desired_status = "Stopped"
        self.resources_desired_status_since = now
        self._resources_due = 0.0
        self.deployment_initial: str | None = None
        self.deployment_error: dict[str, Any] | None = None
        self.deployment_id: str | None = None
        self.bootstrap_policy = "await_approval"
        self.process: ProcessState | None = None
        self.log: list[str] = []
        self.replace(body, creating=True)

    # ------------------------------------------------------------------------------------------------------------
    # Definition
    # ------------------------------------------------------------------------------------------------------------
    def replace(self, body: dict[str, Any], *, creating: bool = False) -> None:
        """PUT semantics: every field is set; omitted optional ones become empty."""
        self._require_stopped_for_update(creating)
        runtime_config = with_runtime_defaults(body.get("runtime_config"))
        validate_runtime_config(runtime_config)
        check_edition_allows(self.runtime, runtime_config)
        if not creating:
            self._require_cleared_storage_for(runtime_config)
        before = self._edited_fields()
        self.name = body["name"]
        self.description = body.get("description") or ""
        self.tags = list(body.get("tags") or [])
        self.udf_rust = body.get("udf_rust") or ""
        self.udf_toml = body.get("udf_toml") or ""
        self.program_config = dict(body.get("program_config") or {})
        self.runtime_config = runtime_config
        self._set_program(body.get("program_code") or "", force=creating)
        if not creating and self._edited_fields() != before:
            self.version += 1

    def patch(self, body: dict[str, Any]) -> None:
        """PATCH semantics: only the top-level fields given (non-null) change; runtime_config is taken whole. A PATCH
        that changes nothing keeps the version."""
        self._require_stopped_for_update(False)
        before = self._edited_fields()
        if body.get("runtime_config") is not None:
            runtime_config = with_runtime_defaults(body["runtime_config"])
            validate_runtime_config(runtime_config)
            check_edition_allows(self.runtime, runtime_config)
            self._require_cleared_storage_for(runtime_config)
            self.runtime_config = runtime_config
        for key in ("description", "udf_rust", "udf_toml"):
            if body.get(key) is not None:
                setattr(self, key, body[key])
        if body.get("tags") is not None:
            self.tags = list(body["tags"])
        if body.get("program_config") is not None:
            self.program_config = dict(body["program_config"])
        if body.get("name") is not None:
            self.name = body["name"]
        if body.get("program_code") is not None:
            self._set_program(body["program_code"], force=False)
        if self._edited_fields() != before:
            self.version += 1

    def _edited_fields(self) -> tuple[Any, ...]:
        return (
            self.name,
            self.description,
            tuple(self.tags),
            self.udf_rust,
            self.udf_toml,
            json.dumps(self.program_config, sort_keys=True),
            json.dumps(self.runtime_config, sort_keys=True),
            self.program_code,
        )

    def _require_cleared_storage_for(self, runtime_config: dict[str, Any]) -> None:
        """Feldera refuses to change what the stored state depends on unless storage is cleared
        (``db/operations/pipeline.rs``: EditRestrictedToClearedStorage)."""
        if self.storage_status == "Cleared":
            return
        changed = [
            path for path in RESTRICTED_UNLESS_CLEARED if _at(runtime_config, path) != _at(self.runtime_config, path)
        ]
        if changed:
            raise FelderaError(
                400,
                "EditRestrictedToClearedStorage",
                f"Cannot change {', '.join(changed)} while the pipeline's storage is not cleared: clear storage "
                "first ('/clear')",
                {"fields": changed},
            )

    def _require_stopped_for_update(self, creating: bool) -> None:
        if not creating and (self.resources_status != "Stopped" or self.resources_desired_status != "Stopped"):
            raise FelderaError(
                400,
                "UpdateRestrictedToStopped",
                "Pipeline can only be updated while stopped. Stop it first by invoking '/stop'.",
            )

    def _set_program(self, program_code: str, *, force: bool) -> None:
        if not force and program_code == self.program_code:
            return
        self.program_code = program_code
        self.program_version += 1
        self._set_program_status("Pending")
        self._compile_started = time.monotonic()

    def _set_program_status(self, status: str) -> None:
        self.program_status = status
        self.program_status_since = self.runtime.clock.now()

    @property
    def tables(self) -> list[str]:
        return declared_tables(self.program_code)

    @property
    def fingerprint(self) -> int:
        return program_fingerprint(self.program_code)

    def sync_config(self) -> dict[str, Any] | None:
        backend = (self.runtime_config.get("storage") or {}).get("backend") or {}
        if backend.get("name") != "file":
            return None
        sync: dict[str, Any] | None = (backend.get("config") or {}).get("sync")
        return sync

    @property
    def storage_enabled(self) -> bool:
        return self.runtime_config.get("storage") is not None

    @property
    def ft_enabled(self) -> bool:
        model = (self.runtime_config.get("fault_tolerance") or {}).get("model", "none")
        return model not in (None, "none")

    # ------------------------------------------------------------------------------------------------------------
    # Status, as the API reports it
    # ------------------------------------------------------------------------------------------------------------
    def deployment_status(self) -> str:
        if self.resources_status in ("Stopped", "Provisioning", "Stopping"):
            return self.resources_status
        if self.process is None or time.monotonic() < self.process.unavailable_until:
            return "Unavailable"
        return self.process.runtime_status

    def deployment_desired_status(self) -> str:
        if self.resources_desired_status == "Stopped":
            return "Stopped"
        if self.process:
            return self.process.runtime_desired_status
        return INITIAL_TO_STATUS.get(self.deployment_initial or "running", "Running")

    def status_since(self) -> float:
        if self.resources_status == "Provisioned" and self.process:
            return self.process.runtime_status_since
        return self.resources_status_since

    def desired_since(self) -> float:
        if self.resources_desired_status == "Provisioned" and self.process:
            return max(self.process.runtime_desired_status_since, self.resources_desired_status_since)
        return self.resources_desired_status_since

    def render(self, selector: str) -> dict[str, Any]:
        """The pipeline as ``GET /v0/pipelines/{name}?selector=...`` returns it."""
        p = self.process
        info: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "tags": list(self.tags),
            "created_at": rfc3339(self.created_at),
            "version": self.version,
            "platform_version": self.runtime.settings.version,
            "program_version": self.program_version,
            "program_status": self.program_status,
            "program_status_since": rfc3339(self.program_status_since),
            "refresh_version": self.refresh_version,
            "storage_status": self.storage_status,
            "storage_status_details": {"checkpoints": [c.metadata() for c in self.storage.checkpoints]}
            if self.storage_status != "Cleared"
            else None,
            "deployment_id": self.deployment_id,
            "deployment_initial": INITIAL_TO_STATUS.get(self.deployment_initial) if self.deployment_initial else None,
            "deployment_error": copy.deepcopy(self.deployment_error),
            "deployment_status": self.deployment_status(),
            "deployment_status_since": rfc3339(self.status_since()),
            "deployment_desired_status": self.deployment_desired_status(),
            "deployment_desired_status_since": rfc3339(self.desired_since()),
            "deployment_resources_status": self.resources_status,
            "deployment_resources_status_since": rfc3339(self.resources_status_since),
            "deployment_resources_status_details": None,
            "deployment_resources_desired_status": self.resources_desired_status,
            "deployment_resources_desired_status_since": rfc3339(self.resources_desired_status_since),
            "deployment_runtime_status": (
                ("Unavailable" if time.monotonic() < p.unavailable_until else p.runtime_status) if p else None
            ),
            "deployment_runtime_status_since": rfc3339(p.runtime_status_since) if p else None,
            "deployment_runtime_status_details": (
                {"reason": p.reason, "approval_diff": p.approval_diff} if p and (p.reason or p.approval_diff) else None
            ),
            "deployment_runtime_desired_status": p.runtime_desired_status if p else None,
            "deployment_runtime_desired_status_since": rfc3339(p.runtime_desired_status_since) if p else None,
        }
        if selector == "all":
            info.update(
                {
                    "program_code": self.program_code,
                    "udf_rust": self.udf_rust,
                    "udf_toml": self.udf_toml,
                    "program_config": copy.deepcopy(self.program_config),
                    "runtime_config": copy.deepcopy(self.runtime_config),
                    "program_error": copy.deepcopy(self.program_error),
                }
            )
        return info

    # ------------------------------------------------------------------------------------------------------------
    # Lifecycle requests (all asynchronous: they change desired state)
    # ------------------------------------------------------------------------------------------------------------
    def start(self, initial: str, bootstrap_policy: str, dismiss_error: bool) -> str:
        if initial not in INITIAL_TO_STATUS:
            raise FelderaError(
                400,
                "UnsupportedPipelineAction",
                f"Unsupported pipeline action 'start' with initial='{initial}': expected running, paused or standby",
                {"action": "start", "initial": initial},
            )
        if initial == "standby":
            self.runtime.require_enterprise("standby")
        if self.resources_status == "Stopping" or (
            self.resources_desired_status == "Stopped" and self.resources_status != "Stopped"
        ):
            raise FelderaError(
                400,
                "IllegalPipelineAction",
                f"Deployment resources status (current: '{self.resources_status}', desired: 'Stopped') cannot have "
                "desired changed to 'Provisioned'. Cannot restart the pipeline while it is stopping. Wait for it to "
                "stop before starting a new instance of the pipeline.",
                {
                    "status": self.resources_status,
                    "current_desired_status": "Stopped",
                    "new_desired_status": "Provisioned",
                    "hint": "Cannot restart the pipeline while it is stopping.",
                },
            )
        if self.resources_desired_status == "Provisioned":
            if self.deployment_initial is not None and initial != self.deployment_initial:
                raise FelderaError(
                    400,
                    "InitialImmutableUnlessStopped",
                    "Initial desired runtime status cannot be changed unless the pipeline is desired to become "
                    "Stopped.",
                    None,
                )
            return "Pipeline is already starting or started"
        if self.program_status in ("SqlError", "RustError", "SystemError"):
            raise FelderaError(
                400,
                "CannotStartWithCompilationError",
                f"Cannot start the pipeline: its program failed to compile ({self.program_status})",
                {"program_status": self.program_status},
            )
        if self.storage_status == "Clearing":
            raise FelderaError(
                400,
                "CannotStartWhileClearingStorage",
                "Cannot start the pipeline while its storage is being cleared: wait until it is Cleared",
                None,
            )
        if initial == "standby" and not self.sync_config():
            raise FelderaError(
                400,
                "InitialStandbyNotAllowed",
                "Initial desired runtime status can only be set to Standby if: (1) "
                "`runtime_config.storage.backend.name` is set to `file`, and (2) "
                "`runtime_config.storage.backend.config.sync` is configured.",
                None,
            )
        if self.deployment_error is not None:
            if not dismiss_error:
                raise FelderaError(
                    400,
                    "IllegalPipelineAction",
                    "Cannot start the pipeline while it has a deployment error: dismiss it first through "
                    "'/dismiss_error' or start with 'dismiss_error=true'",
                    None,
                )
            self.deployment_error = None
        self.deployment_initial = initial
        self.bootstrap_policy = bootstrap_policy
        self.deployment_id = str(uuidlib.uuid4())
        self._set_resources_desired("Provisioned")
        return "Pipeline is starting"

    def stop(self, force: bool) -> str:
        if not force:
            self.runtime.require_enterprise("graceful stop (suspend)")
        p = self.process
        if force or p is None or self.resources_status != "Provisioned":
            if self.resources_desired_status != "Stopped":
                self._set_resources_desired("Stopped")
            return "Pipeline is forcefully stopping"
        if p.phase == "standby" or p.runtime_status == "Standby":
            raise errors.invalid_transition("suspend", "Standby")
        if not self.storage_enabled:
            raise FelderaError(
                405,
                "UnsupportedPipelineAction",
                "Unsupported pipeline action 'suspend': this pipeline does not support the suspend action for the "
                "following reason(s):\n    - Storage must be configured",
                {"action": "suspend", "reason": "Storage must be configured"},
            )
        if not p.has_controller:
            # Nothing to checkpoint yet: the manager stops it outright.
            self._set_resources_desired("Stopped")
            return "Pipeline is forcefully stopping"
        if p.phase != "suspending":
            p.phase = "suspending"
            self._set_runtime_desired("Suspended")
            p.suspend_seq = self._request_checkpoint()
        return "Pipeline is stopping"

    def pause(self) -> str:
        p = self._process_for("pause")
        if p.runtime_status == "Standby" or p.phase == "standby":
            raise errors.invalid_transition("pause", "Standby")
        self._set_runtime_desired("Paused")
        if p.phase == "ready":
            self._set_runtime_status("Paused")
        return "Pipeline is pausing"

    def resume(self) -> str:
        p = self._process_for("resume")
        if p.runtime_status == "Standby" or p.phase == "standby":
            raise errors.invalid_transition("start", "Standby")
        self._set_runtime_desired("Running")
        if p.phase == "ready":
            self._set_runtime_status("Running")
            self._drain_buffer()
        return "Pipeline is resuming"

    def activate(self, initial: str) -> str:
        self.runtime.require_enterprise("start from object store (S3)")
        if initial not in ("running", "paused"):
            raise FelderaError(
                400,
                "InvalidActivateStatus",
                f"Invalid activation status '{initial}': a standby pipeline can only be activated to running or paused",
                {"initial": initial},
            )
        p = self._process_for("activate")
        target = INITIAL_TO_STATUS[initial]
        if p.phase == "standby" and p.activate_to is None:
            # Real Feldera stays in Standby until its pull loop has woken twice (one to two pull_intervals), pulls
            # the newest checkpoint once more, and only then initializes.
            p.activate_to = target
            p.left_standby = True
            self._set_runtime_desired(target)
            self._note(f"activation to {target} requested; it starts when the pull loop next wakes, and pulls again")
            return f"Pipeline transitioning from Standby to {target}"
        if p.left_standby:
            # An activation already happened (or is happening): repeating it changes nothing.
            return f"Pipeline is already transitioning from Standby to {p.runtime_desired_status}"
        if p.phase == "ready":
            # /activate accepts any allowed change of the desired status: on a pipeline that runs it pauses or
            # resumes it, as /pause and /resume would.
            return self.pause() if target == "Paused" else self.resume()
        raise errors.invalid_transition("activate", p.runtime_status)

    def approve(self) -> str:
        p = self._process_for("approve")
        if p.phase != "awaiting_approval":
            raise FelderaError(400, "InvalidTransition", "The pipeline is not awaiting approval", None)
        p.approval_diff = None
        self._set_runtime_status("Bootstrapping")
        p.phase = "bootstrapping"
        p.phase_due = time.monotonic() + self.runtime.timings.initialize_s
        return "Pipeline bootstrap approved"

    def dismiss_error(self) -> str:
        self.deployment_error = None
        return "Deployment error dismissed"

    def clear(self) -> str:
        if self.resources_status != "Stopped" or self.resources_desired_status != "Stopped":
            raise FelderaError(
                400,
                "IllegalPipelineAction",
                "Storage can only be cleared while the pipeline is stopped. Stop it first by invoking '/stop'.",
                None,
            )
        if self.storage_status in ("Cleared", "Clearing"):
            raise FelderaError(
                400,
                "InvalidStorageStatusTransition",
                f"Cannot transition from storage status '{self.storage_status.lower()}' to 'clearing'",
                {"current_status": self.storage_status, "new_status": "Clearing"},
            )
        self._set_storage_status("Clearing")
        self._clear_due = time.monotonic() + self.runtime.timings.clear_s
        return "Pipeline storage is being cleared"

    # ------------------------------------------------------------------------------------------------------------
    # Requests forwarded to the pipeline process
    # ------------------------------------------------------------------------------------------------------------
    def _process_for(self, _request: str) -> ProcessState:
        p = self.process
        if p is None or self.resources_status != "Provisioned":
            raise errors.not_deployed(self.name, self.deployment_status(), self.resources_desired_status)
        if time.monotonic() < p.unavailable_until:
            raise errors.pipeline_unavailable(self.name)
        return p

    def _controller(self, request: str) -> ProcessState:
        p = self._process_for(request)
        if not p.has_controller:
            raise errors.no_controller(p.runtime_status)
        return p

    def checkpoint(self) -> dict[str, Any]:
        self.runtime.require_enterprise("checkpoint")
        p = self._controller("checkpoint")
        if not self.storage_enabled:
            raise errors.pipeline_400("cannot checkpoint: storage is not configured for this pipeline")
        seq = self._request_checkpoint()
        return {"checkpoint_sequence_number": seq, "incarnation_uuid": p.incarnation_uuid}

    def _process_or_controller(self, request: str) -> ProcessState:
        # Answered from storage by the server itself, these need no controller: they answer during Initializing,
        # Replaying and Standby too (Feldera's server.rs answers them before it asks for the controller).
        return self._process_for(request)

    def checkpoint_status(self, incarnation_uuid: str | None) -> dict[str, Any]:
        p = self._process_or_controller("checkpoint_status")
        self._check_incarnation(p, incarnation_uuid)
        return {"success": p.checkpoint_success, "failure": copy.deepcopy(p.checkpoint_failure)}

    def checkpoints(self) -> list[dict[str, Any]]:
        self._process_or_controller("checkpoints")
        return [c.metadata() for c in self.storage.checkpoints]

    def sync(self) -> dict[str, Any]:
        self.runtime.require_enterprise("checkpoint sync to object store (S3)")
        p = self._controller("checkpoint/sync")
        newest = self.storage.newest()
        if newest is None:
            raise errors.pipeline_400(
                "no checkpoints found: make a POST request to `/checkpoint` to make a new checkpoint"
            )
        if self.sync_config() is None:
            # Accepted, then reported as the push's failure: the controller finds no sync config when it starts it.
            p.sync_failure = {
                "uuid": newest.uuid,
                "error": "Error pushing checkpoint to object store: sync config is not set; cannot push checkpoints",
            }
            self._note(f"checkpoint sync of {newest.uuid} failed: sync config is not set")
            return {"checkpoint_uuid": newest.uuid, "incarnation_uuid": p.incarnation_uuid}
        if not (self.runtime.settings.sync_running_field and newest.uuid in p.sync_running):
            self._start_push(p, newest, manual=True)
        return {"checkpoint_uuid": newest.uuid, "incarnation_uuid": p.incarnation_uuid}

    def sync_status(self, incarnation_uuid: str | None) -> dict[str, Any]:
        self.runtime.require_enterprise("checkpoint sync to object store (S3)")
        # A stale incarnation is told at once, before the controller is asked for: while a restarted process is
        # still initializing or replaying, a caller learns of the restart and waits for the new controller.
        p = self._process_for("checkpoint/sync_status")
        self._check_incarnation(p, incarnation_uuid)
        if not p.has_controller:
            raise errors.no_controller(p.runtime_status)
        body: dict[str, Any] = {
            "success": p.sync_success,
            "failure": copy.deepcopy(p.sync_failure),
            "periodic": p.sync_periodic,
        }
        if self.runtime.settings.sync_running_field:
            body["running"] = sorted(p.sync_running)
        return body

    def remote_source(self) -> tuple[CheckpointStore, BucketPath]:
        """Where ``GET /checkpoints/remote`` lists from; the listing itself is I/O, done off the lock."""
        self.runtime.require_enterprise("checkpoint sync to object store (S3)")
        self._process_or_controller("checkpoints/remote")
        sync = self.sync_config()
        if sync is None:
            raise FelderaError(
                500,
                "CheckpointFetchError",
                "Error fetching checkpoint from object store: listing remote checkpoints requires sync to be "
                "configured",
                None,
            )
        return self._store(sync), BucketPath.parse(sync["bucket"])

    def ingest(self, table: str, body: bytes, update_format: str, array: bool) -> dict[str, Any]:
        p = self._controller("ingress")
        name = normalize_identifier(table)
        if name not in p.tables:
            raise FelderaError(404, "UnknownInputTable", f"Unknown table '{table}'", {"table_name": table})
        try:
            records = _parse_records(body, array)
        except ValueError as exc:
            raise FelderaError(400, "ParseErrors", f"error parsing JSON input: {exc}", None) from exc
        for record in records:
            op, row = _decode_change(record, update_format)
            p.buffered.append((name, op, row))
        p.input_records += len(records)
        p.input_bytes += len(body)
        p.tokens_issued += 1
        token = f"{p.incarnation_uuid}:{p.tokens_issued}"
        if p.runtime_status == "Running":
            self._drain_buffer()
        return {"token": token}

    def query(self, sql: str) -> list[dict[str, Any]]:
        """An ad-hoc query over the tables' current contents (see :mod:`.adhoc`)."""
        return run_query(sql, self._controller("query").tables)

    def completion_status(self, token: str) -> dict[str, Any]:
        p = self._controller("completion_status")
        incarnation, _, number = token.rpartition(":")
        if incarnation != p.incarnation_uuid or not number.isdigit():
            raise FelderaError(400, "InvalidCompletionToken", f"Invalid completion token '{token}'", None)
        done = int(number) <= p.tokens_done
        return {"status": "complete" if done else "inprogress", "step": p.steps if done else None}

    def stats(self) -> dict[str, Any]:
        p = self._controller("stats")
        now = self.runtime.clock.now()
        state = {"Running": "Running", "Paused": "Paused"}.get(p.runtime_status, "Paused")
        size = sum(c.size for c in self.storage.checkpoints)
        return {
            "global_metrics": {
                "state": state,
                "bootstrap_in_progress": False,
                "transaction_status": "NoTransaction",
                "transaction_id": 0,
                "transaction_initiators": {"initiated_by_connectors": {}},
                "concurrent_bootstrap_phase": "Inactive",
                "rss_bytes": 50_000_000,
                "memory_pressure": "low",
                "memory_pressure_epoch": 0,
                "cpu_msecs": 10,
                "uptime_msecs": int((now - p.start_wall) * 1000),
                "start_time": int(p.start_wall),
                "incarnation_uuid": p.incarnation_uuid,
                "initial_start_time": int(p.start_wall),
                "storage_bytes": size,
                "storage_mb_secs": 0,
                "runtime_elapsed_msecs": int((now - p.start_wall) * 1000),
                "buffered_input_records": len(p.buffered),
                "buffered_input_bytes": 0,
                "total_input_records": p.input_records,
                "total_input_bytes": p.input_bytes,
                "total_processed_records": p.processed_records,
                "total_processed_bytes": p.input_bytes,
                "total_completed_records": p.processed_records,
                "output_stall_msecs": 0,
                "total_initiated_steps": p.steps,
                "total_completed_steps": p.steps,
                "pipeline_complete": False,
            },
            "inputs": [],
            "outputs": [],
        }

    def table_contents(self) -> dict[str, list[Any]]:
        """The live contents of every table (a sandbox extension for tests)."""
        p = self._controller("tables")
        return copy.deepcopy(p.tables)

    # ------------------------------------------------------------------------------------------------------------
    # Faults
    # ------------------------------------------------------------------------------------------------------------
    def restart_process(self) -> str:
        """The pipeline process dies and comes back: new incarnation, in-memory sync status gone."""
        p = self._process_for("restart")
        live = copy.deepcopy(p.tables) if self.ft_enabled else None
        counters = (p.processed_records, p.steps) if self.ft_enabled else None
        was_standby = not p.left_standby and p.runtime_desired_status == "Standby"
        desired = p.runtime_desired_status
        self.process = None
        self._spawn_process(time.monotonic(), restart_state=(live, counters), standby=was_standby, desired=desired)
        assert self.process is not None
        self._note(f"process restarted as incarnation {self.process.incarnation_uuid}")
        return self.process.incarnation_uuid

    def make_unavailable(self, seconds: float) -> dict[str, float]:
        """The runner loses the process for ``seconds`` (a network partition, a node under pressure): the runtime
        status is ``Unavailable`` and every request to the process is 503 ``PipelineUnavailable``."""
        p = self._process_for("unavailable")
        p.unavailable_until = time.monotonic() + seconds
        self._note(f"process unavailable for {seconds}s")
        return {"seconds": seconds}

    def fail_next(self, what: str, error: str) -> dict[str, str]:
        """Make the process's next ``what`` ("sync" or "checkpoint") fail with ``error``."""
        p = self._process_for("fault")
        if what == "sync":
            p.fail_next_sync = error
        else:
            p.fail_next_checkpoint = error
        return {"armed": what, "error": error}

    # ------------------------------------------------------------------------------------------------------------
    # The clock
    # ------------------------------------------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        self._tick_compile(now)
        self._tick_storage(now)
        self._tick_resources(now)
        if self.process is not None:
            self._tick_process(now, self.process)

    def _tick_compile(self, now: float) -> None:
        if self.program_status not in COMPILING:
            return
        elapsed = (now - self._compile_started) / max(self.runtime.timings.compile_s, 1e-6)
        if elapsed >= 1.0:
            problems = compile_errors(self.program_code)
            if problems:
                self.program_error = {
                    "sql_compilation": {
                        "exit_code": 1,
                        "messages": [
                            {
                                "start_line_number": 1,
                                "start_column": 1,
                                "end_line_number": 1,
                                "end_column": 1,
                                "warning": False,
                                "error_type": "Error parsing SQL",
                                "message": msg,
                                "snippet": self.program_code[:200],
                            }
                            for msg in problems
                        ],
                    },
                    "rust_compilation": None,
                    "system_error": None,
                }
                self._set_program_status("SqlError")
            else:
                self.program_error = {
                    "sql_compilation": {"exit_code": 0, "messages": []},
                    "rust_compilation": {"exit_code": 0, "stdout": "", "stderr": ""},
                    "system_error": None,
                }
                self._set_program_status("Success")
            return
        stage = COMPILING[min(int(elapsed * len(COMPILING)), len(COMPILING) - 1)]
        if stage != self.program_status:
            self._set_program_status(stage)

    def _tick_storage(self, now: float) -> None:
        if self.storage_status == "Clearing" and now >= self._clear_due:
            self.storage = LocalStorage()
            self._set_storage_status("Cleared")

    def _tick_resources(self, now: float) -> None:
        timings = self.runtime.timings
        if self.resources_desired_status == "Provisioned":
            if self.resources_status == "Stopped":
                if self.program_status in COMPILING:
                    return
                if self.program_status != "Success":
                    self._fail_deployment(
                        "ProgramNotCompiled",
                        f"Cannot start the pipeline: its program failed to compile ({self.program_status})",
                    )
                    return
                self._set_resources("Provisioning")
                self._resources_due = now + timings.provision_s
            elif self.resources_status == "Provisioning" and now >= self._resources_due:
                self._set_resources("Provisioned")
                if self.storage_status == "Cleared":
                    self._set_storage_status("InUse")
                self._spawn_process(now)
        else:
            if self.resources_status in ("Provisioning", "Provisioned"):
                self.process = None
                self._set_resources("Stopping")
                self._resources_due = now + timings.stop_s
            elif self.resources_status == "Stopping" and now >= self._resources_due:
                self._set_resources("Stopped")
                self.deployment_initial = None

    def _tick_process(self, now: float, p: ProcessState) -> None:
        if p.phase == "initializing":
            if p.outcome is None or now < p.phase_due:
                return
            kind, value = p.outcome
            p.outcome = None
            if kind == "error":
                self._fail_deployment(*value)
            elif kind == "standby":
                p.phase = "standby"
                p.next_pull = now
                self._set_runtime_status("Standby", reason="pulling the latest checkpoint from object storage")
            elif kind == "replay":
                # A fault-tolerant pipeline replays its log after a restart before its controller answers again.
                p.phase, p.phase_due, p.outcome = "replaying", now + self.runtime.timings.replay_s, ("open", value)
                self._set_runtime_status("Replaying", reason="replaying the journal after a restart")
            else:
                self._open(p, value, now)
        elif p.phase == "replaying":
            if now >= p.phase_due and p.outcome is not None:
                _, value = p.outcome
                p.outcome = None
                self._open(p, value, now)
        elif p.phase == "standby":
            if not p.job_running and now >= p.next_pull:
                if p.activate_to is not None and not p.activation_noticed:
                    # The loop wakes, pulls as usual and only then notices the activation; it sleeps once more
                    # before its final pull (Feldera's controller/sync.rs): one to two pull_intervals in all.
                    p.activation_noticed = True
                    self._submit_pull(p, final=False)
                elif p.activate_to is not None:
                    p.phase = "activating"
                    self._set_runtime_status("Initializing", reason="activating: pulling the newest checkpoint")
                    p.outcome = None
                    p.phase_due = now + self.runtime.timings.initialize_s
                    self._submit_pull(p, final=True)
                else:
                    self._submit_pull(p, final=False)
        elif p.phase == "activating":
            if p.outcome is None or now < p.phase_due:
                return
            kind, value = p.outcome
            p.outcome = None
            if kind == "error":
                self._fail_deployment(*value)
                return
            self.storage.activated = True
            self._open(p, value, now)
        elif p.phase == "bootstrapping":
            if now >= p.phase_due:
                self._enter_ready(p, now)
        elif p.phase in ("ready", "suspending"):
            self._tick_checkpoints(now, p)
            if p.phase == "suspending":
                if (
                    p.suspend_seq is not None
                    and p.checkpoint_success is not None
                    and (p.checkpoint_success >= p.suspend_seq)
                ):
                    self._set_runtime_status("Suspended")
                    self._set_resources_desired("Stopped")
                elif p.checkpoint_failure and p.checkpoint_failure["sequence_number"] == p.suspend_seq:
                    self._fail_deployment("SuspendError", f"suspend failed: {p.checkpoint_failure['error']}")
                return
            self._tick_automatic(now, p)

    def _tick_checkpoints(self, now: float, p: ProcessState) -> None:
        while p.pending_checkpoints and p.pending_checkpoints[0][1] <= now:
            seq, _ = p.pending_checkpoints.pop(0)
            if p.fail_next_checkpoint is not None:
                p.checkpoint_failure = {
                    "sequence_number": seq,
                    "error": p.fail_next_checkpoint,
                    "failed_at": rfc3339(self.runtime.clock.now()),
                }
                p.fail_next_checkpoint = None
                self._note(f"checkpoint {seq} failed")
                continue
            checkpoint = self._make_checkpoint(p)
            p.checkpoint_success = seq
            self._note(f"checkpoint {seq} completed as {checkpoint.uuid}")

    def _tick_automatic(self, now: float, p: ProcessState) -> None:
        ft = self.runtime_config.get("fault_tolerance") or {}
        if self.ft_enabled and p.runtime_status == "Running":
            interval = min(max(int(ft.get("checkpoint_interval_secs") or 60), 1), 3600)
            if now - p.last_auto_checkpoint >= interval:
                p.last_auto_checkpoint = now
                self._make_checkpoint(p)
        sync = self.sync_config()
        push_interval = (sync or {}).get("push_interval")
        if not sync or not push_interval or p.sync_running or p.periodic_push_running:
            return
        newest = self.storage.newest()
        if newest is None or newest.uuid == p.last_synced_uuid:
            return
        if now - p.last_sync_done >= float(push_interval) * self.runtime.timings.interval_scale:
            self._start_push(p, newest, manual=False)

    # ------------------------------------------------------------------------------------------------------------
    # Internals
    # ------------------------------------------------------------------------------------------------------------
    def _note(self, message: str) -> None:
        self.log.append(f"{rfc3339(self.runtime.clock.now())} {message}")

    def _set_resources(self, status: str) -> None:
        self.resources_status = status
        self.resources_status_since = self.runtime.clock.now()

    def _set_resources_desired(self, status: str) -> None:
        self.resources_desired_status = status
        self.resources_desired_status_since = self.runtime.clock.now()

    def _set_storage_status(self, status: str) -> None:
        self.storage_status = status
        self.storage_status_since = self.runtime.clock.now()

    def _set_runtime_status(self, status: str, reason: str | None = None) -> None:
        assert self.process is not None
        self.process.runtime_status = status
        self.process.runtime_status_since = self.runtime.clock.now()
        self.process.reason = reason

    def _set_runtime_desired(self, status: str) -> None:
        assert self.process is not None
        self.process.runtime_desired_status = status
        self.process.runtime_desired_status_since = self.runtime.clock.now()

    def _fail_deployment(self, error_code: str, message: str) -> None:
        self._note(f"deployment failed: {message}")
        self.deployment_error = {"message": message, "error_code": error_code, "details": None}
        if self.resources_desired_status != "Stopped":
            self._set_resources_desired("Stopped")

    def _check_incarnation(self, p: ProcessState, requested: str | None) -> None:
        if requested is not None and requested != p.incarnation_uuid:
            raise errors.incarnation_mismatch(requested, p.incarnation_uuid)

    def _spawn_process(
        self,
        now: float,
        *,
        restart_state: tuple[Any, Any] | None = None,
        standby: bool | None = None,
        desired: str | None = None,
    ) -> None:
        wall = self.runtime.clock.now()
        initial = self.deployment_initial or "running"
        if standby is None:
            standby = initial == "standby"
        if standby:
            desired = "Standby"
        elif desired not in ("Running", "Paused"):
            desired = INITIAL_TO_STATUS.get(initial, "Running")
            if desired == "Standby":
                desired = "Paused"
        p = ProcessState(
            incarnation_uuid=self.runtime.clock.uuid7(),
            start_wall=wall,
            runtime_desired_status=desired,
            runtime_status_since=wall,
            runtime_desired_status_since=wall,
            phase_due=now + self.runtime.timings.initialize_s,
            last_sync_done=now,
            last_auto_checkpoint=now,
        )
        self.process = p
        sync = self.sync_config()
        problem = sync_config_problem(sync) if sync else None
        if problem:
            p.outcome = ("error", ("InvalidSyncConfig", problem))
            return
        if standby:
            if not sync or sync.get("start_from_checkpoint") is None:
                p.outcome = (
                    "error",
                    (
                        "InvalidStandby",
                        "Cannot start in standby mode: standby requires a 'file' storage backend with 'sync' "
                        "configured and 'start_from_checkpoint' set",
                    ),
                )
                return
            if self.storage.activated:
                # Standby is allowed once per storage lifetime; afterwards Feldera opens the local checkpoint and,
                # with no new desired state, falls back to Paused.
                self._note(
                    "Exited standby mode without specifying a new desired state, defaulting to paused "
                    "(the storage was activated before; clear storage to run standby again)"
                )
                p.runtime_desired_status = "Paused"
                p.outcome = ("open", self.storage.newest())
                return
            p.outcome = ("standby", None)
            return
        if restart_state is not None and restart_state[0] is not None:
            live, counters = restart_state
            p.outcome = ("replay", Checkpoint("", self.fingerprint, counters[1], counters[0], live))
            return
        if sync and sync.get("start_from_checkpoint") is not None:
            self._set_runtime_status("Initializing", reason="downloading checkpoint from object storage")
            self._submit_initial_pull(p, sync)
            return
        p.outcome = ("open", self.storage.newest())

    def _open(self, p: ProcessState, checkpoint: Checkpoint | None, now: float) -> None:
        tables: dict[str, list[Any]] = {t: [] for t in self.tables}
        if checkpoint is not None:
            for name, rows in checkpoint.tables.items():
                if name in tables:
                    tables[name] = copy.deepcopy(rows)
            p.processed_records = checkpoint.processed_records
            p.steps = checkpoint.steps
        p.tables = tables
        if checkpoint is not None and checkpoint.uuid and checkpoint.fingerprint != self.fingerprint:
            if self.bootstrap_policy == "reject":
                self._fail_deployment(
                    "BootstrapRejected",
                    "The program changed since the checkpoint was made and bootstrap_policy is 'reject'",
                )
                return
            if self.bootstrap_policy == "await_approval":
                p.phase = "awaiting_approval"
                p.approval_diff = {"program_diff": {"modified_tables": [], "added_tables": [], "removed_tables": []}}
                self._set_runtime_status("AwaitingApproval")
                return
            p.phase = "bootstrapping"
            p.phase_due = now + self.runtime.timings.initialize_s
            self._set_runtime_status("Bootstrapping")
            return
        self._enter_ready(p, now)

    def _enter_ready(self, p: ProcessState, now: float) -> None:
        p.phase = "ready"
        p.approval_diff = None
        target = p.runtime_desired_status if p.runtime_desired_status in ("Running", "Paused") else "Paused"
        if p.runtime_desired_status != target:
            self._set_runtime_desired(target)
        self._set_runtime_status(target)
        p.last_auto_checkpoint = now
        if target == "Running":
            self._drain_buffer()

    def _drain_buffer(self) -> None:
        p = self.process
        if p is None or not p.buffered:
            if p is not None:
                p.tokens_done = p.tokens_issued
            return
        for table, op, row in p.buffered:
            rows = p.tables.setdefault(table, [])
            if op == "insert":
                rows.append(row)
            elif row in rows:
                rows.remove(row)
            p.processed_records += 1
        p.buffered.clear()
        p.steps += 1
        p.tokens_done = p.tokens_issued

    def _request_checkpoint(self) -> int:
        p = self.process
        assert p is not None
        seq = p.next_seq
        p.next_seq += 1
        p.pending_checkpoints.append((seq, time.monotonic() + self.runtime.timings.checkpoint_s))
        self._note(f"checkpoint {seq} requested")
        return seq

    def _make_checkpoint(self, p: ProcessState) -> Checkpoint:
        checkpoint = Checkpoint(
            uuid=self.runtime.clock.uuid7(),
            fingerprint=self.fingerprint,
            steps=p.steps,
            processed_records=p.processed_records,
            tables=copy.deepcopy(p.tables),
        )
        self.storage.add(checkpoint, protected=set(p.sync_running))
        return checkpoint


def _parse_records(body: bytes, array: bool) -> list[Any]:
    text = body.decode() if body else ""
    if not text.strip():
        return []
    if array:
        value = json.loads(text)
        if not isinstance(value, list):
            raise ValueError("expected a JSON array (array=true)")
        return value
    records = []
    for line in text.splitlines():
        if line.strip():
            value = json.loads(line)
            records.extend(value if isinstance(value, list) else [value])
    return records


def _decode_change(record: Any, update_format: str) -> tuple[str, Any]:
    if update_format == "insert_delete":
        if isinstance(record, dict) and "insert" in record:
            return "insert", record["insert"]
        if isinstance(record, dict) and "delete" in record:
            return "delete", record["delete"]
        raise FelderaError(400, "ParseErrors", "insert_delete records need an 'insert' or 'delete' key", None)
    return "insert", record
