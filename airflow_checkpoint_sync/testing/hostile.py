"""A hostile stand-in for Feldera: what a broken server, a proxy or a captive portal answers instead of Feldera.

For testing that DAGs (and the provider) fail clearly, quickly and without leaking a key when the far side
misbehaves. It binds 127.0.0.1 only, runs in a thread of the test process, and is stopped when its ``with`` block
ends::

    with HostileFeldera("html") as server:
        ...  # point a feldera connection at server.url

Modes:

* ``html``: every answer is a 200 HTML page (a proxy's sign-in page);
* ``empty``: 200 with a JSON content type and no body;
* ``invalid_json``: 200 with a body that is not JSON;
* ``wrong_shape``: 200 with JSON of the wrong type (a list where objects belong);
* ``redirect``: 302 to another address;
* ``slow_body``: 200 whose JSON body arrives one byte every ``drip_s`` seconds;
* ``echo_headers``: 401 whose error message and details quote the request's headers (the API key among them);
* ``future_uuid``: an Enterprise Feldera whose newest synced checkpoint is dated a day ahead (clock skew);
* ``non_v7_uuid``: the same, with a checkpoint uuid of version 4, which carries no time.

Like the sandbox, it imports nothing from the provider.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = (
    "html",
    "empty",
    "invalid_json",
    "wrong_shape",
    "redirect",
    "slow_body",
    "echo_headers",
    "future_uuid",
    "non_v7_uuid",
)


def _uuid7(at: float) -> str:
    """A UUIDv7 carrying the time ``at`` (seconds since the epoch)."""
    value = (int(at * 1000) << 80) | (0x7 << 76) | (0x2 << 62) | (uuid.uuid4().int & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


class HostileFeldera:
    """An HTTP server on 127.0.0.1 that answers in ``mode`` (see the module's docstring).

    :param mode: one of :data:`MODES`.
    :param drip_s: seconds between the bytes of a ``slow_body`` answer.
    """

    def __init__(self, mode: str, *, drip_s: float = 0.5) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.drip_s = drip_s
        #: ``"METHOD /path"`` of every request received, in order.
        self.requests: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._uuid = _uuid7(time.time() + 86400) if mode == "future_uuid" else str(uuid.uuid4())

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def mutating_requests(self) -> list[str]:
        """The requests that would change something on a real Feldera."""
        return [r for r in self.requests if not r.startswith("GET ")]

    def __enter__(self) -> HostileFeldera:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _any(self) -> None:
                owner.requests.append(f"{self.command} {self.path.split('?', 1)[0]}")
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                owner._answer(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="hostile-feldera", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # -- answers ---------------------------------------------------------------------------------------------------
    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        mode = self.mode
        if mode in ("future_uuid", "non_v7_uuid"):
            return self._feldera(handler)
        if mode == "html":
            return _send(handler, 200, "text/html", b"<html><body><h1>Sign in to continue</h1></body></html>")
        if mode == "empty":
            return _send(handler, 200, "application/json", b"")
        if mode == "invalid_json":
            return _send(handler, 200, "application/json", b'{"edition": "Enterprise", ')
        if mode == "wrong_shape":
            return _send(handler, 200, "application/json", b"[1, 2, 3]")
        if mode == "redirect":
            handler.send_response(302)
            handler.send_header("Location", "http://127.0.0.1:9/elsewhere")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return None
        if mode == "slow_body":
            body = json.dumps({"edition": "Enterprise", "version": "0.0.0", "padding": "x" * 200}).encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            try:
                for i in range(len(body)):
                    handler.wfile.write(body[i : i + 1])
                    handler.wfile.flush()
                    time.sleep(self.drip_s)
            except OSError:  # the client gave up, as it should
                pass
            return None
        headers = dict(handler.headers.items())
        message = f"bad credentials: Authorization={headers.get('Authorization')!r}"
        echo = json.dumps({"message": message, "error_code": "Unauthorized", "details": {"headers": headers}})
        return _send(handler, 401, "application/json", echo.encode())

    def _feldera(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        sync = {"bucket": "bucket/p", "endpoint": "http://127.0.0.1:9"}
        answers: dict[str, Any] = {
            "/v0/config": {"edition": "Enterprise", "version": "0.337.0"},
            "/v0/pipelines/p/checkpoint/sync_status": {
                "success": self._uuid,
                "failure": None,
                "periodic": None,
                "running": [],
            },
            "/v0/pipelines/p/checkpoints/remote": [{"uuid": self._uuid}],
        }
        if path in answers:
            return _send(handler, 200, "application/json", json.dumps(answers[path]).encode())
        if path == "/v0/pipelines/p":
            pipeline = {
                "name": "p",
                "deployment_status": "Running",
                "deployment_desired_status": "Running",
                "deployment_error": None,
                "runtime_config": {"storage": {"backend": {"name": "file", "config": {"sync": sync}}}},
            }
            return _send(handler, 200, "application/json", json.dumps(pipeline).encode())
        error = {"message": f"no such endpoint here: {path}", "error_code": "NotFound", "details": None}
        return _send(handler, 404, "application/json", json.dumps(error).encode())


def _send(handler: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
