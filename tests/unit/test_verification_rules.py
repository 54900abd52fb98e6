"""The pure rules of verification: Feldera's manifest formats, its retention rule, and the verdict on a listing."""

from __future__ import annotations

import datetime as dt
import json
import uuid as uuidlib

import pytest

from airflow_checkpoint_sync.rules.bucket_layout import CATALOG, OWNER
from airflow_checkpoint_sync.rules.replication import StoredObject
from airflow_checkpoint_sync.rules.verification import (
    NamedFile,
    Retention,
    deleted_by_next_push,
    manifest_files,
    read_content_problem,
    verify_location,
)

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def uuid7(days_ago: float, tail: int = 1) -> str:
    millis = int((NOW - dt.timedelta(days=days_ago)).timestamp() * 1000)
    return str(uuidlib.UUID(int=(millis << 80) | (0x7 << 76) | (0x8 << 60) | tail))


@pytest.mark.parametrize(
    ("body", "files"),
    [
        # CheckpointDependencies V1: the batch names.
        (["w0-a.feldera", "w1-b.feldera"], (NamedFile("w0-a.feldera"), NamedFile("w1-b.feldera"))),
        # V2: batches and the state files inside the checkpoint (not at the root: not named).
        ({"batches": ["w0-a.feldera"], "state_files": ["pspine-1.dat"]}, (NamedFile("w0-a.feldera"),)),
        ({"batches": []}, ()),
        # The sandbox's superset records sizes.
        (
            {"batches": ["w0-a.feldera"], "files": [{"key": "w0-a.feldera", "size": 12, "sha256": "x"}]},
            (NamedFile("w0-a.feldera", 12),),
        ),
    ],
)
def test_manifest_formats_feldera_writes_are_read(body: object, files: tuple[NamedFile, ...]) -> None:
    assert manifest_files(json.dumps(body).encode()) == files


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"checkpoints": []}', b"[1, 2]", b'{"files": [{"key": "a"}]}', b'[""]', b"\xff", b"null"],
)
def test_a_manifest_in_no_known_format_is_not_taken_for_an_empty_one(body: bytes) -> None:
    assert manifest_files(body) is None


def test_retention_deletes_oldest_first_only_above_the_count_and_past_the_age() -> None:
    old = [uuid7(40, 1), uuid7(35, 2), uuid7(31, 3)]
    young = [uuid7(2, 4), uuid7(1, 5)]
    # Defaults (10, 30 days): five checkpoints plus the pushed one are not above ten.
    assert deleted_by_next_push(old + young, Retention(), NOW) == ()
    # Keep 3: six after the push, so three go, oldest first, and all three are old enough.
    assert deleted_by_next_push(old + young, Retention(3, 30), NOW) == tuple(old)
    # Keep 1 but nothing under 30 days: the young ones stay whatever the count.
    assert deleted_by_next_push(young + old, Retention(1, 30), NOW) == tuple(old)
    # Any age, keep 4: two go.
    assert deleted_by_next_push(old + young, Retention(4, 0), NOW) == tuple(old[:2])


def listing(*names_sizes: tuple[str, int], **marks: tuple[str, str]) -> list[StoredObject]:
    objects = [StoredObject(name, size) for name, size in names_sizes]
    return objects + [StoredObject(name, 5, copied_from=src, md5=own) for name, (src, own) in marks.items()]


def test_the_verdict_names_each_problem_and_the_uncatalogued_pushes() -> None:
    good, bad, late = uuid7(1, 1), uuid7(0.5, 2), uuid7(0.1, 3)
    catalog = json.dumps([{"uuid": good}, {"uuid": bad}, {"uuid": "not-a-uuid"}]).encode()
    objects = listing(
        ("checkpoints.feldera", len(catalog)),
        (f"dependencies/{good}.json", 40),
        (f"dependencies/{late}.json", 40),
        ("w0-good.feldera", 100),
        ("w0-empty.feldera", 0),
    )
    manifests = {
        good: json.dumps({"batches": ["w0-good.feldera"], "files": [{"key": "w0-good.feldera", "size": 100}]}).encode(),
        bad: json.dumps(["w0-empty.feldera", "w0-gone.feldera"]).encode(),
    }
    verdict = verify_location(catalog, objects, manifests)
    assert verdict.checkpoints == (good, bad)
    assert verdict.problems == [
        "checkpoints.feldera names 'not-a-uuid', which is not a checkpoint uuid (a UUIDv7)",
        f"checkpoint {bad}: w0-empty.feldera is empty",
        f"checkpoint {bad}: w0-gone.feldera is missing",
    ]
    assert verdict.files_checked == 3
    assert verdict.uncatalogued == (late,)


