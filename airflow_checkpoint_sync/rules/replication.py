"""Pure rules for replicating a checkpoint sync location: what to copy, in which order, and what may be deleted.

No I/O. The operator lists both sides, asks :func:`plan_replication` what to do, copies, and writes the catalog
last; the rules that keep a replica restorable at every moment live here once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airflow_checkpoint_sync.rules.bucket_layout import CATALOG, OWNER, catalog_uuids
from airflow_checkpoint_sync.rules.status import newest_uuid

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

#: Metadata key on every replicated object: the source object's fingerprint, to recognise an up-to-date copy.
SOURCE_FINGERPRINT = "feldera-source-fingerprint"
#: Metadata key next to it: the MD5 (hex) of the content the replication wrote, so that a copy whose bytes changed
#: while its metadata survived is not taken for the source's content (Azure spells both with '_').
CONTENT_MD5 = "feldera-content-md5"
_MD5 = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class StoredObject:
    """One object as a listing shows it, its name relative to the prefix.

    ``fingerprint`` identifies the content at the source (an ETag, an MD5, a generation); ``copied_from`` is the
    source fingerprint a replica recorded when it was written (None for objects not written by a replication, ''
    for a copy of a source without one); ``md5`` is the content's MD5 in hex when the store knows it, to verify a
    streamed copy; ``copied_md5`` is the MD5 of the content the replication wrote, recorded next to
    ``copied_from`` (None when not recorded, as by versions before it was).
    """

    name: str
    size: int
    fingerprint: str | None = None
    copied_from: str | None = None
    md5: str | None = None
    copied_md5: str | None = None


def written_md5(replica: StoredObject) -> str | None:
    """The MD5 of the content a replication wrote to ``replica``, as its copy mark records it: the recorded content
    MD5, else the source fingerprint when that is an MD5 (a single-part ETag, a GCS MD5), else None."""
    if replica.copied_md5 and _MD5.match(replica.copied_md5):
        return replica.copied_md5
    if replica.copied_from and _MD5.match(replica.copied_from):
        return replica.copied_from
    return None


def content_changed(replica: StoredObject) -> bool | None:
    """Whether ``replica``'s current content is not what its replication wrote: True or False where the store
    reports the replica's MD5 and its copy mark records the written one, None where that cannot be told."""
    written = written_md5(replica)
    if written is None or replica.md5 is None:
        return None
    return replica.md5 != written


@dataclass(frozen=True)
class ReplicationPlan:
    """What one replication does: ``copy`` (catalog excluded), ``skip``, then the catalog, then ``delete``."""

    copy: tuple[StoredObject, ...]
    skip: tuple[StoredObject, ...]
    catalog: StoredObject | None
    catalog_changed: bool
    delete: tuple[str, ...] = field(default=())


def up_to_date(source: StoredObject, replica: StoredObject | None, *, repair: bool = False) -> bool:
    """Whether ``replica`` already holds ``source``: same size, and the source's content.

    The content is the source's when the replica's listed fingerprint is the source's (a server-side copy's ETag,
    a single-part upload's MD5), or when its copy mark names the source's fingerprint *and* the replica still holds
    what was written: a mark outlives an overwrite that kept the metadata, so it is trusted only where the store's
    MD5 of the replica agrees with the MD5 the mark recorded (or with the source's). With ``repair``, only a mark
    vouches: an object without one is copied again even when its listing shows the source's content.
    """
    if replica is None or replica.size != source.size:
        return False
    if source.fingerprint is None:
        return False  # nothing to compare content with: copy again rather than trust a size
    if not repair and replica.fingerprint == source.fingerprint:
        return True
    if replica.copied_from != source.fingerprint:
        return False
    if replica.md5 is None:
        return True  # the store cannot tell the replica's content (a multipart upload): the mark is all there is
    written = written_md5(replica) or source.md5
    if written is not None and replica.md5 != written:
        return False
    return source.md5 is None or replica.md5 == source.md5


def copy_marks_needed(source: Iterable[StoredObject]) -> Callable[[StoredObject], bool]:
    """Which replicas :func:`up_to_date` needs the copy mark of (a request per object on some stores) to judge
    against ``source``: only those whose size matches and whose listed fingerprint alone does not show the same
    content."""
    by_name = {obj.name: obj for obj in source}

    def needed(replica: StoredObject) -> bool:
        original = by_name.get(replica.name)
        return (
            original is not None
            and original.size == replica.size
            and original.fingerprint is not None
            and original.fingerprint != replica.fingerprint
        )

    return needed


def plan_replication(
    source: Iterable[StoredObject],
    destination: Iterable[StoredObject],
    *,
    delete_removed: bool,
    repair: bool = False,
) -> ReplicationPlan:
    """Which objects to copy and delete so that the destination becomes a copy of the source.

    ``owner.json`` is never copied nor deleted. The catalog is planned apart: the caller writes it only after every
    copy is in place and verified. Deletions (only with ``delete_removed``) come after the catalog. ``repair``: see
    :func:`up_to_date` (the caller then reads every replica's copy mark).
    """
    there = {obj.name: obj for obj in destination}
    copy: list[StoredObject] = []
    skip: list[StoredObject] = []
    catalog = None
    names = set()
    for obj in sorted(source, key=lambda o: o.name):
        if obj.name == OWNER:
            continue
        names.add(obj.name)
        if obj.name == CATALOG:
            catalog = obj
        elif up_to_date(obj, there.get(obj.name), repair=repair):
            skip.append(obj)
        else:
            copy.append(obj)
    catalog_changed = catalog is not None and not up_to_date(catalog, there.get(CATALOG), repair=repair)
    delete: tuple[str, ...] = ()
    if delete_removed:
        delete = tuple(sorted(n for n in there if n not in names and n not in (OWNER, CATALOG)))
    return ReplicationPlan(tuple(copy), tuple(skip), catalog, catalog_changed, delete)


def missing_after_copy(plan: ReplicationPlan, destination: Iterable[StoredObject]) -> list[str]:
    """Objects the catalog may name that the destination does not hold in full: each must be empty to go on."""
    there = {obj.name: obj for obj in destination}
    return [
        f"{obj.name} ({'missing' if obj.name not in there else f'{there[obj.name].size} of {obj.size} bytes'})"
        for obj in (*plan.copy, *plan.skip)
        if obj.name not in there or there[obj.name].size != obj.size
    ]


def newest_in_catalog(body: bytes) -> str | None:
    """The newest checkpoint uuid a catalog names, for the report; None if it cannot be read."""
    return newest_uuid(catalog_uuids(body) or ())
