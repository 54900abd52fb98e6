"""What the direct object paths (``s3_direct``, ``azure_direct``) share: their HTTP pool, and when not to use one.

A replication of a sync location moves thousands of small objects, two requests each. Through a cloud SDK each
request costs 2 to 3 ms of CPU in the SDK's generic machinery (hooks or policies, request building, response
parsing), which is most of what the worker spends on a small object, under one interpreter lock; rclone spends a
fraction of that. A direct path sends an object's GET or single-request PUT itself, signed with the store's own
credentials, at about a third of the CPU.

It is an optimisation only, under one rule: where it could differ from the SDK it is not used (a proxy, an
authentication it does not reproduce), and a request it cannot complete is handed back to the SDK, which then makes
it with its own retries and error messages. An answer that says the address or the signature is not what the store
wants (a redirect, 400, 401, 403) turns the direct path off for the rest of the store's life.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)


class DirectPath:
    """What both direct paths share: their pool, whether they are still in use, and sending one request.

    :param where: what the path reaches (for the log line when a store refuses it).
    :param verify: TLS verification: True, False, or the path of a CA bundle.
    :param pool_size: connections kept open.
    :param timeouts: ``(connect, read)`` seconds.
    """

    def __init__(self, where: str, *, verify: bool | str, pool_size: int, timeouts: tuple[float, float]) -> None:
        self.where = where
        self._pool = pool(verify, pool_size, timeouts)
        #: False once a store has refused the way this path sends (the SDK makes every request from then on).
        self.enabled = True

    def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        expected: int,
        body: bytes | None = None,
        *,
        stream: bool = False,
    ) -> Any | None:
        """The response to one request when the store answered ``expected``; None when the SDK should make the
        request instead (a connection failure, an answer about this request, or a refusal of the path itself, which
        turns it off)."""
        import urllib3

        try:
            response = self._pool.request(method, url, body=body, headers=headers, preload_content=not stream)
        except urllib3.exceptions.HTTPError:
            return None
        if response.status == expected:
            return response
        data = response.data  # read whole, and the connection goes back to the pool
        response.release_conn()
        if refused(response.status, data):
            log.info("The direct path to %s answered %s with %d; the SDK makes its requests from now on",
                     self.where, method, response.status)  # fmt: skip
            self.enabled = False
        return None

    def close(self) -> None:
        self._pool.clear()


P = TypeVar("P", bound=DirectPath)


class LazyPath(Generic[P]):
    """A store's direct path, made on first use by ``make`` (None where it cannot stand in for the SDK), once,
    whatever the number of copy threads asking; a failure to make it leaves every request to the SDK.

    :param make: builds the path, or returns None.
    :param where: the store, for the debug line when making it fails.
    """

    def __init__(self, make: Callable[[], P | None], where: str) -> None:
        self._make = make
        self._where = where
        self._path: P | None = None
        self._made = False
        self._lock = threading.Lock()

    def get(self) -> P | None:
        """The path while it is in use, else None."""
        with self._lock:
            if not self._made:
                self._made = True
                try:
                    self._path = self._make()
                except Exception:  # an optimisation only: the SDK makes every request, and says what fails
                    log.debug("No direct path to %s", self._where, exc_info=True)
        return self._path if self._path is not None and self._path.enabled else None

    def set(self, path: P | None) -> None:
        """Use ``path`` from now on (tests give a path a store refuses)."""
        with self._lock:
            self._path, self._made = path, True


def pool(verify: bool | str, size: int, timeouts: tuple[float, float]) -> Any:
    """A urllib3 pool of ``size`` connections per host, without retries (the SDK's take over), with ``(connect,
    read)`` timeouts; TLS verified with the CA bundle the SDKs use (certifi's) unless ``verify`` is False or a
    bundle's path."""
    import urllib3

    tls: dict[str, Any] = {"cert_reqs": "CERT_NONE"}
    if verify is not False:
        import certifi

        tls = {"cert_reqs": "CERT_REQUIRED", "ca_certs": verify if isinstance(verify, str) else certifi.where()}
    return urllib3.PoolManager(
        num_pools=4, maxsize=size, retries=False, timeout=urllib3.Timeout(connect=timeouts[0], read=timeouts[1]), **tls
    )


def proxied(url: str) -> bool:
    """Whether the environment sends requests for ``url`` through a proxy (the SDKs honour it; a direct path not)."""
    from urllib.request import getproxies, proxy_bypass

    parts = urlsplit(url)
    return parts.scheme in getproxies() and not proxy_bypass(parts.hostname or "")


def sendable(key: str) -> bool:
    """Whether urllib3 sends a request for ``key`` to that very key: it resolves ``.`` and ``..`` path segments,
    which object stores take literally (the SDKs send them as they are)."""
    return not any(segment in (".", "..") for segment in key.split("/"))


#: Error codes about one request's body, not the way the direct path sends requests (S3's, Azure's).
_BODY_ERRORS = (b"<Code>BadDigest</Code>", b"<Code>InvalidDigest</Code>", b"<Code>Md5Mismatch</Code>")


def refused(status: int, body: bytes = b"") -> bool:
    """Whether an answer says the direct path addresses or signs wrongly for this store (so it stops being used),
    rather than something about this one request (a missing object, a conflict, throttling, a server error, a body
    that is not the content its checksum names)."""
    if any(code in body for code in _BODY_ERRORS):
        return False
    return 300 <= status < 500 and status not in (404, 408, 409, 412, 429)


def streamed(response: Any, chunk_size: int) -> Any:
    """The response's body in chunks; its connection goes back to the pool at the end."""
    try:
        yield from response.stream(chunk_size)
    finally:
        response.release_conn()
