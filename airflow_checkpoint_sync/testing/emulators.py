"""Azurite (Azure Blob) and gcp-storage-emulator (GCS) on loopback, each stopped by its PID.

Neither talks to anything but loopback: Azurite runs with ``--disableTelemetry``, in memory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from .moto_server import SAFE_ENV
from .server import LOOPBACK, free_port, stop_child

if TYPE_CHECKING:
    from types import TracebackType

# Azurite's documented development account; it exists only inside the emulator.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class _Server:
    """A child process serving on a free loopback port; ``url`` is where."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def _launch(self, command: list[str], ready: str) -> None:
        self._process = subprocess.Popen(
            command, env={**os.environ, **SAFE_ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(ready, timeout=1)
                return
            except httpx.TransportError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{command[0]} did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server (SIGTERM to its PID, SIGKILL if it lingers)."""
        process, self._process = self._process, None
        stop_child(process)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class AzuriteServer(_Server):
    """Azurite's blob service, in memory, telemetry off.

    :param executable: the ``azurite-blob`` program (npm ``azurite@3.35.0``, the last release for Node 20);
        defaults to ``$AZURITE_BLOB``, then ``azurite-blob`` on the PATH.
    """

    def __init__(self, executable: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.executable = str(executable or os.environ.get("AZURITE_BLOB") or shutil.which("azurite-blob") or "")

    def __enter__(self) -> AzuriteServer:
        if not self.executable or not Path(self.executable).exists():
            raise RuntimeError(
                f"azurite-blob not found ({self.executable or 'not on PATH'}): install npm azurite@3.35.0 "
                "(in this repository: make install)"
            )
        self._launch(
            [
                self.executable,
                "--blobHost",
                LOOPBACK,
                "--blobPort",
                str(self.port),
                "--inMemoryPersistence",
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
            ],
            f"{self.url}/{AZURITE_ACCOUNT}?comp=list",
        )
        return self

    @property
    def connection_string(self) -> str:
        """For a ``wasb`` connection's ``connection_string`` extra, or ``BlobServiceClient.from_connection_string``."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.url}/{AZURITE_ACCOUNT};"
        )


class GcsEmulatorServer(_Server):
    """gcp-storage-emulator, in memory; clients reach it through ``STORAGE_EMULATOR_HOST`` (set it to ``url``)
    and an anonymous client (a ``google_cloud_platform`` connection with the extra ``is_anonymous: true``)."""

    def __enter__(self) -> GcsEmulatorServer:
        executable = Path(sys.executable).parent / "gcp-storage-emulator"
        self._launch(
            [str(executable), "start", f"--host={LOOPBACK}", f"--port={self.port}", "--in-memory"],
            f"{self.url}/storage/v1/b",
        )
        return self
