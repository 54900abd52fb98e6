"""Pure rules for replicating a checkpoint sync location: what to copy, in which order, and what may be deleted.

No I/O. The operator lists both sides, asks :func:`plan_replication` what to do, copies, and writes the catalog
last; the rules that keep a replica restorable at every moment live here once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

# CATALOG is re-exported: a replica may name only objects that are already in place.
from airflow_checkpoint_sync.catalog import CATALOG as CATALOG
from airflow_checkpoint_sync.catalog import catalog_uuids
from airflow_checkpoint_sync.status import newest_uuid

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

#: The writer's lock file: it belongs to the pipeline that owns the bucket, never to a replica.
OWNER = "owner.json"
#: Metadata key on every replicated object: the source object's fingerprint, to recognise an up-to-date copy.
SOURCE_FINGERPRINT = "feldera-source-fingerprint"


@dataclass(frozen=True)
class StoredObject:
    """One object as a listing shows it, its name relative to the prefix.

    ``fingerprint`` identifies the content at the source (an ETag, an MD5, a generation); ``copied_from`` is the
    source fingerprint a replica recorded when it was written (None for objects not written by a replication);
    ``md5`` is the content's MD5 in hex when the store knows it, to verify a streamed copy.
    """

    name: str
    size: int
    fingerprint: str | None = None
    copied_from: str | None = None
    md5: str | None = None


@dataclass(frozen=True)
class ReplicationPlan:
    """What one replication does: ``copy`` (catalog excluded), ``skip``, then the catalog, then ``delete``."""

    copy: tuple[StoredObject, ...]
    skip: tuple[StoredObject, ...]
    catalog: StoredObject | None
    catalog_changed: bool
    delete: tuple[str, ...] = field(default=())


def up_to_date(source: StoredObject, replica: StoredObject | None) -> bool:
    """Whether ``replica`` already holds ``source``: same size, and written from the same source content."""
    if replica is None or replica.size != source.size:
        return False
    if source.fingerprint is None:
        return False  # nothing to compare content with: copy again rather than trust a size
    return source.fingerprint in (replica.copied_from, replica.fingerprint)


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
    source: Iterable[StoredObject], destination: Iterable[StoredObject], *, delete_removed: bool
) -> ReplicationPlan:
    """Which objects to copy and delete so that the destination becomes a copy of the source.

    ``owner.json`` is never copied nor deleted. The catalog is planned apart: the caller writes it only after every
    copy is in place and verified. Deletions (only with ``delete_removed``) come after the catalog.
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
        elif up_to_date(obj, there.get(obj.name)):
            skip.append(obj)
        else:
            copy.append(obj)
    catalog_changed = catalog is not None and not up_to_date(catalog, there.get(CATALOG))
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


def location_overlap(source: tuple[str, ...], destination: tuple[str, ...]) -> str | None:
    """How two locations overlap, or None when replicating one to the other is safe.

    Each location is ``(scheme, endpoint, container, prefix)``: what it is, not which connection reaches it. Only
    locations of one store and container can overlap; then a destination that is, lies inside or holds the source
    would list, overwrite or delete (``delete_removed``) the source's own objects.
    """
    if source[:-1] != destination[:-1]:
        return None
    source_prefix, destination_prefix = source[-1], destination[-1]
    if source_prefix == destination_prefix:
        return "they are the same location"
    if not source_prefix or destination_prefix.startswith(source_prefix + "/"):
        return "the destination lies inside the source"
    if not destination_prefix or source_prefix.startswith(destination_prefix + "/"):
        return "the source lies inside the destination"
    return None


#: A bucket or container name: what S3, GCS and Azure Blob all accept, before their own length and case rules.
_CONTAINER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
LOCATION_FORM = "'bucket-name[/prefix]' without a URL scheme"


def normalize_location(location: object) -> str:
    """``bucket[/prefix]`` in its one spelling (no slash at the end), or ValueError saying what is wrong with it.

    A location is compared, stored in a sync config and listed under this spelling, so ``b/p/`` and ``b/p`` are
    one location. What could name another place than it seems is refused, not repaired: a scheme, empty, ``.`` or
    ``..`` segments, a leading slash, white space, backslashes and control characters.
    """
    if not isinstance(location, str) or not location.strip():
        raise ValueError(f"required: {LOCATION_FORM}")
    text = location.strip()
    if "://" in text or text.lower().startswith(("s3:", "gs:", "az:")):
        raise ValueError(f"{LOCATION_FORM}: drop the scheme")
    if text.endswith("/"):
        text = text[:-1]
    container, _, prefix = text.partition("/")
    if not _CONTAINER.match(container):
        raise ValueError(f"{LOCATION_FORM}: {container!r} is not a bucket name (letters, digits, '.', '-', '_')")
    segments = prefix.split("/") if prefix else []
    if any(segment in ("", ".", "..") for segment in segments):
        raise ValueError(f"{LOCATION_FORM}: no empty, '.' or '..' segments (no '//')")
    if any(c.isspace() or c == "\\" or not c.isprintable() for c in text):
        raise ValueError(f"{LOCATION_FORM}: no white space, backslashes or control characters")
    return text


def split_location(location: str, parameter: str) -> tuple[str, str]:
    """``bucket-or-container[/prefix]`` into its container and its prefix, after :func:`normalize_location`."""
    try:
        text = normalize_location(location)
    except ValueError as exc:
        raise ValueError(f"{parameter}={location!r} is not valid: {exc}") from None
    container, _, prefix = text.partition("/")
    return container, prefix
