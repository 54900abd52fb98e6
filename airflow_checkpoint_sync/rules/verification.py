"""Pure rules for verifying a checkpoint sync location (or a replica of one): what must be there, what is wrong.

No I/O. The operator lists the location, reads its catalog and the manifest of each checkpoint the catalog names,
and asks :func:`verify_location` for the verdict. What Feldera's closed bucket format lets this check:

- the catalog ``checkpoints.feldera`` exists and is the JSON list of ``CheckpointMetadata`` Feldera writes, each
  entry a UUIDv7;
- each checkpoint it names has its manifest ``dependencies/<uuid>.json`` (Feldera's ``CheckpointDependencies``:
  a list of batch file names, or ``{"batches": [...], "state_files": [...]}``), and every batch file the manifest
  names is at the location's root and not empty; where a manifest also records sizes (``files``:
  ``[{"key", "size"}]``, as the sandbox's do) each file has exactly that size;
- an object a replication wrote still holds the content it wrote: the store's MD5 of it is the MD5 its copy mark
  recorded (a copy damaged after it was made, its metadata kept or not); in a replica (a location some of whose
  objects carry copy marks) an object without one was not written by a replication.

Not checkable, and reported as such (``cannot_judge``), never as damage: a location with no manifest under
``dependencies/`` at all (Feldera documents that layout for multihost pipelines only; a single-host pipeline's is not
public), a manifest in a format not known here, the per-checkpoint state files (``state_files``) of single-host
pipelines, whose place in the bucket Feldera does not document, and the content of any file beyond its size and the
store's own checksum. A copy whose store keeps no MD5 of it (an S3 multipart upload, an Azure blob committed from
blocks) or whose mark records none is judged by presence and size only: the verdict counts those
(:attr:`Verification.judged_by_size_only`). The multihost layout (a catalog per ``host<N>/`` folder) is named as such
and not verified yet.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_checkpoint_sync.rules.bucket_layout import CATALOG, OWNER, catalog_uuids, host_folders
from airflow_checkpoint_sync.rules.replication import StoredObject, content_changed, written_md5
from airflow_checkpoint_sync.rules.status import is_checkpoint_uuid, uuid7_time

if TYPE_CHECKING:
    import datetime as dt

#: The folder of per-checkpoint manifests, at the root of the location.
MANIFESTS = "dependencies"
DAY_S = 86400.0
#: What mends a copy whose content changed: the replication's plan sees it and copies it again.
RERUN = "run the replication again to copy it anew"
#: What mends an object without a copy mark, even one whose content is the source's (a plain rerun skips those).
REPAIR = "run the replication again with repair=True to copy it anew"


def manifest_name(uuid: str) -> str:
    """Where a checkpoint's manifest lies, relative to the location."""
    return f"{MANIFESTS}/{uuid}.json"


@dataclass(frozen=True)
class NamedFile:
    """A file a checkpoint's manifest names, relative to the location; ``size`` when the manifest records it."""

    name: str
    size: int | None = None


def manifest_files(body: bytes) -> tuple[NamedFile, ...] | None:
    """The files a manifest names at the location's root, or None when it is not a manifest format known here."""
    try:
        document: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(document, list):  # CheckpointDependencies V1: the batch names
        batches: Any = document
    elif isinstance(document, Mapping) and isinstance(document.get("batches"), list):  # V2
        batches = document["batches"]
    else:
        batches = None
    recorded = document.get("files") if isinstance(document, Mapping) else None
    if batches is None and not isinstance(recorded, list):
        return None
    sizes: dict[str, int] = {}
    for item in recorded if isinstance(recorded, list) else ():
        if not (isinstance(item, Mapping) and isinstance(item.get("key"), str) and type(item.get("size")) is int):
            return None
        sizes[item["key"]] = item["size"]
    names = list(batches or ()) + [name for name in sizes if name not in (batches or ())]
    if not all(isinstance(name, str) and name for name in names):
        return None
    return tuple(NamedFile(name, sizes.get(name)) for name in names)


@dataclass(frozen=True)
class Retention:
    """Feldera's remote retention: a checkpoint is deleted only while more than ``min_count`` remain *and* only once
    it is ``min_age_days`` old. ``source`` says where the values came from, for the report."""

    min_count: int = 10
    min_age_days: int = 30
    source: str = "Feldera's defaults"


def deleted_by_next_push(uuids: Sequence[str], retention: Retention, now: dt.datetime) -> tuple[str, ...]:
    """The checkpoints the next push's retention deletes: oldest first, counting the pushed one among those kept."""
    remaining = len(uuids) + 1
    doomed = []
    for uuid in sorted(uuids, key=uuid7_time):
        if remaining <= retention.min_count:
            break
        if (now - uuid7_time(uuid)).total_seconds() >= retention.min_age_days * DAY_S:
            doomed.append(uuid)
            remaining -= 1
    return tuple(doomed)


def named_checkpoints(catalog: bytes | None) -> tuple[str, ...]:
    """The checkpoint uuids (UUIDv7s) a catalog names, oldest first; () when there is none or it cannot be read."""
    return tuple(u for u in (catalog_uuids(catalog) or ()) if is_checkpoint_uuid(u)) if catalog is not None else ()


