"""A real S3-compatible server on loopback for tests: moto's server in a child process, stopped by its PID."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import httpx

from .server import LOOPBACK, free_port, stop_child

if TYPE_CHECKING:
    from types import TracebackType

SAFE_ENV = {"AWS_EC2_METADATA_DISABLED": "true", "NO_GCE_CHECK": "True"}


class MotoS3Server:
    """moto's S3 server on ``127.0.0.1`` and a free port.

    With ``enforce_auth=True`` (the default) the server checks request signatures like S3 does: only the keys of the
    IAM user it creates at start (``access_key`` / ``secret_key``) are accepted, so wrong keys really fail with
    ``SignatureDoesNotMatch`` or ``InvalidAccessKeyId``.
    """

    def __init__(self, *, enforce_auth: bool = True, region: str = "us-east-1") -> None:
        self.enforce_auth = enforce_auth
        self.region = region
        self.url = ""
        self.access_key = "testing-access-key"
        self.secret_key = "testing-secret-key"
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: str | None = None

    def start(self) -> MotoS3Server:
        port = free_port()
        self._workdir = tempfile.mkdtemp(prefix="moto-s3-")
        env = {
            **os.environ,
            **SAFE_ENV,
            "MOTO_RECORDER_FILEPATH": os.path.join(self._workdir, "recording.jsonl"),
        }
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://{LOOPBACK}:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/moto-api/", timeout=1).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("moto's S3 server did not start")
            time.sleep(0.1)
        if self.enforce_auth:
            self._create_user()
        return self

    def _create_user(self) -> None:
        # Three unauthenticated calls create the only identity the server will accept from then on.
        httpx.post(f"{self.url}/moto-api/reset-auth", content=b"3", timeout=5).raise_for_status()
        iam = self._boto("iam", "bootstrap", "bootstrap")
        iam.create_user(UserName="feldera-sandbox")
        iam.put_user_policy(
            UserName="feldera-sandbox",
            PolicyName="all",
            PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}',
        )
        key = iam.create_access_key(UserName="feldera-sandbox")["AccessKey"]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]

    def start_recording(self) -> None:
        """Record every request the server receives from now on (see :meth:`recorded_requests`)."""
        httpx.post(f"{self.url}/moto-api/recorder/reset-recording", timeout=5).raise_for_status()
        httpx.post(f"{self.url}/moto-api/recorder/start-recording", timeout=5).raise_for_status()

    def recorded_requests(self) -> list[tuple[str, str]]:
        """``(method, path)`` of each request recorded since :meth:`start_recording`, in arrival order."""
        assert self._workdir is not None
        path = os.path.join(self._workdir, "recording.jsonl")
        if not os.path.exists(path):
            return []
        with open(path) as handle:
            entries = [json.loads(line) for line in handle if line.strip()]
        return [(e["method"], unquote(urlparse(e["url"]).path)) for e in entries]

    def client(self, access_key: str | None = None, secret_key: str | None = None) -> Any:
        """A boto3 S3 client for this server (its own keys by default)."""
        return self._boto("s3", access_key or self.access_key, secret_key or self.secret_key)

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key under ``bucket/prefix``, sorted."""
        paginator = self.client().get_paginator("list_objects_v2")
        return sorted(
            obj["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix) for obj in page.get("Contents", [])
        )

    def _boto(self, service: str, access_key: str, secret_key: str) -> Any:
        import boto3
        from botocore.config import Config

        session: Any = boto3.session.Session()
        return session.client(
            service,
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def pause(self) -> None:
        """Make the server stop answering (SIGSTOP), as an object store that is down for a while looks to a client.

        The kernel still accepts connections, but nothing is answered until :meth:`resume`; a client's read
        timeout decides whether its request fails or is answered late.
        """
        if self._process is not None and self._process.poll() is None:
            os.kill(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Answer again after :meth:`pause` (SIGCONT); requests that waited are handled now."""
        if self._process is not None and self._process.poll() is None:
            os.kill(self._process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server (SIGTERM to its PID, SIGKILL if it lingers)."""
        process, self._process = self._process, None
        stop_child(process)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> MotoS3Server:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