def test_a_copy_whose_content_is_not_what_its_replication_wrote_is_named() -> None:
    md5, other = "0" * 32, "1" * 32
    objects = [
        StoredObject("intact", 5, copied_from=md5, md5=md5),  # an older mark: the source fingerprint is the MD5
        StoredObject("changed", 5, copied_from=md5, md5=other),
        StoredObject("marked", 5, copied_from="abc-2", md5=md5, copied_md5=md5),
        StoredObject("rewritten", 5, copied_from="abc-2", md5=other, copied_md5=md5),  # the mark survived
        StoredObject("multipart_replica", 5, copied_from="abc-2", md5=None, copied_md5=md5),  # no store MD5
        StoredObject("multipart_source", 5, copied_from="abc-2", md5=other),  # nothing recorded to compare with
    ]
    verdict = verify_location(b"[]", objects, {})
    assert verdict.problems == [
        f"changed: its content's MD5 {other} is not the {md5} its replication wrote (it changed after it was "
        "copied): run the replication again to copy it anew",
        f"rewritten: its content's MD5 {other} is not the {md5} its replication wrote (it changed after it was "
        "copied): run the replication again to copy it anew",
    ]
    assert verdict.judged_by_size_only == ("multipart_replica", "multipart_source")


def test_an_object_without_a_copy_mark_in_a_replica_is_named_and_the_repair_too() -> None:
    marked = StoredObject(CATALOG, 5, copied_from="c", md5="0" * 32, copied_md5="0" * 32)
    unmarked = StoredObject("w0-a.feldera", 5, md5="1" * 32)
    assert verify_location(b"[]", [marked, unmarked], {}).problems == [
        "w0-a.feldera: it carries no copy mark in a replica, so it was not written by a replication (it was "
        "written over after the copy, or put there by something else): run the replication again with "
        "repair=True to copy it anew"
    ]
    # Feldera's own sync location carries no marks at all: nothing to say about them.
    assert verify_location(b"[]", [StoredObject(CATALOG, 5), unmarked, StoredObject(OWNER, 3)], {}).problems == []


def test_a_full_read_is_judged_against_the_store_or_else_the_copy_mark() -> None:
    md5, other = "0" * 32, "1" * 32
    assert read_content_problem(StoredObject("a", 5, md5=md5), 4, md5) == "a: read 4 of its 5 bytes"
    assert read_content_problem(StoredObject("a", 5, md5=md5), 5, other) == (
        f"a: its content's MD5 is {other}, the store's is {md5}"
    )
    assert read_content_problem(StoredObject("a", 5, md5=md5), 5, md5) is None
    multipart = StoredObject("a", 5, "r-2", copied_from="s-2", copied_md5=md5)
    assert read_content_problem(multipart, 5, md5) is None
    assert read_content_problem(multipart, 5, other) == (
        f"a: its content's MD5 is {other}, not the {md5} its replication wrote: run the replication again to copy "
        "it anew"
    )
    assert read_content_problem(StoredObject("a", 5, "s-2"), 5, other) is None  # nothing to compare with


@pytest.mark.parametrize(
    ("catalog", "problem"),
    [
        (None, "there is no checkpoints.feldera: nothing has been synced here"),
        (b"<html>", "checkpoints.feldera is not the JSON list of checkpoints Feldera writes"),
    ],
)
def test_no_catalog_or_an_unreadable_one_is_a_problem(catalog: bytes | None, problem: str) -> None:
    assert verify_location(catalog, [], {}).problems == [problem]


def test_the_multihost_layout_is_named_for_what_it_is() -> None:
    objects = listing(("host0/checkpoints.feldera", 10), ("host1/checkpoints.feldera", 10), ("w0-a.feldera", 5))
    assert verify_location(None, objects, {}).problems == [
        "this is the multihost layout (a checkpoints.feldera in each of host0, host1, none at the root): verifying "
        "it is not supported yet"
    ]


def test_a_layout_not_known_here_cannot_be_judged_and_is_never_called_damaged() -> None:
    first, second = uuid7(1, 1), uuid7(0.5, 2)
    catalog = json.dumps([{"uuid": first}, {"uuid": second}]).encode()
    # A single-host location as Feldera may lay it out: manifests inside each checkpoint's folder, none at the root.
    objects = listing(
        ("checkpoints.feldera", len(catalog)),
        (f"{first}/dependencies.json", 40),
        (f"{second}/dependencies.json", 40),
        ("w0-a.feldera", 100),
    )
    verdict = verify_location(catalog, objects, {first: None, second: None})
    assert verdict.problems == []
    assert verdict.checkpoints == (first, second)
    (said,) = verdict.cannot_judge
    assert "no checkpoint has a manifest under dependencies/" in said and "2 checkpoint(s)" in said
    # Where the known layout is in use, a missing manifest is damage, and one in an unknown format cannot be judged.
    objects = listing(("checkpoints.feldera", len(catalog)), (f"dependencies/{first}.json", 40))
    verdict = verify_location(catalog, objects, {first: b'{"checkpoints": []}', second: None})
    assert verdict.problems == [f"checkpoint {second}: its manifest dependencies/{second}.json is missing"]
    assert verdict.cannot_judge == [
        f"checkpoint {first}: its manifest dependencies/{first}.json is not a format known here"
    ]
