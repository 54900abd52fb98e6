"""What Feldera writes in a sync location: its catalog and which checkpoints it names, the writer's lock file,
and whether a restore can find its own checkpoint.

No I/O. Feldera writes its catalog ``checkpoints.feldera`` last, after every state file of a push, as the JSON list
of ``CheckpointMetadata`` its checkpointer keeps (``[{"uuid": ..., "fingerprint": ..., ...}, ...]``): a location with
no catalog holds no finished push, and a catalog that does not name a uuid cannot give that checkpoint back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Feldera's catalog of synced checkpoints, at the root of the configured prefix (single host).
CATALOG = "checkpoints.feldera"
#: The writer's lock file: it belongs to the pipeline that owns the bucket, never to a replica.
OWNER = "owner.json"


def host_folders(names: Iterable[str]) -> list[str]:
    """The host folders of a multihost location (a catalog in each ``host<N>/``, none at the root), from the names
    listed there; empty for any other layout."""
    return sorted({name.split("/", 1)[0] for name in names if name.endswith(f"/{CATALOG}")})


def catalog_uuids(body: bytes) -> tuple[str, ...] | None:
    """The checkpoint uuids a catalog names, oldest first as written; None when it cannot be read as one.

    Reads Feldera's list of ``CheckpointMetadata``, and also ``{"checkpoints": [...]}`` (locations an earlier
    version of this provider's sandbox wrote). Anything else is None: a format this code does not know is never
    taken to mean "empty".
    """
    try:
        document: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    entries = document.get("checkpoints") if isinstance(document, Mapping) else document
    if not isinstance(entries, list):
        return None
    uuids = []
    for entry in entries:
        uuid = entry.get("uuid") if isinstance(entry, Mapping) else None
        if not isinstance(uuid, str):
            return None
        uuids.append(uuid.lower())
    return tuple(uuids)


@dataclass(frozen=True)
class CatalogLook:
    """What one location's catalog says: ``uuids`` it names, or why nothing could be learnt.

    :param location: the location, as the user wrote it (``bucket-name[/prefix]``), for messages.
    :param uuids: the uuids named, when the catalog was read; () when the location holds no catalog.
    :param unknown: why the catalog could not be judged (unreadable, an unknown format); None when it was.
    """

    location: str
    uuids: tuple[str, ...] = ()
    unknown: str | None = None


@dataclass(frozen=True)
class RestoreSource:
    """The verdict on whether a restore will find its checkpoint.

    :param found_in: the location whose catalog names the checkpoint, or None.
    :param refuse: the error to fail with before anything changes, or None to go on.
    :param note: what to log when going on (None when there is nothing to say).
    """

    found_in: str | None = None
    refuse: str | None = None
    note: str | None = None


def restore_source(
    checkpoint: str,
    looks: Sequence[CatalogLook],
    *,
    local_may_have: bool,
    standby: bool,
    fail_if_no_checkpoint: bool,
) -> RestoreSource:
    """Whether a restore of ``checkpoint`` (``"latest"`` or a uuid) can find it, from the catalogs of its locations.

    ``looks`` are the catalogs of ``bucket`` and then, when given, of ``read_bucket``. Feldera looks in local storage
    first, then ``bucket``, and reads ``read_bucket`` only while ``bucket`` holds no checkpoint at all. So a standby
    whose own bucket holds checkpoints is refused: it would follow them, stale, and never ``read_bucket``'s (the
    trap of a standby set up again after a failover and failback). Otherwise a refusal is given only when every
    source is known not to hold the checkpoint: each catalog was read and none names it, the local storage is
    (or is about to be) cleared, the start is not a standby (a standby keeps pulling until the checkpoint appears,
    which is how one is set up before the primary's first push) and a fresh start was not accepted.
    """
    wanted = checkpoint.lower()
    if len(looks) > 1 and looks[0].uuids:
        bucket, ignored = looks[0], looks[1]
        if standby:
            return RestoreSource(
                refuse=(
                    f"its own bucket {bucket.location} already holds {_names(bucket.uuids)}, and Feldera reads "
                    f"read_bucket ({ignored.location}) only while bucket holds no checkpoint: the standby would "
                    f"follow {bucket.location}'s own checkpoints, stale, and never {ignored.location}'s. Give the "
                    "standby a bucket of its own that holds nothing (a new prefix), or leave read_bucket out to "
                    f"follow {bucket.location}"
                )
            )
        looks = [bucket]
        not_read = f" ({ignored.location} is not read: Feldera reads read_bucket only while bucket holds no checkpoint)"
    else:
        not_read = ""
    verdict = _search(wanted, checkpoint, looks, local_may_have, standby, fail_if_no_checkpoint)
    if not_read:
        return RestoreSource(
            verdict.found_in,
            f"{verdict.refuse}{not_read}" if verdict.refuse else None,
            f"{verdict.note}{not_read}" if verdict.note else None,
        )
    return verdict


def _search(
    wanted: str,
    checkpoint: str,
    looks: Sequence[CatalogLook],
    local_may_have: bool,
    standby: bool,
    fail_if_no_checkpoint: bool,
) -> RestoreSource:
    for look in looks:
        if look.uuids and (wanted == "latest" or wanted in look.uuids):
            return RestoreSource(found_in=look.location, note=f"checkpoint {checkpoint} is in {look.location}")
    what = "a synced checkpoint" if wanted == "latest" else f"checkpoint {checkpoint}"
    unknown = [f"{look.location} ({look.unknown})" for look in looks if look.unknown]
    if unknown:
        return RestoreSource(note=f"could not see whether {what} is in {', '.join(unknown)}; Feldera checks at start")
    checked = " or ".join(look.location for look in looks)
    if local_may_have:
        return RestoreSource(
            note=f"{what} is not in {checked}; the local storage is not cleared, so Feldera may find it there"
        )
    if standby:
        return RestoreSource(note=f"{what} is not in {checked} yet; the standby keeps pulling until it appears")
    if not fail_if_no_checkpoint:
        return RestoreSource(
            note=f"{what} is not in {checked}; the pipeline starts empty (fail_if_no_checkpoint=False)"
        )
    named = [f"{look.location}: {_names(look.uuids)}" for look in looks]
    return RestoreSource(
        refuse=(
            f"{what} is in neither the local storage nor {checked}, so the restore would fail after changing the "
            f"pipeline. What the catalogs name: {'; '.join(named)}. Pass a checkpoint they hold ('latest' for the "
            "newest), or the location that holds it as read_bucket."
        )
    )


def _names(uuids: tuple[str, ...]) -> str:
    if not uuids:
        return f"no {CATALOG}, nothing synced there"
    shown = ", ".join(sorted(uuids)[-3:])
    return f"{len(uuids)} checkpoint(s), newest {shown}" if len(uuids) > 3 else shown
