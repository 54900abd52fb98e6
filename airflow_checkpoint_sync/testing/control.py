"""A small client for the sandbox's ``/sandbox`` control API, usable in-process or against ``serve``."""

from __future__ import annotations

from typing import Any

import httpx


class SandboxControl:
    """Drive a running sandbox: inject faults, restart pipeline processes, move the clock, read the request log."""

    def __init__(self, url: str, timeout: float = 10.0, verify: bool = True) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout
        self._verify = verify

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.request(
            method, f"{self.url}/sandbox{path}", json=body, timeout=self._timeout, verify=self._verify
        )
        if response.status_code >= 400:
            raise RuntimeError(f"sandbox control {method} {path} failed: {response.status_code} {response.text}")
        return response.json()

    def fail(
        self,
        path: str,
        *,
        method: str = "*",
        status: int = 503,
        count: int = 1,
        error_code: str | None = None,
        message: str | None = None,
        retry_after: float | None = None,
        skip: int = 0,
    ) -> dict[str, Any]:
        """Answer the next ``count`` requests matching ``method`` and the regex ``path`` (after the first ``skip``
        of them) with ``status``."""
        return self.add_fault(
            path=path,
            method=method,
            kind="status",
            status=status,
            count=count,
            skip=skip,
            error_code=error_code,
            message=message,
            retry_after=retry_after,
        )

    def drop(self, path: str, *, method: str = "*", count: int = 1, after: bool = False) -> dict[str, Any]:
        """Drop the connection of the next matching requests; ``after=True`` handles the request first."""
        return self.add_fault(path=path, method=method, kind="drop_after" if after else "drop_before", count=count)

    def restart_on(self, path: str, *, method: str = "*", count: int = 1, skip: int = 0) -> dict[str, Any]:
        """Restart the pipeline named in ``path`` when the next matching request (after ``skip`` of them) arrives,
        then handle it."""
        return self.add_fault(path=path, method=method, kind="restart", count=count, skip=skip)

    def delay(self, path: str, seconds: float, *, method: str = "*", count: int = 1) -> dict[str, Any]:
        """Hold the next matching requests for ``seconds`` before handling them."""
        return self.add_fault(path=path, method=method, kind="delay", delay_s=seconds, count=count)

    def add_fault(self, **rule: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/faults", rule)
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/faults")
        return result

    def restart(self, pipeline: str) -> str:
        """Kill and restart the pipeline's process; returns the new ``incarnation_uuid``."""
        result: str = self._call("POST", f"/pipelines/{pipeline}/restart")["incarnation_uuid"]
        return result

    def unavailable(self, pipeline: str, seconds: float) -> None:
        """Make the pipeline's process unreachable for ``seconds``: runtime status ``Unavailable``, its requests 503
        ``PipelineUnavailable``."""
        self._call("POST", f"/pipelines/{pipeline}/unavailable", {"seconds": seconds})

    def fail_next_sync(self, pipeline: str, error: str = "injected sync failure") -> None:
        self._call("POST", f"/pipelines/{pipeline}/fail_next_sync", {"error": error})

    def fail_next_checkpoint(self, pipeline: str, error: str = "injected checkpoint failure") -> None:
        self._call("POST", f"/pipelines/{pipeline}/fail_next_checkpoint", {"error": error})

    def advance_clock(self, seconds: float) -> float:
        """Move the sandbox's wall clock forward (ages checkpoints for retention); returns the total offset."""
        result: float = self._call("POST", "/clock", {"advance_s": seconds})["offset_s"]
        return result

    def set_timings(self, **timings: float) -> dict[str, float]:
        result: dict[str, float] = self._call("PUT", "/timings", timings)
        return result

    def requests(self) -> list[dict[str, Any]]:
        """Every ``/v0`` and ``/healthz`` request so far: method, path, query, status, fault, mutating."""
        result: list[dict[str, Any]] = self._call("GET", "/requests")
        return result

    def mutating_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests() if r["mutating"]]

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def log(self, pipeline: str) -> list[str]:
        result: list[str] = self._call("GET", f"/pipelines/{pipeline}/log")
        return result

    def tables(self, pipeline: str) -> dict[str, list[Any]]:
        result: dict[str, list[Any]] = self._call("GET", f"/pipelines/{pipeline}/tables")
        return result

    def storage(self, pipeline: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/pipelines/{pipeline}/storage")
        return result

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/state")
        return result
