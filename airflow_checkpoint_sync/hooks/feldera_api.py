"""Feldera's REST API without the transport: requests, response parsing, errors, retry rules and multi-step reads.

The hook's sync (``httpx.Client``) and async (``httpx.AsyncClient``) paths both use everything here, so the two can
only differ in how bytes move. A multi-step read is a generator that yields :class:`FelderaRequest` objects and
receives their parsed results (see :func:`run_flow`), written once for both transports.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from airflow_checkpoint_sync.exceptions import (
    Failure,
    FelderaApiError,
    FelderaConnectionError,
    classify,
)
from airflow_checkpoint_sync.status import SyncResult, SyncState, newest_uuid, resolve_unknown, sync_result

__all__ = ["BackoffPolicy", "FelderaApiError", "FelderaConnectionError", "FelderaRequest"]

T = TypeVar("T")


@dataclass(frozen=True)
class FelderaRequest:
    """One call to Feldera's API.

    ``idempotent`` says whether sending it twice is harmless. A request that is not (``POST /checkpoint``,
    ``POST /checkpoint/sync``) is re-sent only when the failure proves it never took effect.
    """

    method: str
    path: str
    params: Mapping[str, str] | None = None
    json: Any = None
    idempotent: bool = True

    def describe(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class BackoffPolicy:
    """Bounded exponential backoff for the failures :func:`~airflow_checkpoint_sync.exceptions.classify` calls
    retryable.

    :param max_attempts: attempts in all, the first included.
    :param base_delay: seconds before the first retry; doubles each time.
    :param max_delay: the longest single wait, ``Retry-After`` included.
    :param deadline: total seconds a call may spend retrying.
    """

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    deadline: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < 0 or self.deadline < 0:
            raise ValueError("base_delay, max_delay and deadline must not be negative")

    def delay(self, attempt: int, error: FelderaApiError, request: FelderaRequest, elapsed: float) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up and raise ``error``."""
        if attempt >= self.max_attempts or classify(error, idempotent=request.idempotent) is not Failure.RETRYABLE:
            return None
        wait = error.retry_after if error.retry_after is not None else self.base_delay * 2 ** (attempt - 1)
        wait = min(max(wait, 0.0), self.max_delay)
        if elapsed + wait > self.deadline:
            return None
        return wait


