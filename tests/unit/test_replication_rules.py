"""The replication's pure rules: what is copied, skipped, written last and deleted."""

from __future__ import annotations

import json

import pytest

from airflow_checkpoint_sync.replication import (
    CATALOG,
    OWNER,
    StoredObject,
    copy_marks_needed,
    location_overlap,
    missing_after_copy,
    newest_in_catalog,
    normalize_location,
    plan_replication,
    split_location,
    up_to_date,
)

SRC = [
    StoredObject(OWNER, 10, "o"),
    StoredObject(CATALOG, 50, "cat2"),
    StoredObject("a.bin", 100, "a1"),
    StoredObject("b.bin", 200, "b1"),
    StoredObject("c.bin", 300, "c1"),
]


def test_only_missing_or_different_objects_are_copied_and_the_catalog_is_apart() -> None:
    there = [
        StoredObject("a.bin", 100, "x", copied_from="a1"),  # copied earlier from this very content
        StoredObject("b.bin", 200, "y", copied_from="b0"),  # copied from older content
        StoredObject(CATALOG, 40, "z", copied_from="cat1"),
    ]
    plan = plan_replication(SRC, there, delete_removed=False)
    assert [o.name for o in plan.copy] == ["b.bin", "c.bin"]
    assert [o.name for o in plan.skip] == ["a.bin"]
    assert plan.catalog == SRC[1] and plan.catalog_changed
    assert plan.delete == ()


def test_owner_json_is_never_copied_nor_deleted_and_deletions_need_the_flag() -> None:
    there = [StoredObject(OWNER, 1, "mine"), StoredObject("old.bin", 5, "o", copied_from="o")]
    assert plan_replication(SRC, there, delete_removed=False).delete == ()
    plan = plan_replication(SRC, there, delete_removed=True)
    assert plan.delete == ("old.bin",)
    assert OWNER not in [o.name for o in plan.copy]


def test_an_up_to_date_catalog_is_not_rewritten() -> None:
    there = [StoredObject(CATALOG, 50, "z", copied_from="cat2")]
    assert not plan_replication(SRC, there, delete_removed=False).catalog_changed


def test_same_size_without_a_fingerprint_is_copied_again() -> None:
    assert not up_to_date(StoredObject("a", 1, None), StoredObject("a", 1, None))
    assert not up_to_date(StoredObject("a", 1, "f"), StoredObject("a", 2, "f", copied_from="f"))
    assert up_to_date(StoredObject("a", 1, "f"), StoredObject("a", 1, "f"))  # e.g. a server-side copy's ETag


def test_the_catalog_waits_for_every_object_in_full() -> None:
    plan = plan_replication(SRC, [], delete_removed=False)
    partial = [StoredObject("a.bin", 100), StoredObject("b.bin", 150)]
    assert missing_after_copy(plan, partial) == ["b.bin (150 of 200 bytes)", "c.bin (missing)"]
    complete = [StoredObject(o.name, o.size) for o in SRC]
    assert missing_after_copy(plan, complete) == []


def test_newest_in_catalog() -> None:
    older, newer = "01890000-0000-7000-8000-000000000001", "01990000-0000-7000-8000-000000000001"
    body = json.dumps({"checkpoints": [{"uuid": newer}, {"uuid": older}]}).encode()
    assert newest_in_catalog(body) == newer
    assert newest_in_catalog(b"not json") is None
    assert newest_in_catalog(b"{}") is None


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("", "required"),
        ("s3://b/p", "drop the scheme"),
        ("s3:b/p", "drop the scheme"),
        ("/b/p", "is not a bucket name"),
        ("b//p", "no empty"),
        ("b/p/../q", "'..'"),
        ("b/./p", "'.'"),
        ("b/p//", "no empty"),
        ("b/p q", "no white space"),
        ("b/p\\q", "backslashes"),
        ("b/p\x00", "control characters"),
        ("b?x/p", "is not a bucket name"),
    ],
)
def test_locations_are_refused_when_they_could_name_another_place(bad: str, why: str) -> None:
    with pytest.raises(ValueError, match=r"destination=.* is not valid: .*'bucket-name\[/prefix\]'") as refused:
        split_location(bad, "destination")
    assert why in str(refused.value)


def test_a_location_has_one_spelling() -> None:
    assert split_location("b/p/q/", "destination") == ("b", "p/q")
    assert split_location(" b/p ", "destination") == ("b", "p")
    assert split_location("b", "destination") == ("b", "")
    assert normalize_location("b/p/") == normalize_location("b/p") == "b/p"


@pytest.mark.parametrize(
    ("source", "destination", "overlap"),
    [
        (("S3Store", "c", "b", "p"), ("S3Store", "c", "b", "p"), "they are the same location"),
        (("S3Store", "c", "b", "p"), ("S3Store", "c", "b", "p/replica"), "the destination lies inside the source"),
        (("S3Store", "c", "b", ""), ("S3Store", "c", "b", "p"), "the destination lies inside the source"),
        (("S3Store", "c", "b", "p/q"), ("S3Store", "c", "b", "p"), "the source lies inside the destination"),
        (("S3Store", "c", "b", "p"), ("S3Store", "c", "b", ""), "the source lies inside the destination"),
        (("S3Store", "c", "b", "p"), ("S3Store", "c", "b", "p2"), None),  # a shared start is not nesting
        (("S3Store", "c", "b", "p"), ("S3Store", "c", "other", "p"), None),
        (("S3Store", "c", "b", "p"), ("S3Store", "d", "b", "p"), None),
        (("S3Store", "c", "b", "p"), ("AzureStore", "c", "b", "p"), None),
    ],
)
def test_overlapping_locations(source: tuple[str, ...], destination: tuple[str, ...], overlap: str | None) -> None:
    assert location_overlap(source, destination) == overlap


def test_copy_marks_are_fetched_only_for_replicas_the_listing_cannot_judge() -> None:
    source = [StoredObject("same.bin", 10, "e1"), StoredObject("multipart.bin", 20, "m-2"),
              StoredObject("resized.bin", 30, "r1"), StoredObject("unknown.bin", 40, None)]  # fmt: skip
    needed = copy_marks_needed(source)
    replicas = {
        "same.bin": StoredObject("same.bin", 10, "e1"),  # same content by its listed fingerprint
        "multipart.bin": StoredObject("multipart.bin", 20, "other-3"),  # written in other parts: only its mark tells
        "resized.bin": StoredObject("resized.bin", 31, "x"),  # another size: copied whatever its mark says
        "unknown.bin": StoredObject("unknown.bin", 40, "u"),  # no source fingerprint: copied again anyway
        "extra.bin": StoredObject("extra.bin", 5, "z"),  # not in the source
    }
    assert {name for name, replica in replicas.items() if needed(replica)} == {"multipart.bin"}
    # Whatever is not fetched, the plan judges as it would with every mark.
    for name, replica in replicas.items():
        original = next((o for o in source if o.name == name), None)
        if original is not None and not needed(replica):
            marked = StoredObject(name, replica.size, replica.fingerprint, copied_from=original.fingerprint)
            assert up_to_date(original, replica) == up_to_date(original, marked) or replica.size != original.size
