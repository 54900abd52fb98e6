"""Setting up sandbox pipelines for the integration tests (plain HTTP, independent of the provider)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from support import PROGRAM, file_storage, sync_config, wait_until

if TYPE_CHECKING:
    from airflow_checkpoint_sync.testing import FelderaSandbox, MotoS3Server


@dataclass
class Feldera:
    """A sandbox, a moto server and a bucket, with helpers to put pipelines in the state a test needs."""

    sandbox: FelderaSandbox
    s3: MotoS3Server
    bucket: str
    api_key: str | None = None
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self.http = httpx.Client(base_url=f"{self.sandbox.url}/v0", headers=headers, timeout=30)

    def pipeline(self, name: str, selector: str = "status") -> dict[str, Any]:
        r = self.http.get(f"/pipelines/{name}", params={"selector": selector})
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        return body

    def create(self, name: str, sync: dict[str, Any] | bool | None = True, **runtime: Any) -> None:
        if sync is True:
            sync = sync_config(self.s3, self.bucket, name)
        runtime_config = {"storage": file_storage(sync or None), **runtime}
        r = self.http.put(
            f"/pipelines/{name}", json={"name": name, "program_code": PROGRAM, "runtime_config": runtime_config}
        )
        assert r.status_code in (200, 201), r.text
        wait_until(lambda: self.pipeline(name), lambda p: p["program_status"] == "Success")

    def start(self, name: str, initial: str = "running") -> None:
        assert self.http.post(f"/pipelines/{name}/start", params={"initial": initial}).status_code == 202
        target = {"running": "Running", "paused": "Paused", "standby": "Standby"}[initial]
        wait_until(lambda: self.pipeline(name), lambda p: p["deployment_status"] == target)

    def ingest(self, name: str, first: int, count: int) -> None:
        rows = [{"id": i, "amount": float(i)} for i in range(first, first + count)]
        r = self.http.post(
            f"/pipelines/{name}/ingress/orders", params={"format": "json", "array": "true"}, content=json.dumps(rows)
        )
        assert r.status_code == 200, r.text

    def running_pipeline(self, name: str, records: int = 0, sync: dict[str, Any] | bool | None = True) -> None:
        self.create(name, sync)
        self.start(name)
        if records:
            self.ingest(name, 0, records)

    def sync_now(self, name: str = "prod", records: int = 0) -> str:
        """Ingest ``records`` more rows into a running pipeline, take a checkpoint and sync it; returns its uuid."""
        if records:
            self.ingest(name, self.processed(name), records)
        before = len(self.sandbox.control.storage(name)["checkpoints"])
        self.http.post(f"/pipelines/{name}/checkpoint")
        wait_until(lambda: self.sandbox.control.storage(name)["checkpoints"], lambda c: len(c) > before)
        uuid = str(self.http.post(f"/pipelines/{name}/checkpoint/sync").json()["checkpoint_uuid"])
        wait_until(lambda: self.catalog(name), lambda c: uuid in c)
        return uuid

    def processed(self, name: str) -> int:
        return int(self.http.get(f"/pipelines/{name}/stats").json()["global_metrics"]["total_processed_records"])

    def catalog(self, name: str) -> list[str]:
        return [entry["uuid"] for entry in self._catalog(name)]

    def catalog_entry(self, name: str, uuid: str) -> dict[str, Any]:
        return next(entry for entry in self._catalog(name) if entry["uuid"] == uuid)

    def _catalog(self, name: str) -> list[dict[str, Any]]:
        key = f"{name}/checkpoints.feldera"
        if key not in self.s3.keys(self.bucket, f"{name}/"):
            return []
        body = self.s3.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        entries: list[dict[str, Any]] = json.loads(body)
        return entries

    def mutating_requests(self) -> list[str]:
        return [f"{r['method']} {r['path']}" for r in self.sandbox.control.mutating_requests()]
