"""Push and pull checkpoints to and from an S3-compatible bucket, the way Feldera's synchronizer lays them out.

Layout under the configured ``bucket`` (``name/prefix``), single host:

- ``owner.json``: the ownership lock, ``{"pipeline_name": "pipeline-<id>"}``; written by the first push, and a push by
  any other pipeline is refused (Feldera PR #6568).
- ``w0-<uuid>.feldera``: state files, one per table per checkpoint.
- ``dependencies/<checkpoint uuid>.json``: the checkpoint's manifest: Feldera's ``CheckpointDependencies``
  (``batches``, ``state_files``), plus what the sandbox needs to pull it back (its metadata, and every file with
  size and sha256).
- ``checkpoints.feldera``: the catalog, written **last**, so a catalog never names a checkpoint whose files are not
  all in place. Like Feldera's checkpointer's, it is the JSON list of ``CheckpointMetadata``, oldest first.

Only loopback endpoints are accepted: nothing the sandbox does may leave the machine.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .clock import uuid7_unix_seconds

if TYPE_CHECKING:
    from collections.abc import Callable

CATALOG = "checkpoints.feldera"
OWNER = "owner.json"
DAY_S = 86400.0


class SyncError(Exception):
    """A push or pull failed; the message is what Feldera would report."""


class CheckpointNotFound(SyncError):
    """The requested checkpoint is in none of the sources."""


@dataclass
class Checkpoint:
    """A checkpoint of a sandbox pipeline: Feldera's metadata plus the table contents it captured."""

    uuid: str
    fingerprint: int
    steps: int
    processed_records: int
    tables: dict[str, list[Any]]
    identifier: str | None = None

    def table_bytes(self) -> dict[str, bytes]:
        return {name: json.dumps(rows, sort_keys=True).encode() for name, rows in sorted(self.tables.items())}

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.table_bytes().values())

    def metadata(self) -> dict[str, Any]:
        """The checkpoint as ``GET /checkpoints`` lists it (``CheckpointMetadata``)."""
        return {
            "uuid": self.uuid,
            "identifier": self.identifier,
            "fingerprint": self.fingerprint,
            "size": self.size,
            "steps": self.steps,
            "processed_records": self.processed_records,
        }


@dataclass(frozen=True)
class BucketPath:
    """``bucket-name[/prefix]`` as Feldera's ``bucket`` field spells it."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, value: str) -> BucketPath:
        if "://" in value:
            raise SyncError(f"bucket '{value}' must be 'bucket-name[/prefix]' without a URL scheme")
        name, _, prefix = value.strip("/").partition("/")
        if not name:
            raise SyncError(f"bucket '{value}' has no bucket name")
        return cls(name, prefix.strip("/"))

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def __str__(self) -> str:
        return f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket


@dataclass
class SyncTarget:
    """The connection part of a sync config: where the bucket is and how to sign requests."""

    endpoint: str | None
    region: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    env_credentials: tuple[str, str] | None = None
    _client: Any = field(default=None, repr=False)

    @classmethod
    def from_sync_config(cls, sync: dict[str, Any], env_credentials: tuple[str, str] | None) -> SyncTarget:
        return cls(
            endpoint=sync.get("endpoint"),
            region=sync.get("region"),
            access_key=sync.get("access_key"),
            secret_key=sync.get("secret_key"),
            env_credentials=env_credentials,
        )

    def client(self) -> Any:
        if self._client is None:
            endpoint = require_loopback(self.endpoint)
            key, secret = self.access_key, self.secret_key
            if not key and not secret:
                # rclone's fallback: the process environment (RCLONE_S3_*), then whatever the platform provides;
                # the sandbox's "platform credentials" stand in for an IAM role or workload identity.
                env_key, env_secret = (
                    os.environ.get("RCLONE_S3_ACCESS_KEY_ID"),
                    os.environ.get("RCLONE_S3_SECRET_ACCESS_KEY"),
                )
                if env_key and env_secret:
                    key, secret = env_key, env_secret
                elif self.env_credentials:
                    key, secret = self.env_credentials
            config_kwargs: dict[str, Any] = {
                "s3": {"addressing_style": "path"},
                "retries": {"max_attempts": 2, "mode": "standard"},
                "connect_timeout": 2,
                "read_timeout": 15,
            }
            if not key:
                config_kwargs["signature_version"] = UNSIGNED
            self._client = boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint,
                region_name=self.region or "us-east-1",
                aws_access_key_id=key or None,
                aws_secret_access_key=secret or None,
                config=Config(**config_kwargs),
            )
        return self._client


def require_loopback(endpoint: str | None) -> str:
    """The endpoint, if it is an http(s) URL on this machine's loopback; otherwise a SyncError saying why."""
    if not endpoint:
        raise SyncError(
            "the Feldera sandbox only talks to object stores on loopback: set 'endpoint' in the sync config "
            "to an http://127.0.0.1:<port> URL"
        )
    parsed = urlparse(endpoint)
    host = parsed.hostname or ""
    if parsed.scheme not in ("http", "https") or not host:
        raise SyncError(f"endpoint '{endpoint}' is not an http(s) URL")
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise SyncError(
                f"the Feldera sandbox refuses endpoint '{endpoint}': only loopback addresses (127.0.0.0/8, ::1, "
                "localhost) are allowed, so nothing leaves this machine"
            )
    return endpoint


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', str(exc))}"
    return f"{type(exc).__name__}: {exc}"


