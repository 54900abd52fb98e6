"""ReplicateCheckpointsOperator: copy a checkpoint sync location to another store, never leaving it half-written."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_checkpoint_sync import metrics
from airflow_checkpoint_sync.rules import params
from airflow_checkpoint_sync.rules.bucket_layout import CATALOG, host_folders
from airflow_checkpoint_sync.rules.locations import location_overlap, same_store
from airflow_checkpoint_sync.rules.replication import (
    copy_marks_needed,
    missing_after_copy,
    newest_in_catalog,
    plan_replication,
)
from airflow_checkpoint_sync.task_support import store_errors

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from airflow_checkpoint_sync.object_stores.base import ObjectStore, VerifyingReader
    from airflow_checkpoint_sync.rules.replication import ReplicationPlan, StoredObject

#: An overlap of the destination with the source (:func:`~.rules.locations.location_overlap`), in words.
OVERLAPS = {
    "same": "they are the same location",
    "inside": "the destination lies inside the source",
    "holds": "the source lies inside the destination",
}


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
    * every copy carries a copy mark (metadata): the source's fingerprint and the MD5 of the content written. A
      replica is skipped only when it holds the source's content: its listed fingerprint is the source's, or its
      mark names the source *and* the store's MD5 of it is still the one the mark recorded. So a copy changed after
      it was made (same size, its metadata kept or not) is copied anew by the next run;
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
    :param destination: ``bucket[/prefix]`` (or ``container[/prefix]`` for Azure) of the replica. (templated) In
        the source's store it must lie outside the source, and must not contain it; an overlap is refused before
        anything is written. The store is what the connections reach, not how they spell it: ``localhost`` and
        ``127.0.0.1``, an explicit default port, AWS's global, regional, dualstack and VPC endpoint host names,
        virtual-host and path style are each one store, and so are two host names that resolve to the same
        address and port.
    :param destination_is_another_store: declare that the destination's connection reaches another store than the
        source's, where that cannot be told otherwise: a host name that does not resolve, or two host names that
        resolve to one address (two stores behind one proxy). Only then does a location whose bucket and prefix
        overlap the source's get written. Two spellings of one endpoint are refused whatever this says.
    :param repair: read every replica object's copy mark (a request per object on S3) and copy anew each object
        without one or whose mark does not match the source's content, even when its listing shows the source's
        content: the remedy for objects a verification names as "not written by a replication". A plain run copies
        anew every copy whose content changed; this also mends copies whose mark alone was lost.
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
        destination_is_another_store: bool = False,
        repair: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source_conn_id = source_conn_id
        self.source = source
        self.destination_conn_id = destination_conn_id
        self.destination = destination
        self.delete_removed = delete_removed
        self.max_concurrency = params.max_concurrency(max_concurrency)
        self.destination_is_another_store = params.flag(destination_is_another_store, "destination_is_another_store")
        self.repair = params.flag(repair, "repair")

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """OpenLineage: the source location was read, the destination written."""
        from airflow_checkpoint_sync import lineage

        return lineage.operator_lineage(
            [lineage.location_behind(self.source_conn_id, self.source)],
            [lineage.location_behind(self.destination_conn_id, self.destination)],
        )

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_checkpoint_sync.object_stores import STORE_TYPES, store_for

        with store_errors("connecting to the stores"):
            source = store_for(self.source_conn_id, self.source, "source_conn_id", STORE_TYPES)
            destination = store_for(self.destination_conn_id, self.destination, "destination_conn_id", STORE_TYPES)
        self._refuse_overlap(source, destination)
        report = replicate(
            source, destination, delete_removed=self.delete_removed, workers=self.max_concurrency, repair=self.repair
        )
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

    def _refuse_overlap(self, source: ObjectStore, destination: ObjectStore) -> None:
        """Fail, before anything is written, when the destination is, lies in or holds the source in one store.

        Compared by what the connections reach, not by their ids nor their spellings: two connections to one
        endpoint are one store, and so are ``localhost`` and ``127.0.0.1``. Only where bucket and prefix overlap is
        the store's identity asked about (and, when the names do not decide it, the hosts looked up).
        """
        from airflow_checkpoint_sync.object_stores import endpoint_addresses

        with store_errors("connecting to the source", source):
            source_location, source_endpoint = source.location(), source.endpoint
        with store_errors("connecting to the destination", destination):
            destination_location, destination_endpoint = destination.location(), destination.endpoint
        overlap = location_overlap(("", "", *source_location[2:]), ("", "", *destination_location[2:]))
        if not overlap:
            return
        source_identity, destination_identity = source.identity(), destination.identity()
        same = same_store(source_identity, destination_identity)
        evidence = f"both are {source_identity}"
        if same is None:
            source_addresses = endpoint_addresses(source_endpoint)
            destination_addresses = endpoint_addresses(destination_endpoint)
            same = same_store(source_identity, destination_identity, source_addresses, destination_addresses)
            if same:
                shared = ", ".join(sorted((source_addresses or set()) & (destination_addresses or set())))
                evidence = f"their hosts resolve to the same address ({shared})"
            elif same is None:
                unresolved = [e for e, a in ((source_endpoint, source_addresses),
                                             (destination_endpoint, destination_addresses)) if a is None]  # fmt: skip
                verb = "does" if len(unresolved) == 1 else "do"
                evidence = f"whether they are one store cannot be told: {' and '.join(unresolved)} {verb} not resolve"
        if same is False or (self.destination_is_another_store and source_identity != destination_identity):
            return
        where = (
            f"destination={self.destination!r} overlaps source={self.source!r} in one store: {OVERLAPS[overlap]}. The "
            f"source's "
            f"connection '{self.source_conn_id}' reaches {source_endpoint}, the destination's "
            f"'{self.destination_conn_id}' reaches {destination_endpoint}: {evidence}"
        )
        if source_identity == destination_identity:
            remedy = "replicate to a location outside the source (another bucket, or a prefix beside it)"
        else:
            remedy = (
                "replicate to a location outside the source (another bucket, or a prefix beside it); if the two "
                "endpoints really are different stores, pass destination_is_another_store=True"
            )
        raise AirflowFailException(f"{where}. Nothing was written: {remedy}")


def replicate(
    source: ObjectStore, destination: ObjectStore, *, delete_removed: bool, workers: int, repair: bool = False
) -> dict[str, Any]:
    """Make ``destination`` a restorable copy of ``source``; the catalog is written last (see the operator).
    ``repair``: read every replica's copy mark and copy anew what has none or does not match (see the operator)."""
    catalog_body, catalog_fingerprint, plan = _snapshot(source, destination, delete_removed, repair=repair)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="replicate") as pool:
        copied = list(pool.map(lambda obj: _copy(source, destination, obj), plan.copy))
    # With nothing copied, the listing the plan was made from is the proof: it showed every object in full.
    missing = []
    if plan.copy:
        with store_errors("listing the destination", destination):
            missing = missing_after_copy(plan, destination.list())
    if missing:
        raise AirflowFailException(
            f"not writing the catalog: {len(missing)} object(s) are not in place at {destination}: "
            + ", ".join(missing[:5])
        )
    if plan.catalog_changed:
        with store_errors("writing the catalog to the destination", destination):
            destination.write(CATALOG, io.BytesIO(catalog_body), len(catalog_body), catalog_fingerprint)
    if plan.delete:
        with store_errors("deleting removed objects from the destination", destination):
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
    source: ObjectStore, destination: ObjectStore, delete_removed: bool, attempts: int = 3, *, repair: bool = False
) -> tuple[bytes, str | None, ReplicationPlan]:
    """The source's catalog and a plan from a listing taken while that catalog was still the current one.

    The catalog is read first: everything it names was in place when Feldera wrote it. If the listing then shows
    another catalog, a sync landed in between (and its retention may delete objects): read both again.
    """
    from airflow_checkpoint_sync.object_stores import read_catalog

    for _ in range(attempts):
        with store_errors("reading the catalog of the source", source):
            found = read_catalog(source)
        if found is None:
            with store_errors("listing the source", source):
                per_host = host_folders(o.name for o in source.list())
            if per_host:
                raise AirflowFailException(
                    f"{source} has the multihost layout (a {CATALOG} in each of {', '.join(per_host)}, none at the "
                    "root): replicating it is not supported yet, because each host's catalog would have to be "
                    "written after that host's data"
                )
            raise AirflowFailException(
                f"{source} holds no {CATALOG}: nothing has been synced there (is it the pipeline's sync bucket?)"
            )
        body, fingerprint = found
        listed, replica = _list_both(source, destination, repair=repair)
        plan = plan_replication(listed, replica, delete_removed=delete_removed, repair=repair)
        if plan.catalog is not None and plan.catalog.fingerprint == fingerprint:
            return body, fingerprint, plan
    raise AirflowFailException(f"{source} kept changing while it was listed ({attempts} tries); run again later")


