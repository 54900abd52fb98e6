"""pytest fixtures for testing DAGs against the Feldera sandbox and a real S3-compatible server.

Registered through the ``pytest11`` entry point, so any project with ``airflow-checkpoint-sync`` installed gets:

- ``moto_s3``: a :class:`~airflow_checkpoint_sync.testing.MotoS3Server` for the whole session (needs ``moto[server]``,
  the ``testing`` extra);
- ``feldera_sandbox``: a fresh :class:`~airflow_checkpoint_sync.testing.FelderaSandbox` per test;
- ``s3_bucket``: a new, empty bucket on ``moto_s3`` per test;
- ``hostile_feldera``: a factory, ``hostile_feldera("html")``, of
  :class:`~airflow_checkpoint_sync.testing.HostileFeldera` servers, each stopped after the test.

Importing this module is cheap: the sandbox and moto load only when a fixture is used.
"""

from __future__ import annotations

import itertools
import os
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_checkpoint_sync.testing import FelderaSandbox, HostileFeldera, MotoS3Server

_bucket_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3Server]:
    """moto's S3 server on loopback, enforcing its one IAM user's keys; stopped at the end of the session."""
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    os.environ.setdefault("NO_GCE_CHECK", "True")
    from airflow_checkpoint_sync.testing import MotoS3Server

    with MotoS3Server() as server:
        yield server


@pytest.fixture
def s3_bucket(moto_s3: MotoS3Server) -> str:
    """A new, empty bucket on ``moto_s3``."""
    return moto_s3.create_bucket(f"sandbox-bucket-{os.getpid()}-{next(_bucket_numbers)}")


@pytest.fixture
def feldera_sandbox() -> Iterator[FelderaSandbox]:
    """A fresh Feldera sandbox (enterprise edition, no auth) on a free loopback port, stopped after the test."""
    from airflow_checkpoint_sync.testing import FelderaSandbox

    with FelderaSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def hostile_feldera() -> Iterator[Callable[..., HostileFeldera]]:
    """Start :class:`~airflow_checkpoint_sync.testing.HostileFeldera` servers: ``hostile_feldera(mode, **options)``."""
    from airflow_checkpoint_sync.testing import HostileFeldera

    with ExitStack() as servers:

        def start(mode: str, **options: Any) -> HostileFeldera:
            return servers.enter_context(HostileFeldera(mode, **options))

        yield start