class CheckpointStore:
    """Feldera's synchronizer, reduced to what the sandbox needs: push, pull, list, retention."""

    def __init__(self, target: SyncTarget) -> None:
        self._target = target

    # -- reads ---------------------------------------------------------------------------------------------
    def catalog(self, path: BucketPath) -> list[dict[str, Any]] | None:
        """The catalog's entries (oldest first), or None when the location holds no catalog."""
        body = self._get(path, CATALOG, missing_ok=True)
        if body is None:
            return None
        document = json.loads(body)
        # Locations an earlier sandbox wrote hold {"checkpoints": [...]}; Feldera's own catalog is the bare list.
        entries: list[dict[str, Any]] = document["checkpoints"] if isinstance(document, dict) else document
        return entries

    def list_remote(self, path: BucketPath) -> list[str]:
        return [entry["uuid"] for entry in self.catalog(path) or []]

    def pull(self, path: BucketPath, wanted: str) -> Checkpoint:
        """Download checkpoint ``wanted`` ("latest" or a uuid) from ``path``; CheckpointNotFound if absent."""
        entries = self.catalog(path)
        if not entries:
            raise CheckpointNotFound(f"no checkpoint found in s3://{path}")
        if wanted == "latest":
            entry = max(entries, key=lambda e: e["uuid"])
        else:
            matching = [e for e in entries if e["uuid"] == wanted]
            if not matching:
                raise CheckpointNotFound(f"checkpoint {wanted} not found in s3://{path}")
            entry = matching[0]
        manifest = json.loads(self._get(path, f"dependencies/{entry['uuid']}.json") or b"{}")
        tables: dict[str, list[Any]] = {}
        for item in manifest["files"]:
            body = self._get(path, item["key"])
            if body is None or len(body) != item["size"] or hashlib.sha256(body).hexdigest() != item["sha256"]:
                raise SyncError(f"checkpoint {entry['uuid']} in s3://{path}: file {item['key']} is missing or corrupt")
            tables[item["table"]] = json.loads(body)
        meta = manifest["metadata"]
        return Checkpoint(
            uuid=meta["uuid"],
            fingerprint=meta["fingerprint"],
            steps=meta.get("steps") or 0,
            processed_records=meta.get("processed_records") or 0,
            tables=tables,
            identifier=meta.get("identifier"),
        )

    # -- writes --------------------------------------------------------------------------------------------
    def push(
        self,
        path: BucketPath,
        checkpoint: Checkpoint,
        owner: str,
        *,
        now: float,
        retention_min_count: int,
        retention_min_age_days: int,
        still_wanted: Callable[[], bool] = lambda: True,
    ) -> list[str]:
        """Upload ``checkpoint``: ownership check, state files, manifest, then the catalog; then retention.

        ``still_wanted`` is asked before the catalog is written: a push whose process died stops there, leaving
        uncatalogued files behind exactly as a killed Feldera would. Returns the uuids retention deleted.
        """
        self._claim(path, owner)
        files = []
        for table, body in checkpoint.table_bytes().items():
            key = f"w0-{_file_id(checkpoint.uuid, table)}.feldera"
            self._put(path, key, body)
            files.append({"key": key, "table": table, "size": len(body), "sha256": hashlib.sha256(body).hexdigest()})
        # Feldera's CheckpointDependencies (batches, state_files), and what the sandbox needs to pull it back.
        batches = [item["key"] for item in files]
        manifest = {"batches": batches, "state_files": [], "metadata": checkpoint.metadata(), "files": files}
        self._put(path, f"dependencies/{checkpoint.uuid}.json", json.dumps(manifest).encode())
        if not still_wanted():
            raise SyncError("the pipeline process exited while the checkpoint was being pushed")
        entries = [e for e in self.catalog(path) or [] if e["uuid"] != checkpoint.uuid]
        entries.append(checkpoint.metadata())
        entries.sort(key=lambda e: e["uuid"])
        self._write_catalog(path, entries)
        return self._apply_retention(path, entries, now, retention_min_count, retention_min_age_days)

    def _claim(self, path: BucketPath, owner: str) -> None:
        body = self._get(path, OWNER, missing_ok=True)
        if body is None:
            self._put(path, OWNER, json.dumps({"pipeline_name": owner}).encode())
            return
        current = json.loads(body).get("pipeline_name")
        if current != owner:
            raise SyncError(
                f"Bucket location 's3://{path}' is already owned by pipeline '{current}'. "
                "Refusing to write checkpoint data."
            )

    def _apply_retention(
        self, path: BucketPath, entries: list[dict[str, Any]], now: float, min_count: int, min_age_days: int
    ) -> list[str]:
        # Feldera's rule: delete only while more than min_count remain AND only checkpoints at least
        # min_age days old; each floor protects on its own.
        keep = list(entries)
        doomed = []
        for entry in sorted(entries, key=lambda e: e["uuid"]):
            if len(keep) <= min_count:
                break
            if now - uuid7_unix_seconds(entry["uuid"]) >= min_age_days * DAY_S:
                keep.remove(entry)
                doomed.append(entry["uuid"])
        if not doomed:
            return []
        # The catalog stops naming them before their files go, so it never names missing data.
        self._write_catalog(path, keep)
        for uuid in doomed:
            manifest_key = f"dependencies/{uuid}.json"
            manifest = json.loads(self._get(path, manifest_key, missing_ok=True) or b'{"files": []}')
            for item in manifest["files"]:
                self._delete(path, item["key"])
            self._delete(path, manifest_key)
        return doomed

    def _write_catalog(self, path: BucketPath, entries: list[dict[str, Any]]) -> None:
        self._put(path, CATALOG, json.dumps(entries).encode())

    # -- S3 ------------------------------------------------------------------------------------------------
    def _get(self, path: BucketPath, name: str, *, missing_ok: bool = False) -> bytes | None:
        try:
            response = self._target.client().get_object(Bucket=path.bucket, Key=path.key(name))
            body: bytes = response["Body"].read()
            return body
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404") and missing_ok:
                return None
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise CheckpointNotFound(f"s3://{path}/{name} not found") from exc
            raise SyncError(f"reading s3://{path}/{name}: {_describe(exc)}") from exc
        except BotoCoreError as exc:
            raise SyncError(f"reading s3://{path}/{name}: {_describe(exc)}") from exc

    def _put(self, path: BucketPath, name: str, body: bytes) -> None:
        try:
            self._target.client().put_object(Bucket=path.bucket, Key=path.key(name), Body=body)
        except (ClientError, BotoCoreError) as exc:
            raise SyncError(f"writing s3://{path}/{name}: {_describe(exc)}") from exc

    def _delete(self, path: BucketPath, name: str) -> None:
        try:
            self._target.client().delete_object(Bucket=path.bucket, Key=path.key(name))
        except (ClientError, BotoCoreError) as exc:
            raise SyncError(f"deleting s3://{path}/{name}: {_describe(exc)}") from exc


def _file_id(checkpoint_uuid: str, table: str) -> str:
    return hashlib.sha256(f"{checkpoint_uuid}/{table}".encode()).hexdigest()[:32]
