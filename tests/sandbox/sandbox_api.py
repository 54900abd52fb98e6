"""A plain-HTTP driver for the sandbox's Feldera API, so these tests depend on neither the provider nor `feldera`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx
from support import PROGRAM, file_storage, wait_until

if TYPE_CHECKING:
    from airflow_checkpoint_sync.testing import FelderaSandbox, MotoS3Server


class Api:
    """Feldera's REST API, the few calls these tests need, with waits on the sandbox's fast clock."""

    def __init__(self, sandbox: FelderaSandbox) -> None:
        self.sandbox = sandbox
        self.http = httpx.Client(base_url=f"{sandbox.url}/v0", timeout=30)

    def create(self, name: str, sync: dict[str, Any] | None = None, **runtime: Any) -> dict[str, Any]:
        runtime_config = {"storage": file_storage(sync), **runtime}
        r = self.http.put(
            f"/pipelines/{name}",
            json={"name": name, "program_code": PROGRAM, "runtime_config": runtime_config},
        )
        assert r.status_code in (200, 201), r.text
        return wait_until(lambda: self.pipeline(name), lambda p: p["program_status"] == "Success")

    def set_sync(self, name: str, sync: dict[str, Any]) -> None:
        runtime_config = self.pipeline(name, "all")["runtime_config"]
        runtime_config["storage"] = file_storage(sync)
        r = self.http.patch(f"/pipelines/{name}", json={"runtime_config": runtime_config})
        assert r.status_code == 200, r.text

    def pipeline(self, name: str, selector: str = "status") -> dict[str, Any]:
        r = self.http.get(f"/pipelines/{name}", params={"selector": selector})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def status(self, name: str) -> str:
        return str(self.pipeline(name)["deployment_status"])

    def wait_status(self, name: str, *statuses: str, timeout: float = 20) -> dict[str, Any]:
        return wait_until(lambda: self.pipeline(name), lambda p: p["deployment_status"] in statuses, timeout)

    def start(self, name: str, initial: str = "running", expect: str | None = None) -> dict[str, Any]:
        r = self.http.post(f"/pipelines/{name}/start", params={"initial": initial})
        assert r.status_code == 202, r.text
        target = expect or {"running": "Running", "paused": "Paused", "standby": "Standby"}[initial]

        def settled(p: dict[str, Any]) -> bool:
            # Reached the target, or gave up: stopped again with desired Stopped (a failed start).
            failed = p["deployment_status"] == "Stopped" and p["deployment_desired_status"] == "Stopped"
            return bool(p["deployment_status"] == target if target != "Stopped" else failed) or failed

        return wait_until(lambda: self.pipeline(name), settled)

    def stop(self, name: str, force: bool = True) -> None:
        r = self.http.post(f"/pipelines/{name}/stop", params={"force": str(force).lower()})
        assert r.status_code == 202, r.text
        self.wait_status(name, "Stopped")

    def clear(self, name: str) -> None:
        r = self.http.post(f"/pipelines/{name}/clear")
        assert r.status_code == 202, r.text
        wait_until(lambda: self.pipeline(name), lambda p: p["storage_status"] == "Cleared")

    def ingest(self, name: str, first: int, count: int) -> None:
        rows = [{"id": i, "amount": float(i)} for i in range(first, first + count)]
        r = self.http.post(
            f"/pipelines/{name}/ingress/orders",
            params={"format": "json", "array": "true"},
            content=json.dumps(rows),
        )
        assert r.status_code == 200, r.text

    def processed(self, name: str) -> int:
        r = self.http.get(f"/pipelines/{name}/stats")
        assert r.status_code == 200, r.text
        return int(r.json()["global_metrics"]["total_processed_records"])

    def checkpoint(self, name: str) -> int:
        r = self.http.post(f"/pipelines/{name}/checkpoint")
        assert r.status_code == 200, r.text
        seq = int(r.json()["checkpoint_sequence_number"])
        incarnation = r.json()["incarnation_uuid"]
        wait_until(
            lambda: self.http.get(
                f"/pipelines/{name}/checkpoint_status", params={"incarnation_uuid": incarnation}
            ).json(),
            lambda s: s["success"] is not None and s["success"] >= seq,
        )
        return seq

    def sync(self, name: str) -> tuple[str, dict[str, Any]]:
        """POST /checkpoint/sync and wait until its uuid is in success or failure; returns (uuid, sync_status)."""
        r = self.http.post(f"/pipelines/{name}/checkpoint/sync")
        assert r.status_code == 202, r.text
        uuid, incarnation = r.json()["checkpoint_uuid"], r.json()["incarnation_uuid"]
        status = wait_until(
            lambda: self.sync_status(name, incarnation),
            # With `running`, an earlier attempt's failure for the same uuid is not mistaken for this one's result.
            lambda s: (
                uuid not in s.get("running", []) and (uuid == s["success"] or uuid == (s["failure"] or {}).get("uuid"))
            ),
        )
        return uuid, status

    def sync_status(self, name: str, incarnation: str | None = None) -> dict[str, Any]:
        params = {"incarnation_uuid": incarnation} if incarnation else {}
        r = self.http.get(f"/pipelines/{name}/checkpoint/sync_status", params=params)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def checkpoint_and_sync(self, name: str) -> str:
        self.checkpoint(name)
        uuid, status = self.sync(name)
        assert status["success"] == uuid, status
        return uuid


def catalog(s3: MotoS3Server, bucket: str, prefix: str) -> list[str]:
    body = s3.client().get_object(Bucket=bucket, Key=f"{prefix}/checkpoints.feldera")["Body"].read()
    return [entry["uuid"] for entry in json.loads(body)]
