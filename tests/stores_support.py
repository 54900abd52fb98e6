"""Reading the object stores the replication and verification tests use (moto, Azurite, the GCS emulator) with
their own SDKs, to compare what the provider wrote with what is there."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_checkpoint_sync.testing import AzuriteServer, MotoS3Server

CATALOG = "checkpoints.feldera"
AZURITE = Path(__file__).parent / "azurite" / "node_modules" / ".bin" / "azurite-blob"


def gcs_client() -> Any:
    from google.cloud import storage

    return storage.Client.create_anonymous_client()


def azure_container(azurite: AzuriteServer, container: str) -> Any:
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)


def azure_objects(azurite: AzuriteServer, container: str, prefix: str) -> dict[str, bytes]:
    client = azure_container(azurite, container)
    return {
        b.name[len(prefix) + 1 :]: client.download_blob(b.name).readall()
        for b in client.list_blobs(name_starts_with=f"{prefix}/")
    }


def gcs_objects(container: str, prefix: str) -> dict[str, bytes]:
    client = gcs_client()
    return {b.name[len(prefix) + 1 :]: b.download_as_bytes() for b in client.list_blobs(container, prefix=f"{prefix}/")}


def s3_objects(s3: MotoS3Server, bucket: str, prefix: str) -> dict[str, bytes]:
    client = s3.client()
    return {
        key[len(prefix) + 1 :]: client.get_object(Bucket=bucket, Key=key)["Body"].read()
        for key in s3.keys(bucket, f"{prefix}/")
    }
