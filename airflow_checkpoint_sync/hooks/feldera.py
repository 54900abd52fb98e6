"""FelderaHook: the Feldera REST API through an Airflow ``feldera`` connection, for workers and triggers alike."""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import ssl
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from airflow.sdk import BaseHook

from airflow_checkpoint_sync.exceptions import FelderaApiError, FelderaConnectionConfigError, FelderaConnectionError
from airflow_checkpoint_sync.hooks import feldera_api as api
from airflow_checkpoint_sync.hooks.feldera_api import BackoffPolicy, FelderaRequest, Flow
from airflow_checkpoint_sync.hooks.shared_clients import (
    AnswerTooSlow,
    SharedClient,
    TransportFailure,
    exchange,
    shared_client,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from airflow.sdk import Connection

    from airflow_checkpoint_sync.rules.status import SyncResult

__all__ = ["FelderaAsyncSession", "FelderaConnectionConfigError", "FelderaConnectionSettings", "FelderaHook"]

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class FelderaConnectionSettings:
    """What a ``feldera`` connection says, checked.

    :param base_url: the API's base URL, e.g. ``https://feldera.example.com`` (no ``/v0``).
    :param api_key: the API key (``apikey:...``) or a JWT; sent as ``Authorization: Bearer <key>``.
    :param verify: TLS verification: True, False, or the path of a CA bundle.
    :param timeout: seconds for each HTTP request.
    :param tenant: sent as ``Feldera-Tenant`` when set.
    :param console_url: where the Feldera web console is, for links; defaults to ``base_url``.
    :param conn_id: the Airflow connection these settings came from, for error messages.
    """

    base_url: str
    api_key: str | None
    verify: bool | str
    timeout: float
    tenant: str | None
    console_url: str
    conn_id: str = ""

    def __repr__(self) -> str:
        # Never print the key, not even by accident in a debugger or a log line.
        return (
            f"FelderaConnectionSettings(base_url={self.base_url!r}, api_key={'***' if self.api_key else None}, "
            f"verify={self.verify!r}, timeout={self.timeout!r}, tenant={self.tenant!r})"
        )

    def pipeline_url(self, pipeline_name: str) -> str:
        """The pipeline's page in the Feldera web console."""
        return f"{self.console_url.rstrip('/')}/pipelines/{quote(pipeline_name, safe='')}/"

    def scrub(self, error: FelderaApiError) -> FelderaApiError:
        """``error`` naming this server, with the API key cut out of everything it quotes (a server or proxy may
        echo request headers in its answer, and a header library its refusal)."""
        error.server = self.base_url
        if self.api_key:
            error.message = error.message.replace(self.api_key, "***")
            if error.details is not None and self.api_key in json.dumps(error.details, default=str):
                error.details = json.loads(json.dumps(error.details, default=str).replace(self.api_key, "***"))
        return error

    def client_options(self) -> dict[str, Any]:
        headers = {"Accept": "application/json", "User-Agent": "airflow-checkpoint-sync"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.tenant:
            headers["Feldera-Tenant"] = self.tenant
        return {
            "base_url": self.base_url,
            "headers": headers,
            "verify": self._tls(),
            "timeout": httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
            "follow_redirects": False,
        }

    def _tls(self) -> ssl.SSLContext | bool:
        try:
            return ssl_context(self.verify)
        except (OSError, ssl.SSLError) as exc:
            # The CA path is read only here, on the worker that connects: that is where it has to exist.
            raise FelderaConnectionConfigError(
                f"Airflow connection '{self.conn_id}': extra 'verify' {self.verify!r} is not valid; expected true, "
                f"false or the path of a CA bundle readable on this worker ({exc.strerror or exc})"
            ) from None


@functools.lru_cache(maxsize=16)
def ssl_context(verify: bool | str) -> ssl.SSLContext | bool:
    """One TLS context per ``verify`` setting, shared by every client of the process.

    Building a context loads a whole CA bundle (hundreds of KB); a triggerer running a thousand waits would
    otherwise hold a thousand copies.
    """
    if verify is False:
        return False
    if verify is True:
        return httpx.create_ssl_context()
    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)


def settings_from_connection(
    conn_id: str,
    *,
    host: str | None,
    port: int | None,
    schema: str | None,
    password: str | None,
    extra: Mapping[str, Any],
    conn_type: str | None = "feldera",
) -> FelderaConnectionSettings:
    """Check and normalise a ``feldera`` connection's fields (pure; the hook fetches them)."""

    def bad(field: str, value: object, accepted: str) -> FelderaConnectionConfigError:
        return FelderaConnectionConfigError(
            f"Airflow connection '{conn_id}': {field} {value!r} is not valid; expected {accepted}"
        )

    if conn_type and conn_type != "feldera":
        # Another provider's connection (an aws one, say) would otherwise fail later with a misleading message.
        raise bad("conn_type", conn_type, "'feldera': create the connection with the Feldera connection type")
    if not host:
        raise FelderaConnectionConfigError(
            f"Airflow connection '{conn_id}': host is empty; set it to the Feldera API URL, "
            "e.g. https://feldera.example.com or http://127.0.0.1:8080"
        )
    raw = host.strip()
    if "://" not in raw:
        scheme = (schema or "").lower() if (schema or "").lower() in ("http", "https") else "https"
        raw = f"{scheme}://{raw}"
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad("host", host, "an http:// or https:// URL of the Feldera API")
    if parts.username is not None or parts.password is not None:
        # Never echo it: the part before '@' is a credential.
        raise FelderaConnectionConfigError(
            f"Airflow connection '{conn_id}': host carries a user or password before '@'; put the API key in the "
            "connection's password and leave the host as scheme://name[:port]"
        )
    if parts.query or parts.fragment:
        raise bad(
            "host", host, "a URL without '?query' or '#fragment': the API's base URL, e.g. https://feldera.example.com"
        )
    try:
        url_port = parts.port
    except ValueError:
        url_port = -1
    if url_port == -1 or (port is not None and not 0 < port < 65536):
        raise bad("port", port if url_port != -1 else host, "a port from 1 to 65535")
    netloc = parts.netloc
    if port and url_port is None:
        netloc = f"{netloc}:{port}"
    path = parts.path.rstrip("/")
    if path.endswith("/v0"):
        path = path[: -len("/v0")]
    base_url = f"{parts.scheme}://{netloc}{path}"

    verify: bool | str = _field(extra, "verify", True)
    if isinstance(verify, str) and verify.strip().lower() in ("true", "false"):
        verify = verify.strip().lower() == "true"
    if not isinstance(verify, bool) and not (isinstance(verify, str) and verify.strip()):
        raise bad("extra 'verify'", verify, "true, false or the path of a CA bundle")

    timeout_raw = _field(extra, "timeout", DEFAULT_TIMEOUT_S)
    try:
        timeout = float(timeout_raw)
    except (TypeError, ValueError):
        raise bad("extra 'timeout'", timeout_raw, "a number of seconds greater than 0") from None
    if not timeout > 0:
        raise bad("extra 'timeout'", timeout_raw, "a number of seconds greater than 0")

    tenant = _field(extra, "tenant", None) or None
    console_url = str(_field(extra, "console_url", None) or base_url)
    if not console_url.startswith(("http://", "https://")):
        raise bad("extra 'console_url'", console_url, "an http:// or https:// URL")
    return FelderaConnectionSettings(
        base_url=base_url,
        api_key=_api_key(conn_id, password),
        verify=verify,
        timeout=timeout,
        tenant=str(tenant) if tenant else None,
        console_url=console_url,
        conn_id=conn_id,
    )


def _api_key(conn_id: str, password: str | None) -> str | None:
    """The API key without the white space a secret file or a paste leaves around it; anything else in it that an
    HTTP header cannot carry is refused, without showing the key."""
    key = (password or "").strip()
    if not key:
        return None
    if not (key.isascii() and key.isprintable()) or any(c.isspace() for c in key):
        raise FelderaConnectionConfigError(
            f"Airflow connection '{conn_id}': the password (the API key) has spaces, line breaks or other characters "
            "an HTTP header cannot carry inside it; set it to the key alone (apikey:... or a JWT)"
        )
    return key


def _field(extra: Mapping[str, Any], name: str, default: Any) -> Any:
    # Older connection forms store custom fields as extra__<conn_type>__<name>.
    for key in (name, f"extra__feldera__{name}"):
        if key in extra and extra[key] not in (None, ""):
            return extra[key]
    return default


def _transport_error(exc: httpx.TransportError, request: FelderaRequest) -> FelderaConnectionError:
    """Map httpx's failure (the worker's path) to ours."""
    if isinstance(exc, httpx.ConnectError):
        kind = "connect"
    elif isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        kind = "connect_timeout"
    elif isinstance(exc, httpx.TimeoutException):
        kind = "read_timeout"
    else:
        kind = "broken"
    return _connection_error(TransportFailure(kind, str(exc) or type(exc).__name__, _server_of(exc)), request)


def _connection_error(failure: TransportFailure, request: FelderaRequest) -> FelderaConnectionError:
    """Our error for a failure below HTTP (from either client library), recording whether the request could have
    reached Feldera."""
    where, text, server = request.describe(), failure.text, failure.server
    if failure.kind == "connect":
        if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text or "packet length too long" in text:
            return FelderaConnectionError(
                f"{server} does not speak TLS: its answer to the TLS handshake was plain HTTP; use http:// in the "
                "connection's host (or fix the port)",
                sent=False,
                tls=True,
                request=where,
            )
        if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text or "certificate" in text.lower():
            return FelderaConnectionError(
                f"TLS handshake with {server} failed: {text}; if the server's certificate comes from a private CA, "
                "set the connection's 'verify' extra to its CA bundle",
                sent=False,
                tls=True,
                request=where,
            )
        return FelderaConnectionError(
            f"cannot connect to {server} (the connection's host): {text}", sent=False, request=where
        )
    if failure.kind == "connect_timeout":
        return FelderaConnectionError(f"timed out connecting: {text}", sent=False, request=where)
    if failure.kind == "read_timeout":
        return FelderaConnectionError(f"no response in time: {text}", sent=True, request=where)
    return FelderaConnectionError(f"the connection broke before a full response: {text}", sent=True, request=where)


def _server_of(exc: httpx.TransportError) -> str:
    try:
        url = exc.request.url
    except RuntimeError:  # httpx raises when the error has no request attached
        return "the Feldera server"
    return f"{url.scheme}://{url.netloc.decode()}"


class _Attempts:
    """Book-keeping for one call's retries and time limits, shared by the sync and async transports."""

    def __init__(self, hook: FelderaHook, settings: FelderaConnectionSettings, request: FelderaRequest) -> None:
        self._policy = hook.retry_policy
        self._request = request
        self._settings = settings
        self._hook = hook
        self._started = time.monotonic()
        self._attempt = 1

    def timeout(self) -> float:
        """Seconds the next attempt may take in all (connect, send, the whole answer): the connection's timeout,
        cut to what is left before the task's deadline, if it set one, but never under a second."""
        remaining = math.inf if self._hook.deadline is None else self._hook.deadline - time.time()
        return max(1.0, min(self._settings.timeout, remaining))

    def backoff(self, error: FelderaApiError) -> float:
        """Seconds to wait before trying again; re-raises ``error`` when the policy, or the deadline, says give up."""
        self._settings.scrub(error)
        delay = self._policy.delay(self._attempt, error, self._request, time.monotonic() - self._started)
        if delay is None or (self._hook.deadline is not None and time.time() + delay >= self._hook.deadline):
            raise error
        self._hook.log.warning(
            "Feldera %s failed (%s); retrying in %.1fs (attempt %d of %d)",
            self._request.describe(),
            error,
            delay,
            self._attempt + 1,
            self._policy.max_attempts,
        )
        self._attempt += 1
        return delay


def _may_write(client: httpx.Client, timeout: float) -> bool | None:
    """Whether the connection's key may change pipelines, asked with :func:`~airflow_checkpoint_sync.hooks.
    feldera_api.write_probe` (which changes nothing); None when the answer says neither."""
    import secrets

    try:
        _send_once(client, api.write_probe(secrets.token_hex(8)), timeout)
    except FelderaApiError as exc:
        if exc.status == 403:
            return False
        return True if exc.status == 404 else None
    return None  # a pipeline of that name exists after all: the answer tells nothing


def _too_slow(request: FelderaRequest, timeout: float) -> FelderaConnectionError:
    return FelderaConnectionError(
        f"no complete answer within {timeout:g}s (the connection's timeout): the server is too slow or stalled",
        sent=True,
        request=request.describe(),
    )


def _send_once(client: httpx.Client, request: FelderaRequest, timeout: float) -> Any:
    began = time.monotonic()
    limits = httpx.Timeout(timeout, connect=min(timeout, 10.0))
    try:
        with client.stream(
            request.method, request.path, params=request.params, json=request.json, timeout=limits
        ) as response:
            body = bytearray()
            # httpx's timeouts bound each network read; the whole answer is bounded here, so a server that drips
            # its body cannot hold the task.
            for chunk in response.iter_bytes():
                body += chunk
                if time.monotonic() - began > timeout:
                    raise _too_slow(request, timeout)
    except httpx.TransportError as exc:
        raise _transport_error(exc, request) from exc
    return api.parse_response(response.status_code, response.headers, bytes(body), request)


async def _asend_once(shared: SharedClient, request: FelderaRequest, timeout: float) -> Any:
    try:
        status, headers, body = await exchange(shared, request, timeout)
    except (TimeoutError, AnswerTooSlow):
        raise _too_slow(request, timeout) from None
    except TransportFailure as failure:
        raise _connection_error(failure, request) from failure
    return api.parse_response(status, headers, body, request)


class FelderaAsyncSession:
    """Async access to Feldera over the event loop's shared client for the connection (see
    :mod:`~airflow_checkpoint_sync.hooks.shared_clients`: every wait in a triggerer on one Feldera shares a pool of
    at most 20 connections)."""

    def __init__(self, shared: SharedClient, hook: FelderaHook, settings: FelderaConnectionSettings) -> None:
        self._shared = shared
        self._hook = hook
        self._settings = settings

    async def send(self, request: FelderaRequest) -> Any:
        """Send one request with retries; the parsed body, or a FelderaApiError.

        A caller cancelled mid-request stops waiting at once, but the request it started still completes in the
        background (so no cancellation reaches the shared pool) and its answer is dropped: a mutating request that
        was cancelled may still have taken effect.
        """
        attempts = _Attempts(self._hook, self._settings, request)
        while True:
            try:
                return await _asend_once(self._shared, request, attempts.timeout())
            except FelderaApiError as error:
                await asyncio.sleep(attempts.backoff(error))

    async def run(self, flow: Flow[T]) -> T:
        """Run a multi-step read (see :mod:`~airflow_checkpoint_sync.hooks.feldera_api`) over this session."""
        return await api.arun_flow(flow, self.send)


class FelderaHook(BaseHook):
    """Talk to Feldera's pipeline manager through an Airflow connection of type ``feldera``.

    The connection's host is the API URL (``https://feldera.example.com``, with a port if needed), its password the
    API key, and its extras ``verify`` (true/false or a CA bundle path), ``timeout`` (seconds), ``tenant`` and
    ``console_url``. See :ref:`the connection guide <howto/connection:feldera>`.

    Every call retries what :func:`~airflow_checkpoint_sync.exceptions.classify` calls retryable (connection
    errors, 408, 429 with ``Retry-After``, 5xx but 501) with bounded exponential backoff, except that a request
    which is not idempotent (taking a checkpoint, starting a sync) is re-sent only when the failure proves it
    never took effect.

    :param feldera_conn_id: the Airflow connection to use.
    :param retry_policy: the backoff for retryable failures; see
        :class:`~airflow_checkpoint_sync.hooks.feldera_api.BackoffPolicy`.
    """

    conn_name_attr = "feldera_conn_id"
    default_conn_name = "feldera_default"
    conn_type = "feldera"
    hook_name = "Feldera"

    def __init__(self, feldera_conn_id: str = default_conn_name, retry_policy: BackoffPolicy | None = None) -> None:
        super().__init__()
        self.feldera_conn_id = feldera_conn_id
        self.retry_policy = retry_policy or BackoffPolicy()
        #: When set (seconds since the epoch), no call runs past it: attempts are cut short and not retried beyond.
        self.deadline: float | None = None
        self._settings: FelderaConnectionSettings | None = None
        self._client: httpx.Client | None = None

    # -- connection ----------------------------------------------------------------------------------------------
    @property
    def settings(self) -> FelderaConnectionSettings:
        """The checked connection settings (fetched once per hook)."""
        if self._settings is None:
            conn = self.get_connection(self.feldera_conn_id)
            self._settings = self._parse(conn, conn.extra_dejson)
            if self._settings.api_key:
                from airflow.sdk.log import mask_secret

                # Airflow masks the password as stored; the key as sent (stripped) must be masked too.
                mask_secret(self._settings.api_key)
        return self._settings

    async def async_settings(self) -> FelderaConnectionSettings:
        """The settings, fetched without blocking the triggerer's event loop."""
        if self._settings is None:
            from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson

            conn = await get_async_connection(self.feldera_conn_id, hook=self)
            self._settings = self._parse(conn, await get_async_extra_dejson(conn))
        return self._settings

    def _parse(self, conn: Connection, extra: Mapping[str, Any]) -> FelderaConnectionSettings:
        return settings_from_connection(
            self.feldera_conn_id,
            host=conn.host,
            port=conn.port,
            schema=conn.schema,
            password=conn.password,
            extra=extra,
            conn_type=conn.conn_type,
        )

    def pipeline_url(self, pipeline_name: str) -> str:
        """The pipeline's page in the Feldera web console."""
        return self.settings.pipeline_url(pipeline_name)

    # -- transport -----------------------------------------------------------------------------------------------
    def _http(self) -> httpx.Client:
        if self._client is None:
            settings = self.settings
            if settings.verify is False:
                self.log.warning("TLS verification is off for Feldera connection '%s'", self.feldera_conn_id)
            self._client = httpx.Client(**settings.client_options())
        return self._client

    def close(self) -> None:
        """Close the HTTP connections this hook opened."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> FelderaHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, request: FelderaRequest) -> Any:
        """Send one request with retries; the parsed body, or a FelderaApiError (naming the server, never the key)."""
        attempts = _Attempts(self, self.settings, request)
        while True:
            try:
                return _send_once(self._http(), request, attempts.timeout())
            except FelderaApiError as error:
                time.sleep(attempts.backoff(error))

    def run(self, flow: Flow[T]) -> T:
        """Run a multi-step read (see :mod:`~airflow_checkpoint_sync.hooks.feldera_api`) with :meth:`send`."""
        return api.run_flow(flow, self.send)

    @asynccontextmanager
    async def async_session(self) -> AsyncIterator[FelderaAsyncSession]:
        """An async session over the loop's shared client for this connection, given back when the block ends."""
        settings = await self.async_settings()
        async with shared_client(settings) as shared:
            yield FelderaAsyncSession(shared, self, settings)

    # -- endpoints -----------------------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """``GET /v0/config``: edition and version of the Feldera instance."""
        result: dict[str, Any] = self.send(api.get_config())
        return result

    def get_pipeline(self, pipeline_name: str, selector: str = "status") -> dict[str, Any]:
        """``GET /v0/pipelines/{name}``; ``selector="all"`` includes the runtime config."""
        result: dict[str, Any] = self.send(api.get_pipeline(pipeline_name, selector))
        return result

    def get_stats(self, pipeline_name: str) -> dict[str, Any]:
        """``GET /stats``: the running pipeline's metrics, including its ``incarnation_uuid``."""
        result: dict[str, Any] = self.send(api.get_stats(pipeline_name))
        return result

    def list_checkpoints(self, pipeline_name: str) -> list[dict[str, Any]]:
        """``GET /checkpoints``: the pipeline's local checkpoints, oldest first."""
        result: list[dict[str, Any]] = self.send(api.list_checkpoints(pipeline_name))
        return result

    def take_checkpoint(self, pipeline_name: str) -> dict[str, Any]:
        """``POST /checkpoint``: ``{checkpoint_sequence_number, incarnation_uuid}``; the checkpoint completes later."""
        result: dict[str, Any] = self.send(api.take_checkpoint(pipeline_name))
        return result

    def checkpoint_status(self, pipeline_name: str, incarnation_uuid: str | None = None) -> dict[str, Any]:
        """``GET /checkpoint_status``: ``{success, failure}`` of the current process."""
        result: dict[str, Any] = self.send(api.checkpoint_status(pipeline_name, incarnation_uuid))
        return result

    def sync_checkpoint(self, pipeline_name: str) -> dict[str, Any]:
        """``POST /checkpoint/sync``: pushes the newest local checkpoint; ``{checkpoint_uuid, incarnation_uuid}``."""
        result: dict[str, Any] = self.send(api.sync_checkpoint(pipeline_name))
        return result

    def sync_status(self, pipeline_name: str, incarnation_uuid: str | None = None) -> dict[str, Any]:
        """``GET /checkpoint/sync_status``: ``{success, failure, periodic[, running]}``."""
        result: dict[str, Any] = self.send(api.sync_status(pipeline_name, incarnation_uuid))
        return result

    def remote_checkpoints(self, pipeline_name: str) -> list[str]:
        """``GET /checkpoints/remote``: the uuids in the pipeline's bucket."""
        result = self.send(api.remote_checkpoints(pipeline_name)) or []
        return [str(entry["uuid"]) for entry in result]

    def sync_progress(self, pipeline_name: str, checkpoint_uuid: str, incarnation_uuid: str | None) -> SyncResult:
        """Where the sync of ``checkpoint_uuid`` stands (an UNKNOWN status is settled from the bucket's listing).

        Raises FelderaApiError with ``error_code == "IncarnationUuidMismatch"`` if the pipeline restarted.
        """
        return self.run(api.read_sync_progress(pipeline_name, checkpoint_uuid, incarnation_uuid))

    def newest_synced_checkpoint(self, pipeline_name: str) -> str | None:
        """The newest checkpoint synced to the pipeline's bucket (by UUIDv7 time), or None if nothing is synced."""
        return self.run(api.read_newest_synced(pipeline_name))

    # -- endpoints that change something -------------------------------------------------------------------------
    def patch_runtime_config(self, pipeline_name: str, runtime_config: Mapping[str, Any]) -> None:
        """``PATCH /pipelines/{name}`` with the whole ``runtime_config`` (Feldera replaces it, it does not merge)."""
        self.send(api.patch_runtime_config(pipeline_name, runtime_config))

    def start_pipeline(self, pipeline_name: str, initial: str) -> None:
        """``POST /start?initial=running|paused|standby``; the pipeline gets there later."""
        self.send(api.start_pipeline(pipeline_name, initial))

    def stop_pipeline(self, pipeline_name: str, *, force: bool) -> None:
        """``POST /stop``: gracefully (a final checkpoint first) unless ``force``."""
        self.send(api.stop_pipeline(pipeline_name, force))

    def activate_pipeline(self, pipeline_name: str, initial: str) -> None:
        """``POST /activate?initial=running|paused``: a standby pulls the newest checkpoint once more, then runs."""
        self.send(api.activate_pipeline(pipeline_name, initial))

    def clear_storage(self, pipeline_name: str) -> None:
        """``POST /clear``: delete a stopped pipeline's local storage."""
        self.send(api.clear_storage(pipeline_name))

    def put_pipeline(self, pipeline_name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``PUT /pipelines/{name}``: create the pipeline, or replace a stopped one, with ``body``'s program and
        configuration; Feldera compiles it afterwards (``program_status``)."""
        result: dict[str, Any] = self.send(api.put_pipeline(pipeline_name, body))
        return result

    def delete_pipeline(self, pipeline_name: str) -> None:
        """``DELETE /pipelines/{name}``: Feldera refuses unless the pipeline is stopped and its storage cleared."""
        self.send(api.delete_pipeline(pipeline_name))

    def query(self, pipeline_name: str, sql: str) -> list[dict[str, Any]]:
        """``GET /query?format=json``: an ad-hoc SQL query on a running or paused pipeline, its rows as dicts."""
        request = api.adhoc_query(pipeline_name, sql)
        return api.query_rows(self.send(request), request)

    # -- connection test -----------------------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """Check the connection in a few seconds: reachable, TLS, API key, edition. Never raises."""
        try:
            settings = self.settings
        except Exception as exc:
            return False, str(exc)
        try:
            # One attempt with a short timeout: a connection test answers in seconds, it does not wait out outages.
            with httpx.Client(**settings.client_options()) as client:
                config = _send_once(client, api.get_config(), min(settings.timeout, 10.0))
                can_write = _may_write(client, min(settings.timeout, 10.0))
        except FelderaConnectionError as exc:
            settings.scrub(exc)
            if exc.tls:
                return False, f"TLS verification failed for {settings.base_url}: {exc.message}"
            return False, f"Cannot reach Feldera at {settings.base_url}: {exc.message}"
        except FelderaApiError as exc:
            settings.scrub(exc)
            if exc.status == 401:
                return False, f"Feldera at {settings.base_url} rejected the API key (HTTP 401 {exc.error_code or ''})"
            return False, f"Feldera at {settings.base_url} answered {exc}"
        edition = str((config or {}).get("edition", ""))
        version = str((config or {}).get("version", "?"))
        if edition.lower() != "enterprise":
            return False, (
                f"Connected to Feldera {edition or 'of an unknown edition'} {version} at {settings.base_url}, "
                "but checkpoint sync needs Feldera Enterprise"
            )
        connected = f"Connected to Feldera Enterprise {version} at {settings.base_url}"
        if can_write is False:
            return True, (
                f"{connected}; the API key is read-only (Feldera's Read role): sensors, freshness checks, "
                "verification and failover readiness work with it, but tasks that change pipelines (sync, restore, "
                "activate, drill) need a key with the Write role"
            )
        if can_write is None:
            return True, f"{connected}; whether the API key may change pipelines could not be told"
        return True, f"{connected}; the API key may change pipelines (Write role)"
