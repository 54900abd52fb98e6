"""Object stores a checkpoint location can be replicated between (S3-compatible, GCS, Azure Blob), through the
Airflow hook of each store's provider. The provider SDKs load only when a store is built, at task run time."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_checkpoint_sync.object_stores.base import ObjectStore

#: Connection types a replication can read from and write to.
STORE_TYPES = ("aws", "google_cloud_platform", "wasb")


def store_for(
    conn_id: str, location: str, parameter: str, accepted: tuple[str, ...], location_parameter: str | None = None
) -> ObjectStore:
    """The store behind ``conn_id`` at ``location`` (``bucket-or-container[/prefix]``); errors name ``parameter``
    (the connection) and ``location_parameter`` (the location; by default ``parameter`` without ``_conn_id``)."""
    from airflow.sdk import BaseHook

    from airflow_checkpoint_sync.replication import split_location

    container, prefix = split_location(location, location_parameter or parameter.replace("_conn_id", ""))
    try:
        conn_type = BaseHook.get_connection(conn_id).conn_type
    except Exception as exc:
        raise ValueError(f"{parameter} {conn_id!r}: {exc}") from None
    if conn_type not in accepted:
        raise ValueError(f"{parameter} {conn_id!r} has type {conn_type!r}; expected one of {', '.join(accepted)}")
    if conn_type == "aws":
        from airflow_checkpoint_sync.object_stores.s3 import S3Store

        return S3Store(conn_id, container, prefix)
    if conn_type == "google_cloud_platform":
        from airflow_checkpoint_sync.object_stores.gcs import GCSStore

        return GCSStore(conn_id, container, prefix)
    from airflow_checkpoint_sync.object_stores.azure import AzureBlobStore

    return AzureBlobStore(conn_id, container, prefix)


@contextmanager
def store_step(doing: str, store: ObjectStore) -> Iterator[None]:
    """A store's own error (botocore's, Azure's, Google's) as a task error that says which store and which step."""
    from airflow.sdk.exceptions import AirflowException

    try:
        yield
    except (AirflowException, FileNotFoundError):
        raise
    except Exception as exc:
        raise AirflowException(f"{doing} ({store}) failed: {type(exc).__name__}: {exc}") from exc