def _list_both(
    source: ObjectStore, destination: ObjectStore, *, repair: bool = False
) -> tuple[list[StoredObject], list[StoredObject]]:
    """Both listings, taken at the same time (each mostly waits on its store); the replica's with the copy marks
    its listing alone cannot show (every one with ``repair``)."""

    def list_source() -> list[StoredObject]:
        with store_errors("listing the source", source):
            return source.list()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="replicate-list") as pool:
        listing = pool.submit(list_source)
        with store_errors("listing the destination", destination):
            replica = destination.list()
        listed = listing.result()
    with store_errors("reading the copy marks of the destination", destination):
        # A copy mark costs a request per object on S3: only for the replicas the listing cannot judge by itself.
        replica = destination.with_copy_marks(replica, None if repair else copy_marks_needed(listed))
    return listed, replica


def _copy(source: ObjectStore, destination: ObjectStore, obj: StoredObject) -> int:
    """Copy one object, server-side when possible, else streamed and checked; returns the bytes copied."""
    from airflow.sdk.exceptions import AirflowException

    from airflow_checkpoint_sync.object_stores.base import SINGLE_REQUEST_MAX, VerifyingReader

    doing = f"copying {obj.name} from the source {source} to the destination"
    with store_errors(doing, destination):
        if destination.copy_within(source, obj):
            return obj.size
    reader = VerifyingReader(source.chunks(obj.name))
    try:
        with store_errors(doing, destination):
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
    if obj.md5 is None and obj.size > SINGLE_REQUEST_MAX:
        # Streamed from a source without an MD5 (a multipart upload): the content's MD5 is known only now.
        with store_errors(f"recording the copy mark of {obj.name} at the destination", destination):
            destination.record_content(obj.name, obj.fingerprint, reader.md5_hex)
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
