"""OpenLineage datasets of the provider's operators: what each task read and wrote.

Only the OpenLineage provider calls into this module, after a task ran and only when OpenLineage is configured, so
nothing here loads at DAG parse time; without the provider (the ``openlineage`` extra) nothing calls it at all.

Datasets follow OpenLineage's naming: a bucket location is namespace ``s3://<bucket>`` (``gs://``, or ``wasbs://``
for an Azure container) and name ``<prefix>``; a Feldera pipeline is namespace ``feldera://<host:port>`` and name
``<pipeline>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from airflow.providers.openlineage.extractors import OperatorLineage

#: OpenLineage's scheme for each connection type a location can live behind.
SCHEMES = {"aws": "s3", "google_cloud_platform": "gs", "wasb": "wasbs"}


class Dataset(NamedTuple):
    namespace: str
    name: str


def location(where: str, scheme: str = "s3") -> Dataset:
    """A ``bucket[/prefix]`` location (Feldera syncs to S3-compatible storage, hence the default scheme)."""
    container, _, prefix = where.strip("/").partition("/")
    return Dataset(f"{scheme}://{container}", prefix or "/")


def location_behind(conn_id: str | None, where: str) -> Dataset:
    """A location, its scheme from the type of connection ``conn_id`` (S3 when it has none or cannot be read)."""
    scheme = "s3"
    if conn_id:
        try:
            from airflow.sdk import BaseHook

            scheme = SCHEMES.get(str(BaseHook.get_connection(conn_id).conn_type), "s3")
        except Exception:  # lineage never fails a task: the S3 default is what Feldera itself speaks
            scheme = "s3"
    return location(where, scheme)


def pipeline(conn_id: str, name: str) -> Dataset:
    """A Feldera pipeline, its namespace the host (and port) of the base URL the hook uses for connection
    ``conn_id``; the connection id itself when the connection cannot be read."""
    try:
        from airflow.sdk import BaseHook

        from airflow_checkpoint_sync.hooks.connection import settings_of

        # The hook's own reading: a host given without a scheme, or with the port apart, names the same server.
        # Its base URL never holds user info (the reading refuses a key before '@').
        host = urlsplit(settings_of(conn_id, BaseHook.get_connection(conn_id)).base_url).netloc or conn_id
    except Exception:  # lineage never fails a task
        host = conn_id
    return Dataset(f"feldera://{host}", name)


def operator_lineage(inputs: Iterable[Dataset | None], outputs: Iterable[Dataset | None]) -> OperatorLineage[Any, Any]:
    """The OpenLineage provider's ``OperatorLineage`` for these datasets (None entries are left out)."""
    from airflow.providers.common.compat.openlineage.facet import Dataset as OpenLineageDataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    def datasets(items: Iterable[Dataset | None]) -> list[OpenLineageDataset]:
        return [OpenLineageDataset(namespace=d.namespace, name=d.name) for d in items if d is not None]

    return OperatorLineage(inputs=datasets(inputs), outputs=datasets(outputs))
