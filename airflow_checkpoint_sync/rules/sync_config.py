"""Feldera's checkpoint-sync configuration, validated, and merged into a runtime config without touching the rest.

Pure: no I/O, no Airflow. Field names, meanings and defaults are Feldera's (``SyncConfig`` in
``crates/feldera-types/src/config.rs``); a field left as None is not sent, so Feldera applies its own default.
"""

from __future__ import annotations

import contextlib
import copy
import re
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_checkpoint_sync.exceptions import SECRET_SYNC_FIELDS, SyncConfigError
from airflow_checkpoint_sync.rules.locations import normalize_location
from airflow_checkpoint_sync.rules.status import is_checkpoint_uuid

if TYPE_CHECKING:
    from collections.abc import Mapping

U32_MAX = 2**32 - 1
U8_MAX = 255
SIZE = re.compile(r"^[0-9]+(\.[0-9]+)?[kMGT]?$")


#: What each sync field means when it is left out (Feldera's ``SyncConfig`` and rclone's defaults). Feldera returns
#: the sync block normalized: every field present, the optional ones as null. Two blocks say the same when every
#: field means the same once these are applied.
EFFECTIVE_DEFAULTS: dict[str, Any] = {
    "endpoint": None,
    "region": None,
    "provider": "Other",
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
    "transfers": 20,
    "checkers": 20,
    "ignore_checksum": False,
    "multi_thread_streams": 10,
    "multi_thread_cutoff": "100M",
    "upload_concurrency": 10,
    "optimize_download_resources": True,
    "flags": None,
}


