"""ReplicateCheckpointsOperator: copy a checkpoint sync location to another store, never leaving it half-written."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_checkpoint_sync import metrics
from airflow_checkpoint_sync.object_stores import store_step
from airflow_checkpoint_sync.task_support import check_max_concurrency

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from airflow_checkpoint_sync.object_stores.base import ObjectStore, VerifyingReader
    from airflow_checkpoint_sync.replication import ReplicationPlan, StoredObject


class ReplicateCheckpointsOperator(BaseOperator):
    """Copy a pipeline's checkpoint sync location to a replica in S3, GCS or Azure Blob Storage.

    Feldera syncs only to S3-compatible stores, and a bucket copied by a cloud's own replication can show a catalog
    before the files it names have arrived. This copy is always restorable:

    * every object under ``source`` except ``owner.json`` that is missing at ``destination``, or differs from the
      source (size, and the source fingerprint recorded on the copy), is copied; the rest is skipped;
    * each copy is streamed, or for an object up to 16 MB sent in one request that carries the source's MD5 (so
      the store refuses a body that is not the listed content); memory does not grow with object size; every copy
      is checked against the source's size and MD5 when the source knows it, and done server-side when both sides
      are one S3 endpoint and connection;
    * the catalog (``checkpoints.feldera``), as read *before* the listing, is written last, and only once every
      object is in place at its full size: a replica's catalog never names data that is not there, even if the
      task dies half-way. Running again completes the copy and copies only what is missing.

    Nothing at the destination is deleted unless ``delete_removed=True``, and then only after the new catalog is
    in place. To restore from a replica that is not S3-compatible, replicate it back to an S3-compatible prefix and
    pass that prefix to :class:`~airflow_checkpoint_sync.operators.restore.RestoreCheckpointOperator` as
    ``read_bucket``.

    .. seealso::
        :ref:`howto/operator:ReplicateCheckpointsOperator`

    :param source_conn_id: connection of the source store: ``aws`` (S3 or S3-compatible, through its
        ``endpoint_url``), ``google_cloud_platform`` or ``wasb``. (templated)
    :param source: ``bucket[/prefix]`` of the source: the pipeline's sync ``bucket`` (or a replica). (templated)
    :param destination_conn_id: connection of the replica's store: ``aws``, ``google_cloud_platform`` or ``wasb``.
        (templated)
    :param destination: ``bucket[/prefix]`` (or ``container[/prefix]`` for Azure) of the replica. (templated) On
        the source's connection it must lie outside the source, and must not contain it; an overlap is refused
        before anything is written.
    :param delete_removed: delete replica objects no longer at the source (checkpoints removed by retention),
        after the new catalog is in place.
    :param max_concurrency: objects copied at the same time, 1 to 32.
    :return: the report: ``copied``, ``skipped``, ``deleted``, ``bytes_copied``, ``newest_checkpoint_uuid``,
        ``source`` and ``destination``.
    """

    template_fields: Sequence[str] = ("source_conn_id", "source", "destination_conn_id", "destination")
    ui_color = "#c7e3ff"

    def __init__(
        self,
        *,
        source_conn_id: str,
        source: str,
        destination_conn_id: str,
        destination: str,
        delete_removed: bool = False,
        max_concurrency: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source_conn_id = source_conn_id
        self.source = source
        self.destination_conn_id = destination_conn_id
        self.destination = destination
        self.delete_removed = delete_removed
        self.max_concurrency = check_max_concurrency(max_concurrency)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """OpenLineage: the source location was read, the destination written."""
        from airflow_checkpoint_sync import lineage

        return lineage.operator_lineage(
            [lineage.location_behind(self.source_conn_id, self.source)],
            [lineage.location_behind(self.destination_conn_id, self.destination)],
        )

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_checkpoint_sync.object_stores import STORE_TYPES, store_for
        from airflow_checkpoint_sync.replication import location_overlap

        try:
            source = store_for(self.source_conn_id, self.source, "source_conn_id", STORE_TYPES)
            destination = store_for(self.destination_conn_id, self.destination, "destination_conn_id", STORE_TYPES)
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None
        # Compared by what the connections reach, not by their ids: two connections to one endpoint are one store.
        with store_step("connecting to the source", source):
            source_location = source.location()
        with store_step("connecting to the destination", destination):
            destination_location = destination.location()
        overlap = location_overlap(source_location, destination_location)
        if overlap:
            raise AirflowFailException(
                f"destination={self.destination!r} overlaps source={self.source!r} in one store "
                f"({source.endpoint}, through connections '{self.source_conn_id}' and "
                f"'{self.destination_conn_id}'): {overlap}; replicate to a location outside the source"
            )
        report = replicate(source, destination, delete_removed=self.delete_removed, workers=self.max_concurrency)
        metrics.replication_ended(self.source, report)
        self.log.info(
            "Replicated %s to %s: %d objects copied (%d bytes), %d already there, %d deleted; newest checkpoint %s",
            source,
            destination,
            report["copied"],
            report["bytes_copied"],
            report["skipped"],
            report["deleted"],
            report["newest_checkpoint_uuid"],
        )
        return report


def replicate(source: ObjectStore, destination: ObjectStore, *, delete_removed: bool, workers: int) -> dict[str, Any]:
    """Make ``destination`` a restorable copy of ``source``; the catalog is written last (see the operator)."""
    from airflow_checkpoint_sync.replication import CATALOG, missing_after_copy, newest_in_catalog

    catalog_body, catalog_fingerprint, plan = _snapshot(source, destination, delete_removed)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="replicate") as pool:
        copied = list(pool.map(lambda obj: _copy(source, destination, obj), plan.copy))
    # With nothing copied, the listing the plan was made from is the proof: it showed every object in full.
    missing = []
    if plan.copy:
        with store_step("listing the destination", destination):
            missing = missing_after_copy(plan, destination.list())
    if missing:
        raise AirflowFailException(
            f"not writing the catalog: {len(missing)} object(s) are not in place at {destination}: "
            + ", ".join(missing[:5])
        )
    if plan.catalog_changed:
        with store_step("writing the catalog to the destination", destination):
            destination.write(CATALOG, io.BytesIO(catalog_body), len(catalog_body), catalog_fingerprint)
    if plan.delete:
        with store_step("deleting removed objects from the destination", destination):
            destination.delete(plan.delete)
    return {
        "source": str(source),
        "destination": str(destination),
        "copied": len(plan.copy),
        "skipped": len(plan.skip),
        "deleted": len(plan.delete),
        "bytes_copied": sum(copied),
        "catalog_written": plan.catalog_changed,
        "newest_checkpoint_uuid": newest_in_catalog(catalog_body),
    }


def _snapshot(
    source: ObjectStore, destination: ObjectStore, delete_removed: bool, attempts: int = 3
) -> tuple[bytes, str | None, ReplicationPlan]:
    """The source's catalog and a plan from a listing taken while that catalog was still the current one.

    The catalog is read first: everything it names was in place when Feldera wrote it. If the listing then shows
    another catalog, a sync landed in between (and its retention may delete objects): read both again.
    """
    from airflow_checkpoint_sync.replication import CATALOG, plan_replication

    for _ in range(attempts):
        try:
            with store_step("reading the catalog of the source", source):
                body, fingerprint = source.read(CATALOG)
        except FileNotFoundError:
            with store_step("listing the source", source):
                per_host = sorted({o.name.split("/", 1)[0] for o in source.list() if o.name.endswith(f"/{CATALOG}")})
            if per_host:
                raise AirflowFailException(
                    f"{source} has the multihost layout (a {CATALOG} in each of {', '.join(per_host)}, none at the "
                    "root): replicating it is not supported yet, because each host's catalog would have to be "
                    "written after that host's data"
                ) from None
            raise AirflowFailException(
                f"{source} holds no {CATALOG}: nothing has been synced there (is it the pipeline's sync bucket?)"
            ) from None
        listed, replica = _list_both(source, destination)
        plan = plan_replication(listed, replica, delete_removed=delete_removed)
        if plan.catalog is not None and plan.catalog.fingerprint == fingerprint:
            return body, fingerprint, plan
    raise AirflowFailException(f"{source} kept changing while it was listed ({attempts} tries); run again later")


def _list_both(source: ObjectStore, destination: ObjectStore) -> tuple[list[StoredObject], list[StoredObject]]:
    """Both listings, taken at the same time (each mostly waits on its store); the replica's with the copy marks
    its listing alone cannot show."""
    from airflow_checkpoint_sync.replication import copy_marks_needed

    def list_source() -> list[StoredObject]:
        with store_step("listing the source", source):
            return source.list()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="replicate-list") as pool:
        listing = pool.submit(list_source)
        with store_step("listing the destination", destination):
            replica = destination.list()
        listed = listing.result()
    with store_step("reading the copy marks of the destination", destination):
        # A copy mark costs a request per object on S3: only for the replicas the listing cannot judge by itself.
        replica = destination.with_copy_marks(replica, copy_marks_needed(listed))
    return listed, replica


def _copy(source: ObjectStore, destination: ObjectStore, obj: StoredObject) -> int:
    """Copy one object, server-side when possible, else streamed and checked; returns the bytes copied."""
    from airflow.sdk.exceptions import AirflowException

    from airflow_checkpoint_sync.object_stores.base import VerifyingReader

    doing = f"copying {obj.name} from the source {source} to the destination"
    with store_step(doing, destination):
        if destination.copy_within(source, obj):
            return obj.size
    reader = VerifyingReader(source.chunks(obj.name))
    try:
        with store_step(doing, destination):
            destination.write(obj.name, io.BufferedReader(reader, 1024 * 1024), obj.size, obj.fingerprint, obj.md5)
    except AirflowException:
        # A store refuses a single-request upload whose body is not the source's MD5 it was sent with: say why.
        if _changed_as_far_as_read(reader, obj):
            raise _changed(source, obj, reader) from None
        raise
    if reader.size != obj.size or (obj.md5 is not None and reader.md5_hex != obj.md5):
        # Remove the bad copy this run just wrote (it records the source's fingerprint, so a rerun would trust it);
        # the catalog is not written, and a rerun copies the object again.
        destination.delete([obj.name])
        raise _changed(source, obj, reader)
    return obj.size


def _changed_as_far_as_read(reader: VerifyingReader, obj: StoredObject) -> bool:
    """Whether what was read of the source shows it is not the listed object (a write can fail before reading all)."""
    if reader.size > obj.size:
        return True
    return reader.finished and (reader.size != obj.size or (obj.md5 is not None and reader.md5_hex != obj.md5))


def _changed(source: ObjectStore, obj: StoredObject, reader: VerifyingReader) -> AirflowFailException:
    return AirflowFailException(
        f"{source}/{obj.name} changed or was damaged while copied: read {reader.size} of {obj.size} bytes"
        + (f", MD5 {reader.md5_hex} instead of {obj.md5}" if obj.md5 else "")
    )