def parse_response(status: int, headers: Mapping[str, str], body: bytes, request: FelderaRequest) -> Any:
    """The decoded body of a 2xx response; otherwise a FelderaApiError with Feldera's error fields."""
    content_type = headers.get("content-type", "")
    if 200 <= status < 300:
        if not body:
            return None
        if "json" in content_type:
            return json.loads(body)
        return body.decode(errors="replace")
    error_code = None
    details = None
    message = body.decode(errors="replace").strip()[:500] or f"HTTP {status}"
    if "json" in content_type and body:
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = None
        if isinstance(decoded, Mapping):
            error_code = decoded.get("error_code")
            details = decoded.get("details")
            message = str(decoded.get("message") or message)
    return_error = FelderaApiError(
        message,
        status=status,
        error_code=str(error_code) if error_code is not None else None,
        details=details,
        retry_after=_retry_after(headers.get("retry-after")),
        request=request.describe(),
    )
    raise return_error


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        import datetime as dt
        from email.utils import parsedate_to_datetime  # an HTTP date is rare; seconds are the norm

        return max((parsedate_to_datetime(value) - dt.datetime.now(dt.UTC)).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------------------------------
def _pipeline(name: str, suffix: str = "") -> str:
    return f"/v0/pipelines/{quote(name, safe='')}{suffix}"


def get_config() -> FelderaRequest:
    return FelderaRequest("GET", "/v0/config")


def get_pipeline(name: str, selector: str = "status") -> FelderaRequest:
    return FelderaRequest("GET", _pipeline(name), params={"selector": selector})


def get_stats(name: str) -> FelderaRequest:
    return FelderaRequest("GET", _pipeline(name, "/stats"))


def list_checkpoints(name: str) -> FelderaRequest:
    return FelderaRequest("GET", _pipeline(name, "/checkpoints"))


def take_checkpoint(name: str) -> FelderaRequest:
    return FelderaRequest("POST", _pipeline(name, "/checkpoint"), idempotent=False)


def checkpoint_status(name: str, incarnation_uuid: str | None) -> FelderaRequest:
    return FelderaRequest("GET", _pipeline(name, "/checkpoint_status"), params=_incarnation(incarnation_uuid))


def sync_checkpoint(name: str) -> FelderaRequest:
    return FelderaRequest("POST", _pipeline(name, "/checkpoint/sync"), idempotent=False)


def sync_status(name: str, incarnation_uuid: str | None) -> FelderaRequest:
    return FelderaRequest("GET", _pipeline(name, "/checkpoint/sync_status"), params=_incarnation(incarnation_uuid))


def remote_checkpoints(name: str) -> FelderaRequest:
    return FelderaRequest("GET", _pipeline(name, "/checkpoints/remote"))


def patch_runtime_config(name: str, runtime_config: Mapping[str, Any]) -> FelderaRequest:
    # The whole runtime config: Feldera's PATCH replaces top-level fields, it does not merge inside them.
    return FelderaRequest("PATCH", _pipeline(name), json={"runtime_config": dict(runtime_config)})


def start_pipeline(name: str, initial: str) -> FelderaRequest:
    # Desired-state setters (start, stop, activate, clear) are safe to repeat.
    return FelderaRequest("POST", _pipeline(name, "/start"), params={"initial": initial, "dismiss_error": "true"})


def stop_pipeline(name: str, force: bool) -> FelderaRequest:
    return FelderaRequest("POST", _pipeline(name, "/stop"), params={"force": "true" if force else "false"})


def activate_pipeline(name: str, initial: str) -> FelderaRequest:
    return FelderaRequest("POST", _pipeline(name, "/activate"), params={"initial": initial})


def clear_storage(name: str) -> FelderaRequest:
    return FelderaRequest("POST", _pipeline(name, "/clear"))


def _incarnation(incarnation_uuid: str | None) -> dict[str, str] | None:
    return {"incarnation_uuid": incarnation_uuid} if incarnation_uuid else None


# --------------------------------------------------------------------------------------------------------------------
# Multi-step reads
# --------------------------------------------------------------------------------------------------------------------
Flow = Generator[FelderaRequest, Any, T]


def read_pipeline(name: str, selector: str = "status") -> Flow[Any]:
    """The pipeline (``GET /v0/pipelines/{name}``), as a one-step flow for the waits that watch its status."""
    pipeline = yield get_pipeline(name, selector)
    return pipeline


def read_local_checkpoints(name: str) -> Flow[list[dict[str, Any]]]:
    """The pipeline's local checkpoints, oldest first, as a one-step flow."""
    checkpoints = yield list_checkpoints(name)
    return list(checkpoints or [])


def read_checkpoint_status(name: str, incarnation_uuid: str | None) -> Flow[Any]:
    """``GET /checkpoint_status`` of the current process, as a one-step flow."""
    payload = yield checkpoint_status(name, incarnation_uuid)
    return payload


def read_sync_progress(name: str, checkpoint_uuid: str, incarnation_uuid: str | None) -> Flow[SyncResult]:
    """Sync status of one uuid; an UNKNOWN answer is settled from the bucket's listing.

    Raises FelderaApiError with ``error_code == "IncarnationUuidMismatch"`` when the pipeline restarted since
    ``incarnation_uuid``: the sync status of that process is gone.
    """
    payload = yield sync_status(name, incarnation_uuid)
    result = sync_result(checkpoint_uuid, payload)
    if result.state is SyncState.UNKNOWN:
        remote = yield remote_checkpoints(name)
        result = resolve_unknown(checkpoint_uuid, [entry.get("uuid") for entry in remote or []])
    return result


def read_newest_synced(name: str) -> Flow[str | None]:
    """The newest checkpoint synced to the pipeline's bucket, or None when there is none.

    The sync status names it in one request while the process that synced it runs; after a restart that status is
    gone, and the bucket's listing (which outlives restarts) answers instead.
    """
    payload = yield sync_status(name, None)
    newest = newest_uuid([payload.get("success"), payload.get("periodic")])
    if newest is None:
        remote = yield remote_checkpoints(name)
        newest = newest_uuid(entry.get("uuid") for entry in remote or [])
    return newest


def run_flow(flow: Flow[T], send: Any) -> T:
    """Drive ``flow`` with a synchronous ``send(request) -> result``; errors are thrown into the flow."""
    try:
        request = next(flow)
        while True:
            try:
                result = send(request)
            except FelderaApiError as exc:
                request = flow.throw(exc)
                continue
            request = flow.send(result)
    except StopIteration as done:
        value: T = done.value
        return value


async def arun_flow(flow: Flow[T], send: Any) -> T:
    """Drive ``flow`` with an async ``send(request) -> result``; errors are thrown into the flow."""
    try:
        request = next(flow)
        while True:
            try:
                result = await send(request)
            except FelderaApiError as exc:
                request = flow.throw(exc)
                continue
            request = flow.send(result)
    except StopIteration as done:
        value: T = done.value
        return value