@dataclass
class Verification:
    """The verdict on one location: every problem found, and what was looked at."""

    checkpoints: tuple[str, ...] = ()
    problems: list[str] = field(default_factory=list)
    files_checked: int = 0
    #: Manifests of checkpoints the catalog does not name: a push that died before its catalog, or one under way.
    uncatalogued: tuple[str, ...] = ()
    #: Copies whose content could not be judged (no MD5 from the store, or none recorded by their replication):
    #: judged by presence and size only. Not a problem; said so the report does not claim more than was checked.
    judged_by_size_only: tuple[str, ...] = ()
    #: What could not be judged because the location's layout is not one known here (Feldera's single-host bucket
    #: layout is not public): reported, never counted as damage.
    cannot_judge: list[str] = field(default_factory=list)


def verify_location(
    catalog: bytes | None, listing: Sequence[StoredObject], manifests: Mapping[str, bytes | None]
) -> Verification:
    """Check a location from its ``catalog`` body (None when absent), its ``listing`` and the ``manifests`` read for
    the checkpoints the catalog names (uuid to body, None when absent)."""
    objects = {obj.name: obj for obj in listing}
    result = Verification()
    if catalog is None:
        hosts = host_folders(objects)
        if hosts:
            result.problems.append(
                f"this is the multihost layout (a {CATALOG} in each of {', '.join(hosts)}, none at the root): "
                "verifying it is not supported yet"
            )
        else:
            result.problems.append(f"there is no {CATALOG}: nothing has been synced here")
        return result
    uuids = catalog_uuids(catalog)
    if uuids is None:
        result.problems.append(f"{CATALOG} is not the JSON list of checkpoints Feldera writes")
        return result
    result.checkpoints = named_checkpoints(catalog)
    result.problems += [
        f"{CATALOG} names {u!r}, which is not a checkpoint uuid (a UUIDv7)" for u in uuids if not is_checkpoint_uuid(u)
    ]
    if result.checkpoints and not any(_is_manifest(name) for name in objects):
        # Feldera documents dependencies/<uuid>.json for the multihost layout only: a location with no manifest
        # there at all is a layout not known here, not a location whose every manifest was lost.
        result.cannot_judge.append(
            f"no checkpoint has a manifest under {MANIFESTS}/ (the layout Feldera documents): the files of the "
            f"{len(result.checkpoints)} checkpoint(s) the catalog names cannot be checked, only the catalog itself"
        )
    else:
        for uuid in result.checkpoints:
            result.problems += _checkpoint_problems(uuid, manifests.get(uuid), objects, result)
    result.problems += _copy_problems(listing, result)
    manifested = {name[len(MANIFESTS) + 1 : -len(".json")] for name in objects if _is_manifest(name)}
    result.uncatalogued = tuple(sorted(manifested - set(result.checkpoints)))
    return result


def _is_manifest(name: str) -> bool:
    return name.startswith(f"{MANIFESTS}/") and name.endswith(".json") and name.count("/") == 1


def _checkpoint_problems(
    uuid: str, manifest: bytes | None, objects: Mapping[str, StoredObject], result: Verification
) -> list[str]:
    if manifest is None:
        return [f"checkpoint {uuid}: its manifest {manifest_name(uuid)} is missing"]
    files = manifest_files(manifest)
    if files is None:
        result.cannot_judge.append(f"checkpoint {uuid}: its manifest {manifest_name(uuid)} is not a format known here")
        return []
    problems = []
    for named in files:
        result.files_checked += 1
        obj = objects.get(named.name)
        if obj is None:
            problems.append(f"checkpoint {uuid}: {named.name} is missing")
        elif named.size is not None and obj.size != named.size:
            problems.append(f"checkpoint {uuid}: {named.name} is {obj.size} bytes, its manifest says {named.size}")
        elif obj.size == 0:
            problems.append(f"checkpoint {uuid}: {named.name} is empty")
    return problems


def is_replica(listing: Sequence[StoredObject]) -> bool:
    """Whether a location is a replica: some of its objects (the catalog, written last, among them) carry a copy
    mark. Feldera's own sync location carries none."""
    return any(obj.copied_from is not None for obj in listing if obj.name != OWNER)


def _copy_problems(listing: Sequence[StoredObject], result: Verification) -> list[str]:
    replica = is_replica(listing)
    problems = []
    size_only = []
    for obj in listing:
        if obj.name == OWNER:
            continue
        if obj.copied_from is None:
            if replica:
                problems.append(
                    f"{obj.name}: it carries no copy mark in a replica, so it was not written by a replication "
                    f"(it was written over after the copy, or put there by something else): {REPAIR}"
                )
            continue
        changed = content_changed(obj)
        if changed:
            problems.append(
                f"{obj.name}: its content's MD5 {obj.md5} is not the {written_md5(obj)} its replication wrote (it "
                f"changed after it was copied): {RERUN}"
            )
        elif changed is None:
            size_only.append(obj.name)
    result.judged_by_size_only = tuple(sorted(size_only))
    return problems


def read_content_problem(obj: StoredObject, size: int, md5: str) -> str | None:
    """What a full read of ``obj`` (``size`` bytes with MD5 ``md5``) shows wrong: a size other than listed, a
    content other than the store's MD5, or, where the store has none, other than the MD5 its replication wrote."""
    if size != obj.size:
        return f"{obj.name}: read {size} of its {obj.size} bytes"
    if obj.md5:
        if md5 != obj.md5:
            return f"{obj.name}: its content's MD5 is {md5}, the store's is {obj.md5}"
        return None
    written = written_md5(obj)
    if written and md5 != written:
        return f"{obj.name}: its content's MD5 is {md5}, not the {written} its replication wrote: {RERUN}"
    return None
