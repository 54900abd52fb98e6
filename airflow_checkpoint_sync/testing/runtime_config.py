"""Runtime configs as Feldera's manager keeps them: the defaults it fills in, and what it checks when one is written.

Pure: no sandbox state. Feldera re-serializes a written ``runtime_config`` from its types, so ``GET`` returns every
field it knows (defaults filled in, nulls included) and drops keys it does not know.
"""

from __future__ import annotations

import copy
import uuid as uuidlib
from typing import TYPE_CHECKING, Any

from .errors import FelderaError

if TYPE_CHECKING:
    from .runtime import Runtime

DEFAULT_RUNTIME_CONFIG: dict[str, Any] = {
    "workers": 8,
    "hosts": 1,
    "storage": {
        "backend": {"name": "default"},
        "min_storage_bytes": None,
        "min_step_storage_bytes": None,
        "compression": "default",
        "cache_mib": None,
    },
    "fault_tolerance": {"model": "none", "checkpoint_interval_secs": 60},
    "cpu_profiler": True,
    "tracing": False,
    "tracing_endpoint_jaeger": "127.0.0.1:6831",
    "min_batch_size_records": 0,
    "max_buffering_delay_usecs": 0,
    "resources": {
        "cpu_cores_min": None,
        "cpu_cores_max": None,
        "memory_mb_min": None,
        "memory_mb_max": None,
        "storage_mb_max": None,
        "storage_class": None,
        "service_account_name": None,
        "namespace": None,
    },
    "clock_resolution_usecs": 1000000,
    "pin_cpus": [],
    "provisioning_timeout_secs": None,
    "max_parallel_connector_init": None,
    "init_containers": None,
    "checkpoint_during_suspend": True,
    "http_workers": None,
    "io_workers": None,
    "dev_tweaks": {},
    "logging": None,
    "env": {},
}


#: Feldera's ``SyncConfig`` as the manager serializes it: all 22 fields, the optional ones null
#: (``crates/feldera-types/src/config.rs``).
SYNC_FIELDS: dict[str, Any] = {
    "bucket": None,
    "endpoint": None,
    "region": None,
    "provider": None,
    "access_key": None,
    "secret_key": None,
    "start_from_checkpoint": None,
    "fail_if_no_checkpoint": False,
    "standby": False,
    "pull_interval": 10,
    "push_interval": None,
    "retention_min_count": 10,
    "retention_min_age": 30,
    "read_bucket": None,
    "transfers": None,
    "checkers": None,
    "ignore_checksum": None,
    "multi_thread_streams": None,
    "multi_thread_cutoff": None,
    "upload_concurrency": None,
    "optimize_download_resources": True,
    "flags": None,
}


def with_runtime_defaults(runtime_config: dict[str, Any] | None) -> dict[str, Any]:
    """The runtime config as the manager stores and returns it: re-serialized from its types, so every field it
    knows has a value (its default when not given, nulls included) and keys it does not know are dropped."""
    merged = copy.deepcopy(DEFAULT_RUNTIME_CONFIG)
    for key, value in (runtime_config or {}).items():
        if key in DEFAULT_RUNTIME_CONFIG:
            merged[key] = copy.deepcopy(value)
    storage = merged.get("storage")
    if isinstance(storage, dict):
        merged["storage"] = {**DEFAULT_RUNTIME_CONFIG["storage"], **storage}
        backend = merged["storage"].get("backend")
        config = backend.get("config") if isinstance(backend, dict) else None
        if isinstance(config, dict) and isinstance(config.get("sync"), dict):
            sync = config["sync"]
            config["sync"] = {name: sync.get(name, default) for name, default in SYNC_FIELDS.items()}
    return merged


def validate_runtime_config(runtime_config: dict[str, Any]) -> None:
    """What Feldera checks when a runtime config is written: the shapes the sandbox relies on."""
    storage = runtime_config.get("storage")
    if storage is None:
        return
    if not isinstance(storage, dict):
        raise FelderaError(400, "InvalidRuntimeConfig", "runtime_config.storage must be an object or null")
    backend = storage.get("backend") or {"name": "default"}
    name = backend.get("name")
    if name not in ("default", "file", "object"):
        raise FelderaError(
            400,
            "InvalidRuntimeConfig",
            f"unknown storage backend '{name}' (expected default, file or object)",
        )
    sync = (backend.get("config") or {}).get("sync") if name == "file" else None
    if sync is None:
        return
    if not isinstance(sync, dict) or not isinstance(sync.get("bucket"), str):
        raise FelderaError(400, "InvalidRuntimeConfig", "storage.backend.config.sync.bucket is required")
    start = sync.get("start_from_checkpoint")
    if start is not None and start != "latest":
        try:
            uuidlib.UUID(str(start))
        except ValueError:
            raise FelderaError(
                400,
                "InvalidRuntimeConfig",
                f"storage.backend.config.sync.start_from_checkpoint: invalid value '{start}': expected 'latest' "
                "or a UUID",
            ) from None


def sync_config_problem(sync: dict[str, Any]) -> str | None:
    """``SyncConfig::validate``: what makes a pipeline with this sync config fail to start."""
    if sync.get("standby"):
        return (
            "invalid sync config: 'standby' is deprecated and may not be set to true; start the pipeline with "
            "'/start?initial=standby' instead"
        )
    read_bucket = sync.get("read_bucket")
    if read_bucket is not None and read_bucket.strip("/") == str(sync.get("bucket", "")).strip("/"):
        return "invalid sync config: 'read_bucket' must point to a different location than 'bucket'"
    return None


def check_edition_allows(runtime: Runtime, runtime_config: dict[str, Any]) -> None:
    """Fault tolerance is an enterprise feature: the open-source edition refuses a config that asks for it."""
    model = (runtime_config.get("fault_tolerance") or {}).get("model", "none")
    if model not in (None, "none"):
        runtime.require_enterprise("fault tolerance")
