"""Serving the sandbox: in-process on a free loopback port (``FelderaSandbox``), or from the command line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any

import uvicorn

from .app import create_app
from .control import SandboxControl
from .engine import SandboxEngine
from .faults import FaultInjector
from .settings import SandboxSettings, Timings

if TYPE_CHECKING:
    from types import TracebackType

LOOPBACK = "127.0.0.1"


class FelderaSandbox:
    """A Feldera pipeline-manager double served on loopback for the duration of a ``with`` block.

    :param api_key: when set, every ``/v0`` request must carry ``Authorization: Bearer <api_key>`` (or a key of
        ``read_api_keys``); this key has Feldera's Write role.
    :param read_api_keys: keys with Feldera's Read role: every GET works, and every request that changes something
        (and the ad-hoc query) is 403 ``InsufficientPermissions``, as Feldera's RBAC answers.
    :param edition: ``"enterprise"`` (default) or ``"community"``, which answers 501 ``EnterpriseFeature`` on the
        checkpoint, sync, activate, standby and graceful-stop endpoints.
    :param profile: the Feldera release line to answer as: ``"0.369"`` (default; ``running`` in the sync status)
        or ``"0.337"`` (no ``running``; see :class:`~airflow_checkpoint_sync.testing.settings.VersionProfile`).
        Unset, ``$FELDERA_SANDBOX_PROFILE`` decides, so one setting runs a whole test suite against another line.
    :param sync_running_field: ``False`` is the same as ``profile="0.337"`` (kept for existing callers).
    :param env_credentials: ``(access_key, secret_key)`` the sandbox uses for a bucket when the sync config has no
        keys: the stand-in for Feldera's own environment credentials (IAM role, workload identity).
    :param timings: how long each simulated step takes; see :class:`Timings`.
    :param port: the loopback port to serve on; a free one by default.
    :param host: the loopback address to bind (127.0.0.1, ::1 or localhost).
    :param record_bodies: keep every response body in the request log (for contract checks).
    :param ssl_certfile: serve HTTPS with this certificate (PEM); ``ssl_keyfile`` is its private key.

    ``.url`` is the base URL to give a Feldera connection; ``.control`` drives faults, the clock and the request log.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        read_api_keys: tuple[str, ...] = (),
        edition: str = "enterprise",
        profile: str | None = None,
        sync_running_field: bool | None = None,
        env_credentials: tuple[str, str] | None = None,
        timings: Timings | None = None,
        port: int = 0,
        host: str = LOOPBACK,
        record_bodies: bool = False,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
    ) -> None:
        if profile is None and sync_running_field is None:
            # One setting runs a whole suite against another release line.
            profile = os.environ.get("FELDERA_SANDBOX_PROFILE") or None
        self.engine = SandboxEngine(
            settings=SandboxSettings(
                edition=edition,
                api_key=api_key,
                read_api_keys=tuple(read_api_keys),
                sync_running_field=sync_running_field,
                profile=profile,
                env_credentials=env_credentials,
            ),
            timings=timings or Timings(),
            record_bodies=record_bodies,
        )
        self.faults = FaultInjector()
        self._tls = (ssl_certfile, ssl_keyfile) if ssl_certfile else None
        self._host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.url = ""
        self.control = SandboxControl("")

    def start(self) -> FelderaSandbox:
        """Start serving; returns self. Prefer ``with FelderaSandbox() as sandbox:``."""
        self._socket = bind_socket(self._host, self._port)
        port = self._socket.getsockname()[1]
        scheme = "https" if self._tls else "http"
        self.url = f"{scheme}://{self._host}:{port}"
        # The control API is reached in-process, so it can skip TLS verification of the sandbox's own certificate.
        self.control = SandboxControl(self.url, verify=False)
        self.engine.start()
        config = uvicorn.Config(
            create_app(self.engine, self.faults),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            ssl_certfile=self._tls[0] if self._tls else None,
            ssl_keyfile=self._tls[1] if self._tls else None,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="feldera-sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Feldera sandbox did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and end the sandbox's threads."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self.engine.shutdown()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> FelderaSandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def describe(self) -> dict[str, Any]:
        return {"url": self.url, **self.engine.describe()}


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host`` (which must be loopback) and ``port`` (0 for a free one)."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"the sandbox binds loopback only (127.0.0.1, ::1 or localhost), not {host!r}")
    family = socket.AF_INET6 if host == "::1" else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def stop_child(process: subprocess.Popen[bytes] | None) -> None:
    """Stop a server this process started: SIGTERM to its PID (after SIGCONT, in case it was paused), then SIGKILL
    if it lingers."""
    if process is None or process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGCONT)
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def free_port() -> int:
    """A loopback port nothing listens on right now (for a child server, or as a place that refuses connections)."""
    sock = bind_socket(LOOPBACK, 0)
    port: int = sock.getsockname()[1]
    sock.close()
    return port
