"""Feldera's REST API without the transport: requests, response parsing, errors, retry rules and multi-step reads.

The worker's transport (httpx) and the triggerer's (a shared aiohttp pool), both in
:mod:`~airflow_checkpoint_sync.hooks.transport`, use everything here, so the two can only differ in how bytes move.
A multi-step read is a generator that yields :class:`FelderaRequest` objects and receives their parsed results (see
:func:`run_flow`), written once for both transports.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from airflow_checkpoint_sync.exceptions import (
    UNEXPECTED_RESPONSE,
    Failure,
    FelderaApiError,
    FelderaConfigError,
    FelderaParameterError,
    classify,
)
from airflow_checkpoint_sync.rules.status import (
    RequestState,
    SyncResult,
    listed_uuids,
    newest_listed,
    newest_uuid,
    resolve_unknown,
    sync_result,
)

__all__ = ["BackoffPolicy", "FelderaRequest"]

T = TypeVar("T")


@dataclass(frozen=True)
class FelderaRequest:
    """One call to Feldera's API.

    ``idempotent`` says whether sending it twice is harmless. A request that is not (``POST /checkpoint``,
    ``POST /checkpoint/sync``) is re-sent only when the failure proves it never took effect. Any other answer than
    ``expect`` (with the ``require`` keys) is an ``UnexpectedResponse`` error naming what came instead.
    """

    method: str
    path: str
    params: Mapping[str, str] | None = None
    json: Any = None
    idempotent: bool = True
    #: The JSON type the answer must have (``dict`` or ``list``), ``bytes`` for the raw body, or None when the answer
    #: is not read.
    expect: type | None = dict
    #: Keys an expected JSON object must have.
    require: tuple[str, ...] = ()

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
            raise FelderaParameterError("max_attempts", self.max_attempts, "a whole number, 1 or more")
        if self.base_delay < 0 or self.max_delay < 0 or self.deadline < 0:
            raise FelderaConfigError("base_delay, max_delay and deadline must not be negative")

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
    """The decoded body of a 2xx response in the shape ``request`` expects; otherwise a FelderaApiError with
    Feldera's error fields, or (``UnexpectedResponse``) what came instead of Feldera's answer."""
    content_type = headers.get("content-type", "")
    if 200 <= status < 300:
        return _expected(status, content_type, body, request)
    error_code = None
    details = None
    message = _snippet(body) or f"HTTP {status}"
    if 300 <= status < 400:
        message = (
            f"redirected to {headers.get('location') or 'somewhere else'}: Feldera's API does not redirect; set the "
            "connection's host to the URL it should reach (https:// or the right path)"
        )
    elif body.lstrip().startswith(b"{"):
        # Feldera's error body is JSON whatever the content type says: a 401 comes as text/plain (actix's
        # ErrorUnauthorized), and its error_code is what tells a rejected key apart.
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = None
        if isinstance(decoded, Mapping):
            error_code = decoded.get("error_code")
            details = decoded.get("details")
            message = str(decoded.get("message") or message)
    raise FelderaApiError(
        message,
        status=status,
        error_code=str(error_code) if error_code is not None else None,
        details=details,
        retry_after=_retry_after(headers.get("retry-after")),
        request=request.describe(),
    )


def _expected(status: int, content_type: str, body: bytes, request: FelderaRequest) -> Any:
    if request.expect is None:
        # Feldera answers these with a JSON string ("Pipeline is starting") the provider does not read.
        return None
    if request.expect is bytes:
        return body  # a stream of lines (an ad-hoc query's rows), parsed by the caller
    if "json" not in content_type or not body:
        got = f"{content_type or 'no content type'}, {len(body)} bytes"
        raise _unexpected(status, request, f"not JSON ({got}: {_snippet(body)!r})")
    try:
        decoded = json.loads(body)
    except json.JSONDecodeError as exc:
        raise _unexpected(status, request, f"invalid JSON ({exc.msg} at {exc.pos}: {_snippet(body)!r})") from None
    except UnicodeDecodeError:
        raise _unexpected(status, request, "invalid JSON (not UTF-8)") from None
    kind = "object" if request.expect is dict else "list"
    if not isinstance(decoded, request.expect):
        raise _unexpected(status, request, f"a JSON {type(decoded).__name__} where a JSON {kind} was expected")
    missing = [key for key in request.require if key not in decoded]  # type: ignore[operator]
    if missing:
        raise _unexpected(status, request, f"a JSON {kind} without {', '.join(missing)}")
    return decoded


def _unexpected(status: int, request: FelderaRequest, what: str) -> FelderaApiError:
    return FelderaApiError(
        f"the answer is not Feldera's: {what}; is the connection's host Feldera's API, with no proxy page in between?",
        status=status,
        error_code=UNEXPECTED_RESPONSE,
        request=request.describe(),
    )


def _snippet(body: bytes, size: int = 200) -> str:
    """The start of a body, white space folded: enough to recognize an HTML page or a proxy's message."""
    text = " ".join(body.decode(errors="replace").split())
    return text if len(text) <= size else text[:size] + "..."


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
    return FelderaRequest("GET", _pipeline(name, "/checkpoints"), expect=list)


