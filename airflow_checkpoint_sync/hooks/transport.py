"""How bytes move to Feldera and back: httpx in the worker, one shared aiohttp pool per Feldera connection in the
triggerer, and one mapping of their failures below HTTP to :class:`~airflow_checkpoint_sync.exceptions.
FelderaConnectionError`.

Both paths build requests and read answers with :mod:`~airflow_checkpoint_sync.hooks.feldera_api`; only the client
differs. Retries are the hook's business, not this module's: each function here makes one attempt.

**The worker** sends with an ``httpx.Client`` (one thread, one pool).

**The triggerer** shares one pooled session per connection and event loop. A triggerer holding a thousand deferred
waits on one Feldera would otherwise open a thousand clients, each with its own TCP (and TLS) connection. Here every
session with the same connection settings borrows the same ``aiohttp.ClientSession``, whose pool holds at most
:data:`MAX_CONNECTIONS` connections; it is closed when its last user ends and its last request is over. aiohttp, not
httpx, because httpcore's pool walks every connection (and polls its socket) for each request it hands out: shared
by a thousand waits it cost several times the CPU per request, and its queue slowed as it grew.

A shared pool must also survive cancellation: a trigger's request is cancelled whenever the trigger is (a task
timeout, a triggerer handing the trigger elsewhere), and a pool that lost a slot to each (httpcore does, encode/httpcore
1093) would end up full for good. So :func:`exchange` never lets a cancellation reach the client: each request runs
in a task of its own that ends by its own timeouts, and the caller waits on it without passing its cancellation on
(``asyncio.wait``). A cancelled or timed-out caller stops waiting at once; the request finishes (or times out) by
itself and gives its slot back, at most one request timeout later.

httpx loads with this module, which only the hook imports, at run time; aiohttp loads only where a shared session is
first made (the triggerer).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from airflow_checkpoint_sync.exceptions import FelderaConnectionError
from airflow_checkpoint_sync.hooks import feldera_api as api

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    import aiohttp

    from airflow_checkpoint_sync.hooks.connection import FelderaConnectionSettings
    from airflow_checkpoint_sync.hooks.feldera_api import FelderaRequest

__all__ = [
    "MAX_CONNECTIONS",
    "SharedClient",
    "TransportFailure",
    "asend_once",
    "connection_error",
    "exchange",
    "http_client",
    "send_once",
    "shared_client",
]

#: An answer: its status, headers and whole body.
Answer = tuple[int, "Mapping[str, str]", bytes]

#: Connections one shared session keeps to one Feldera, whatever the number of waits using it.
MAX_CONNECTIONS = 20


# --------------------------------------------------------------------------------------------------------------------
# One failure mapping
# --------------------------------------------------------------------------------------------------------------------
class TransportFailure(Exception):
    """The request failed below HTTP, described apart from the client library.

    :param kind: ``connect`` (refused, unresolvable, TLS handshake), ``connect_timeout``, ``read_timeout``,
        ``too_slow`` (the whole answer did not arrive within the request's timeout: a server dripping its body, say)
        or ``broken`` (the connection broke, or what came was not HTTP).
    :param text: what the library said.
    :param server: ``scheme://host:port`` of the request.
    """

    def __init__(self, kind: str, text: str, server: str) -> None:
        super().__init__(text)
        self.kind, self.text, self.server = kind, text, server


def connection_error(failure: TransportFailure, request: FelderaRequest, timeout: float) -> FelderaConnectionError:
    """Our error for a failure below HTTP (from either client library), recording whether the request could have
    reached Feldera; ``timeout`` is the attempt's, for the words of a ``too_slow`` failure."""
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
    if failure.kind == "too_slow":
        return FelderaConnectionError(
            f"no complete answer within {timeout:g}s (the connection's timeout): the server is too slow or stalled",
            sent=True,
            request=where,
        )
    return FelderaConnectionError(f"the connection broke before a full response: {text}", sent=True, request=where)


def _too_slow(timeout: float) -> TransportFailure:
    return TransportFailure("too_slow", f"no complete answer within {timeout:g}s", "")


# --------------------------------------------------------------------------------------------------------------------
# The worker: httpx
# --------------------------------------------------------------------------------------------------------------------
def http_client(settings: FelderaConnectionSettings) -> httpx.Client:
    """A client for ``settings`` (the caller closes it)."""
    return httpx.Client(
        base_url=settings.base_url,
        headers=settings.headers(),
        verify=settings.tls(),
        timeout=httpx.Timeout(settings.timeout, connect=min(settings.timeout, 10.0)),
        follow_redirects=False,
    )


def send_once(client: httpx.Client, request: FelderaRequest, timeout: float) -> Any:
    """One attempt at ``request``: the parsed body, or a FelderaApiError (FelderaConnectionError below HTTP)."""
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
                    raise _too_slow(timeout)
    except httpx.TransportError as exc:
        raise connection_error(_httpx_failure(exc), request, timeout) from exc
    except TransportFailure as failure:
        raise connection_error(failure, request, timeout) from failure
    return api.parse_response(response.status_code, response.headers, bytes(body), request)


def _httpx_failure(exc: httpx.TransportError) -> TransportFailure:
    if isinstance(exc, httpx.ConnectError):
        kind = "connect"
    elif isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        kind = "connect_timeout"
    elif isinstance(exc, httpx.TimeoutException):
        kind = "read_timeout"
    else:
        kind = "broken"
    try:
        url = exc.request.url
        server = f"{url.scheme}://{url.netloc.decode()}"
    except RuntimeError:  # httpx raises when the error has no request attached
        server = "the Feldera server"
    return TransportFailure(kind, str(exc) or type(exc).__name__, server)


# --------------------------------------------------------------------------------------------------------------------
# The triggerer: one shared aiohttp pool per connection and event loop
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class SharedClient:
    """A session shared by the users of one connection's settings in one event loop.

    :param session: the pooled session.
    :param base_url: the API's base URL, which request paths extend.
    :param users: users borrowing it now.
    :param requests: requests in flight, some perhaps no longer awaited by anyone.
    """

    session: aiohttp.ClientSession
    base_url: str
    users: int = 0
    requests: set[asyncio.Task[Any]] = field(default_factory=set)


_SESSIONS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[FelderaConnectionSettings, SharedClient]] = (
    weakref.WeakKeyDictionary()
)
#: Sessions waiting for their last requests before they close (held so that the closing task is not collected).
_CLOSING: set[asyncio.Task[None]] = set()


