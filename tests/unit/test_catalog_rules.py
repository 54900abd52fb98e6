"""The catalog rules: what a catalog names, and when a restore is refused because no source holds its checkpoint."""

from __future__ import annotations

import json

import pytest

from airflow_checkpoint_sync.rules.bucket_layout import CatalogLook, catalog_uuids, restore_source

OLD = "01890000-0000-7000-8000-000000000001"
NEW = "01990000-0000-7000-8000-000000000002"
ABSENT = "01990000-0000-7000-8000-0000000000ff"


def feldera_catalog(*uuids: str) -> bytes:
    # The checkpointer's own shape: a list of CheckpointMetadata.
    return json.dumps(
        [
            {"uuid": u, "identifier": None, "fingerprint": 7, "size": 10, "steps": 1, "processed_records": 1}
            for u in uuids
        ]
    ).encode()


def test_catalog_uuids_reads_feldera_s_list_and_the_old_sandbox_shape() -> None:
    assert catalog_uuids(feldera_catalog(OLD, NEW)) == (OLD, NEW)
    assert catalog_uuids(json.dumps({"checkpoints": [{"uuid": NEW}]}).encode()) == (NEW,)
    assert catalog_uuids(b"[]") == ()


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe", b"{}", b'"x"', b'[{"id": 1}]', b"[1, 2]", b'{"a": []}'])
def test_an_unknown_catalog_format_is_never_taken_for_empty(body: bytes) -> None:
    assert catalog_uuids(body) is None


def verdict(checkpoint: str, *looks: CatalogLook, **flags: bool) -> tuple[str | None, str | None, str | None]:
    settings = {"local_may_have": False, "standby": False, "fail_if_no_checkpoint": True, **flags}
    result = restore_source(checkpoint, looks, **settings)
    return result.found_in, result.refuse, result.note


def test_found_in_the_first_location_that_names_it() -> None:
    found, refuse, _ = verdict(NEW, CatalogLook("b/staging", ()), CatalogLook("b/prod", (OLD, NEW)))
    assert (found, refuse) == ("b/prod", None)
    found, refuse, _ = verdict(OLD, CatalogLook("b/staging", (OLD,)), CatalogLook("b/prod", (OLD, NEW)))
    assert (found, refuse) == ("b/staging", None)
    found, refuse, _ = verdict("latest", CatalogLook("b/staging", ()), CatalogLook("b/prod", (OLD,)))
    assert (found, refuse) == ("b/prod", None)
    # Upper-case uuids compare as the same checkpoint.
    assert verdict(NEW.upper(), CatalogLook("b/prod", (NEW,)))[0] == "b/prod"


def test_refused_only_when_every_source_is_known_not_to_hold_it() -> None:
    looks = (CatalogLook("b/staging", ()), CatalogLook("b/prod", (OLD, NEW)))
    _, refuse, _ = verdict(ABSENT, *looks)
    assert refuse is not None
    assert f"checkpoint {ABSENT} is in neither the local storage nor b/staging or b/prod" in refuse
    assert "b/staging: no checkpoints.feldera, nothing synced there" in refuse
    assert f"b/prod: {OLD}, {NEW}" in refuse
    _, refuse, _ = verdict("latest", CatalogLook("b/staging", ()))
    assert refuse is not None
    assert "a synced checkpoint is in neither" in refuse


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        ({"local_may_have": True}, "Feldera may find it there"),
        ({"standby": True}, "the standby keeps pulling until it appears"),
        ({"fail_if_no_checkpoint": False}, "the pipeline starts empty"),
    ],
)
def test_each_other_source_or_choice_lets_it_go_on_with_a_note(flags: dict[str, bool], says: str) -> None:
    found, refuse, note = verdict(ABSENT, CatalogLook("b/staging", (OLD,)), **flags)
    assert (found, refuse) == (None, None)
    assert note is not None
    assert says in note


def test_a_location_that_could_not_be_read_is_never_a_reason_to_refuse() -> None:
    looks = (CatalogLook("b/staging", ()), CatalogLook("b/prod", unknown="reading it: AccessDenied"))
    found, refuse, note = verdict(ABSENT, *looks)
    assert (found, refuse) == (None, None)
    assert note is not None
    assert "b/prod (reading it: AccessDenied)" in note


def test_a_long_catalog_is_summarised() -> None:
    uuids = tuple(f"0199{i:04x}-0000-7000-8000-000000000000" for i in range(20))
    _, refuse, _ = verdict(ABSENT, CatalogLook("b/prod", uuids))
    assert refuse is not None
    assert "20 checkpoint(s), newest" in refuse
    assert uuids[-1] in refuse
    assert uuids[0] not in refuse


def test_read_bucket_is_not_read_while_the_pipeline_s_own_bucket_holds_a_checkpoint() -> None:
    own, source = CatalogLook("b/staging", (OLD,)), CatalogLook("b/prod", (OLD, NEW))
    # A standby would follow its own stale checkpoints for ever: refused, naming both buckets and the ways out.
    _, refuse, _ = verdict("latest", own, source, standby=True)
    assert refuse is not None
    assert "its own bucket b/staging already holds " + OLD in refuse
    assert "reads read_bucket (b/prod) only while bucket holds no checkpoint" in refuse
    assert "a bucket of its own that holds nothing" in refuse and "leave read_bucket out" in refuse
    assert verdict(OLD, own, source, standby=True)[1] is not None
    # A start: 'latest' is its own bucket's newest, not read_bucket's (said), and a uuid only read_bucket holds is
    # never found there.
    found, refuse, note = verdict("latest", own, source)
    assert (found, refuse) == ("b/staging", None)
    assert note is not None and "b/prod is not read" in note
    _, refuse, _ = verdict(NEW, own, source)
    assert refuse is not None
    assert "nor b/staging" in refuse and "b/prod is not read" in refuse
    # An empty own bucket (or an unreadable one) leaves read_bucket in play.
    assert verdict("latest", CatalogLook("b/staging", ()), source, standby=True)[0] == "b/prod"
    unknown = CatalogLook("b/staging", unknown="no bucket_conn_id to read it")
    assert verdict("latest", unknown, source, standby=True)[:2] == ("b/prod", None)


def test_the_multihost_layout_is_told_by_its_host_folders() -> None:
    from airflow_checkpoint_sync.rules.bucket_layout import host_folders

    names = ["host1/checkpoints.feldera", "host0/checkpoints.feldera", "host0/x/state.feldera", "README"]
    assert host_folders(names) == ["host0", "host1"]
    assert host_folders(["checkpoints.feldera", "u/state.feldera"]) == []
