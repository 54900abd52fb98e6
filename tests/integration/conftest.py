"""The fixtures integration tests share: the sandbox (test files with other needs define their own ``feldera``), and
the object stores replication and verification run against."""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING

import pytest
from airflow_support import aws_connection, feldera_connection
from feldera_setup import Feldera
from stores_support import AZURITE, gcs_client

from airflow_checkpoint_sync.testing import AzuriteServer, FelderaSandbox, GcsEmulatorServer, MotoS3Server

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def feldera(
    airflow_db: str, moto_s3: MotoS3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Feldera]:
    """A fresh sandbox (no API key) behind ``feldera_default``, with moto and a new bucket."""
    with FelderaSandbox() as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(sandbox.url))
        yield Feldera(sandbox, moto_s3, s3_bucket)


@pytest.fixture(scope="module")
def azurite() -> Iterator[AzuriteServer]:
    """Azurite's Blob service on loopback, for the module."""
    with AzuriteServer(AZURITE) as server:
        yield server


@pytest.fixture(scope="module")
def gcs() -> Iterator[GcsEmulatorServer]:
    """gcp-storage-emulator on loopback, for the module."""
    with GcsEmulatorServer() as server:
        yield server


@pytest.fixture
def stores(
    airflow_db: str,
    moto_s3: MotoS3Server,
    s3_bucket: str,
    azurite: AzuriteServer,
    gcs: GcsEmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Feldera]:
    """A fresh sandbox, with a new Azure container and GCS bucket of one name (``feldera.container``) and the
    connections ``s3_dr``, ``s3_other`` (the same moto endpoint), ``azure_dr`` and ``gcs_dr``."""
    from azure.storage.blob import BlobServiceClient

    container = f"dr{random.randrange(10**9)}"
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(container)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    gcs_client().create_bucket(container)
    with FelderaSandbox() as sandbox:
        connections = {
            "feldera_default": feldera_connection(sandbox.url),
            "s3_dr": aws_connection(moto_s3),
            "s3_other": aws_connection(moto_s3),  # same endpoint, another connection: streamed, not server-side
            "azure_dr": json.dumps({"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string}}),
            "gcs_dr": json.dumps({"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True}}),
        }
        for conn_id, value in connections.items():
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)
        feldera = Feldera(sandbox, moto_s3, s3_bucket)
        feldera.container = container  # type: ignore[attr-defined]
        yield feldera