def _new_session(settings: FelderaConnectionSettings) -> aiohttp.ClientSession:
    import aiohttp  # only where waits run: the worker's path never needs it

    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, ssl=settings.tls())  # an SSLContext, or False
    return aiohttp.ClientSession(
        connector=connector,
        headers=settings.headers(),
        cookie_jar=aiohttp.DummyCookieJar(),  # nothing carried from one wait's answers to another's requests
        trust_env=True,  # proxies from the environment, as httpx's worker path takes them
    )


@contextlib.asynccontextmanager
async def shared_client(settings: FelderaConnectionSettings) -> AsyncIterator[SharedClient]:
    """Borrow the loop's session for ``settings`` for the block (made on first use, closed after the last)."""
    sessions = _SESSIONS.setdefault(asyncio.get_running_loop(), {})
    shared = sessions.get(settings)
    if shared is None:
        shared = sessions[settings] = SharedClient(_new_session(settings), settings.base_url.rstrip("/"))
    shared.users += 1
    try:
        yield shared
    finally:
        shared.users -= 1
        if shared.users == 0 and sessions.get(settings) is shared:
            del sessions[settings]
            if shared.requests:
                closing = asyncio.get_running_loop().create_task(_close_when_idle(shared))
                _CLOSING.add(closing)
                closing.add_done_callback(_CLOSING.discard)
            else:
                await shared.session.close()


async def _close_when_idle(shared: SharedClient) -> None:
    if shared.requests:  # they may have ended before this task ran
        await asyncio.wait(set(shared.requests))
    await shared.session.close()


async def asend_once(shared: SharedClient, request: FelderaRequest, timeout: float) -> Any:
    """One attempt at ``request`` over the shared session: the parsed body, or a FelderaApiError
    (FelderaConnectionError below HTTP)."""
    try:
        status, headers, body = await exchange(shared, request, timeout)
    except TransportFailure as failure:
        raise connection_error(failure, request, timeout) from failure
    return api.parse_response(status, headers, body, request)


async def exchange(shared: SharedClient, request: FelderaRequest, timeout: float) -> Answer:
    """Send ``request`` over the shared session: its status, headers and whole body within ``timeout`` seconds.

    Raises :class:`TransportFailure` (``too_slow`` when the whole answer takes longer: the request itself then ends
    by its own timeouts, in the background).
    """
    task = asyncio.get_running_loop().create_task(_exchange(shared, request, timeout))
    shared.requests.add(task)
    task.add_done_callback(_settled(shared))
    # asyncio.wait, not wait_for(shield(task)): on Python 3.11, wait_for returns the result when the caller is
    # cancelled in the very moment the request completes, swallowing the cancellation, and the cancelled trigger
    # then polls on for ever. wait() raises the caller's cancellation and leaves the request to end by itself.
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        raise _too_slow(timeout)
    return task.result()


def _settled(shared: SharedClient) -> Any:
    def done(task: asyncio.Task[Any]) -> None:
        shared.requests.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a request nobody waits for any more may fail quietly

    return done


async def _exchange(shared: SharedClient, request: FelderaRequest, timeout: float) -> Answer:
    import aiohttp

    began = time.monotonic()
    url = shared.base_url + request.path
    # Every phase has its own bound (a pool slot and connecting, each read), so the request ends without being
    # cancelled; the whole answer is bounded here, so a server that drips its body cannot hold a slot.
    limits = aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=min(timeout, 10.0), sock_read=timeout)
    try:
        async with shared.session.request(
            request.method,
            url,
            params=request.params,
            json=request.json,
            timeout=limits,
            allow_redirects=False,
        ) as response:
            body = bytearray()
            async for chunk in response.content.iter_any():
                body += chunk
                if time.monotonic() - began > timeout:
                    raise _too_slow(timeout)
            return response.status, response.headers, bytes(body)
    except aiohttp.ClientError as exc:
        raise _aiohttp_failure(exc, url) from exc
    except TimeoutError:
        raise _too_slow(timeout) from None


def _aiohttp_failure(exc: aiohttp.ClientError, url: str) -> TransportFailure:
    import aiohttp

    parts = urlsplit(url)
    server = f"{parts.scheme}://{parts.netloc}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return TransportFailure("connect_timeout", str(exc) or "no connection in time", server)
    if isinstance(exc, aiohttp.SocketTimeoutError | aiohttp.ServerTimeoutError):
        return TransportFailure("read_timeout", str(exc) or "no answer in time", server)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return TransportFailure("connect", str(exc.certificate_error), server)
    if isinstance(exc, aiohttp.ClientConnectorError):
        # Its own text names host and port; the cause (refused, a TLS failure) is what says what went wrong.
        return TransportFailure("connect", str(exc.os_error) or type(exc).__name__, server)
    return TransportFailure("broken", str(exc) or type(exc).__name__, server)