def take_checkpoint(name: str) -> FelderaRequest:
    return FelderaRequest(
        "POST", _pipeline(name, "/checkpoint"), idempotent=False, require=("checkpoint_sequence_number",)
    )


def checkpoint_status(name: str, incarnation_uuid: str | None) -> FelderaRequest:
    return FelderaRequest("GET", _pipeline(name, "/checkpoint_status"), params=_incarnation(incarnation_uuid))


def sync_checkpoint(name: str) -> FelderaRequest:
    return FelderaRequest("POST", _pipeline(name, "/checkpoint/sync"), idempotent=False, require=("checkpoint_uuid",))


def sync_status(name: str, incarnation_uuid: str | None) -> FelderaRequest:
    return FelderaRequest("GET", _pipeline(name, "/checkpoint/sync_status"), params=_incarnation(incarnation_uuid))


def remote_checkpoints(name: str) -> FelderaRequest:
    return FelderaRequest("GET", _pipeline(name, "/checkpoints/remote"), expect=list)


def patch_runtime_config(name: str, runtime_config: Mapping[str, Any]) -> FelderaRequest:
    # The whole runtime config: Feldera's PATCH replaces top-level fields, it does not merge inside them.
    return FelderaRequest("PATCH", _pipeline(name), json={"runtime_config": dict(runtime_config)}, expect=None)


def start_pipeline(name: str, initial: str) -> FelderaRequest:
    # Desired-state setters (start, stop, activate, clear) are safe to repeat.
    params = {"initial": initial, "dismiss_error": "true"}
    return FelderaRequest("POST", _pipeline(name, "/start"), params=params, expect=None)


def stop_pipeline(name: str, force: bool) -> FelderaRequest:
    params = {"force": "true" if force else "false"}
    return FelderaRequest("POST", _pipeline(name, "/stop"), params=params, expect=None)


def activate_pipeline(name: str, initial: str) -> FelderaRequest:
    return FelderaRequest("POST", _pipeline(name, "/activate"), params={"initial": initial}, expect=None)


def clear_storage(name: str) -> FelderaRequest:
    return FelderaRequest("POST", _pipeline(name, "/clear"), expect=None)


def put_pipeline(name: str, body: Mapping[str, Any]) -> FelderaRequest:
    # PUT creates or replaces the whole pipeline: repeating it gives the same pipeline.
    return FelderaRequest("PUT", _pipeline(name), json=dict(body), require=("name",))


def delete_pipeline(name: str) -> FelderaRequest:
    return FelderaRequest("DELETE", _pipeline(name), expect=None)


#: The name a write probe asks about: no pipeline is named so, so the probe can find nothing to change.
WRITE_PROBE_PIPELINE = "airflow-checkpoint-sync-write-probe-{token}"


def write_probe(token: str) -> FelderaRequest:
    """An empty PATCH of a pipeline that does not exist: it changes nothing whatever the key, and Feldera's RBAC
    answers it before the handler, so a Write key gets 404 ``UnknownPipelineName`` and a Read key 403
    ``InsufficientPermissions`` (``api/rbac.rs``)."""
    return FelderaRequest("PATCH", _pipeline(WRITE_PROBE_PIPELINE.format(token=token)), json={}, expect=None)


def adhoc_query(name: str, sql: str) -> FelderaRequest:
    # A query only reads; ``format=json`` answers one JSON object per row, one per line.
    return FelderaRequest("GET", _pipeline(name, "/query"), params={"sql": sql, "format": "json"}, expect=bytes)


def query_rows(body: bytes, request: FelderaRequest) -> list[dict[str, Any]]:
    """The rows of an ad-hoc query's ``format=json`` answer; an error Feldera folded into the stream (a query that
    fails after its first rows) is raised as the FelderaApiError it is."""
    rows = []
    for number, line in enumerate(body.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            raise _unexpected(200, request, f"line {number} is not JSON: {_snippet(line)!r}") from None
        if not isinstance(row, dict):
            raise _unexpected(200, request, f"line {number} is a JSON {type(row).__name__}, not a row")
        if set(row) >= {"message", "error_code"}:
            raise FelderaApiError(
                str(row["message"]), status=200, error_code=str(row["error_code"]), request=request.describe()
            )
        rows.append(row)
    return rows


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


def read_sync_progress(
    name: str, checkpoint_uuid: str, incarnation_uuid: str | None, stale_failure: str | None = None
) -> Flow[SyncResult]:
    """Sync status of one uuid; an UNKNOWN answer is settled from the bucket's listing.

    Raises FelderaApiError with ``error_code == "IncarnationUuidMismatch"`` when the pipeline restarted since
    ``incarnation_uuid``: the sync status of that process is gone.
    """
    payload = yield sync_status(name, incarnation_uuid)
    result = sync_result(checkpoint_uuid, payload, stale_failure)
    if result.state is RequestState.UNKNOWN:
        remote = yield remote_checkpoints(name)
        result = resolve_unknown(checkpoint_uuid, listed_uuids(remote))
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
        newest = newest_listed(remote)
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