def effective_sync(sync: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What a sync block means: every known field with its default applied; keys Feldera does not know dropped
    (it drops them too). The form in which two sync blocks are compared."""
    if sync is None:
        return None
    meaning = {name: default if sync.get(name) is None else sync[name] for name, default in EFFECTIVE_DEFAULTS.items()}
    meaning["bucket"] = sync.get("bucket")
    for name in ("bucket", "read_bucket"):
        # b/p/ and b/p are one location; a spelling Feldera would not take is compared as it is.
        with contextlib.suppress(ValueError):
            meaning[name] = normalize_location(meaning[name]) if meaning[name] is not None else None
    if meaning["flags"] is not None:
        meaning["flags"] = list(meaning["flags"])
    return meaning


@dataclass(frozen=True)
class SyncConfig:
    """Where a pipeline pushes and pulls its checkpoints (Feldera's ``storage.backend.config.sync``).

    :param bucket: ``bucket-name[/prefix]``, without ``s3://``: the pipeline's own read-write location.
    :param endpoint: the S3 endpoint URL, for S3-compatible stores (MinIO, GCS interoperability, ...).
    :param region: the bucket's region; leave empty for MinIO.
    :param provider: rclone's S3 provider name (``AWS``, ``Minio``, ``GCS``, ``Other``, ...); Feldera's default is
        ``Other``.
    :param access_key: static access key; omit both keys to let Feldera use its own environment credentials.
    :param secret_key: static secret key.
    :param start_from_checkpoint: on start, restore ``"latest"`` or this checkpoint uuid.
    :param fail_if_no_checkpoint: fail the start when the checkpoint is not found (Feldera's default: False, start
        empty).
    :param standby: deprecated by Feldera and rejected when True: start with ``initial="standby"`` instead.
    :param pull_interval: seconds between pulls in standby (Feldera's default 10).
    :param push_interval: seconds between automatic pushes, from the end of the previous one (off by default).
    :param retention_min_count: never delete remote checkpoints while at most this many remain (default 10).
    :param retention_min_age: never delete remote checkpoints younger than this many days (default 30).
    :param read_bucket: a read-only fallback source (another pipeline's ``bucket``); never written.
    :param transfers: rclone parallel file transfers (1-255).
    :param checkers: rclone parallel checkers (1-255).
    :param ignore_checksum: compare sizes only after a transfer.
    :param multi_thread_streams: streams per multi-threaded download (1-255).
    :param multi_thread_cutoff: size above which downloads are multi-threaded, e.g. ``"100M"`` (suffix k, M, G or T).
    :param upload_concurrency: parts in flight per multipart upload (1-255).
    :param optimize_download_resources: scale transfers to the CPU count during pulls (Feldera's default True).
    :param flags: extra rclone flags, each starting with ``--``.
    """

    bucket: str
    endpoint: str | None = None
    region: str | None = None
    provider: str | None = None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    start_from_checkpoint: str | None = None
    fail_if_no_checkpoint: bool | None = None
    standby: bool | None = None
    pull_interval: int | None = None
    push_interval: int | None = None
    retention_min_count: int | None = None
    retention_min_age: int | None = None
    read_bucket: str | None = None
    transfers: int | None = None
    checkers: int | None = None
    ignore_checksum: bool | None = None
    multi_thread_streams: int | None = None
    multi_thread_cutoff: str | None = None
    upload_concurrency: int | None = None
    optimize_download_resources: bool | None = None
    flags: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        # Stored in the one spelling every comparison uses (a frozen dataclass: set through object).
        bucket = _check_bucket("bucket", self.bucket)
        if self.read_bucket is not None:
            read_bucket = _check_bucket("read_bucket", self.read_bucket)
            if read_bucket == bucket:
                raise SyncConfigError(
                    "read_bucket",
                    self.read_bucket,
                    "it must point to a different location than "
                    "bucket (Feldera never writes read_bucket; bucket is this pipeline's own)",
                )
            object.__setattr__(self, "read_bucket", read_bucket)
        object.__setattr__(self, "bucket", bucket)
        if self.endpoint is not None:
            parts = urlsplit(self.endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise SyncConfigError("endpoint", self.endpoint, "an http:// or https:// URL of an S3 endpoint")
        for name in ("region", "provider"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise SyncConfigError(name, value, "a non-empty string")
        if (self.access_key is None) != (self.secret_key is None):
            raise SyncConfigError(
                "secret_key" if self.secret_key is None else "access_key",
                None,
                "give both access_key and secret_key, or neither (Feldera's own credentials)",
            )
        if self.start_from_checkpoint is not None and not (
            self.start_from_checkpoint == "latest" or is_checkpoint_uuid(self.start_from_checkpoint)
        ):
            raise SyncConfigError(
                "start_from_checkpoint",
                self.start_from_checkpoint,
                "'latest' or a checkpoint uuid (a UUIDv7) in lower-case canonical form",
            )
        if self.standby:
            raise SyncConfigError(
                "standby",
                True,
                "Feldera rejects it (deprecated); start the pipeline with "
                "initial='standby' instead, e.g. RestoreCheckpointOperator(initial='standby')",
            )
        for name in ("fail_if_no_checkpoint", "standby", "ignore_checksum", "optimize_download_resources"):
            _check_bool(name, getattr(self, name))
        _check_int("pull_interval", self.pull_interval, 1, U32_MAX, "seconds")
        _check_int("push_interval", self.push_interval, 1, U32_MAX, "seconds")
        _check_int("retention_min_count", self.retention_min_count, 0, U32_MAX, "checkpoints")
        _check_int("retention_min_age", self.retention_min_age, 0, U32_MAX, "days")
        for name in ("transfers", "checkers", "multi_thread_streams", "upload_concurrency"):
            _check_int(name, getattr(self, name), 1, U8_MAX, "")
        if self.multi_thread_cutoff is not None and not (
            isinstance(self.multi_thread_cutoff, str) and SIZE.match(self.multi_thread_cutoff)
        ):
            raise SyncConfigError(
                "multi_thread_cutoff",
                self.multi_thread_cutoff,
                "a size such as '100M', '1G' or '500k' (suffix k, M, G or T)",
            )
        if self.flags is not None:
            if isinstance(self.flags, str) or not all(isinstance(f, str) and f.startswith("--") for f in self.flags):
                raise SyncConfigError("flags", self.flags, "a list of rclone flags, each starting with '--'")
            object.__setattr__(self, "flags", tuple(self.flags))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SyncConfig:
        """Build from a ``sync`` block as Feldera stores it; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SyncConfigError(unknown[0], values[unknown[0]], f"not a Feldera sync setting; known: {sorted(known)}")
        if "bucket" not in values:
            raise SyncConfigError("bucket", None, "required: 'bucket-name[/prefix]'")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The ``sync`` block Feldera expects: only the fields that were set."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def redacted(self) -> dict[str, Any]:
        """:meth:`to_dict` with the keys hidden, for logs and task results."""
        return {k: ("***" if k in SECRET_SYNC_FIELDS else v) for k, v in self.to_dict().items()}


def _check_bucket(name: str, value: Any) -> str:
    try:
        return normalize_location(value)
    except ValueError as exc:
        raise SyncConfigError(name, value, str(exc)) from None


def _check_bool(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, bool):
        raise SyncConfigError(name, value, "true or false")


def _check_int(name: str, value: Any, low: int, high: int, unit: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SyncConfigError(name, value, f"a whole number from {low} to {high}{' ' + unit if unit else ''}")


@dataclass(frozen=True)
class MergedConfig:
    """The result of :func:`merge_sync_config`."""

    runtime_config: dict[str, Any]
    changed: bool
    warnings: tuple[str, ...] = ()


def merge_sync_config(runtime_config: Mapping[str, Any] | None, sync: SyncConfig) -> MergedConfig:
    """A copy of ``runtime_config`` whose ``storage.backend.config.sync`` is ``sync`` and nothing else differs.

    Feldera's manager does not merge a PATCHed runtime config, so the whole config is written back: every other
    runtime and storage field, including keys unknown to this provider, is kept as it was. A ``default`` (or
    missing) backend becomes ``file``, the only backend with sync; an ``object`` backend cannot sync and is an error.
    """
    merged: dict[str, Any] = copy.deepcopy(dict(runtime_config or {}))
    storage = merged.get("storage")
    if storage is None:
        # storage null means storage is off; sync needs it, so turn it on with the file backend.
        storage = {}
    elif not isinstance(storage, dict):
        raise SyncConfigError("runtime_config.storage", storage, "an object (Feldera's StorageOptions)")
    backend = storage.get("backend") or {"name": "default"}
    name = backend.get("name")
    if name == "object":
        raise SyncConfigError(
            "runtime_config.storage.backend.name",
            name,
            "checkpoint sync needs the 'file' (or 'default') storage backend; the 'object' backend has no sync",
        )
    if name not in ("default", "file"):
        raise SyncConfigError("runtime_config.storage.backend.name", name, "'default' or 'file'")
    if name == "default":
        backend = {**{k: v for k, v in backend.items() if k != "name"}, "name": "file", "config": {}}
    config = backend.get("config")
    if config is None:
        config = {}
    elif not isinstance(config, dict):
        raise SyncConfigError("runtime_config.storage.backend.config", config, "an object (FileBackendConfig)")
    backend = {**backend, "config": {**config, "sync": sync.to_dict()}}
    merged["storage"] = {**storage, "backend": backend}
    warnings = []
    ft = merged.get("fault_tolerance")
    ft = ft if isinstance(ft, dict) else {}
    if sync.push_interval is not None and ft.get("model", "none") not in (None, "none"):
        interval = ft.get("checkpoint_interval_secs") or 60
        if isinstance(interval, int) and sync.push_interval < interval:
            warnings.append(
                f"push_interval={sync.push_interval}s is shorter than the fault-tolerance checkpoint interval "
                f"({interval}s): pushes will often find no new checkpoint to send"
            )
    return MergedConfig(merged, changed=_meaning(merged) != _meaning(runtime_config), warnings=tuple(warnings))


def _meaning(runtime_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """``runtime_config`` with its sync block in :func:`effective_sync` form (Feldera returns it normalized)."""
    compared: dict[str, Any] = copy.deepcopy(dict(runtime_config or {}))
    config = ((compared.get("storage") or {}).get("backend") or {}).get("config")
    if isinstance(config, dict) and isinstance(config.get("sync"), dict):
        config["sync"] = effective_sync(config["sync"])
    return compared


def current_sync(runtime_config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``sync`` block of a runtime config, if it has one."""
    backend = ((runtime_config or {}).get("storage") or {}).get("backend") or {}
    if backend.get("name") != "file":
        return None
    sync = (backend.get("config") or {}).get("sync")
    return sync if isinstance(sync, dict) else None
