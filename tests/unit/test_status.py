"""The pure status rules, case by case."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_checkpoint_sync.rules.status import (
    PipelineGroup,
    RequestState,
    checkpoint_result,
    deployment_error_message,
    is_uuid,
    pipeline_group,
    resolve_unknown,
    sync_result,
    uuid7_time,
)

OLD = "01890000-0000-7000-8000-000000000001"
MID = "01890000-0000-7000-8000-000000000002"
NEW = "01890000-0000-7000-8000-000000000003"


@pytest.mark.parametrize(
    ("payload", "uuid", "state"),
    [
        ({"success": None, "failure": None, "periodic": None, "running": [MID]}, MID, RequestState.IN_PROGRESS),
        ({"success": MID, "failure": None, "periodic": None, "running": []}, MID, RequestState.SUCCESS),
        ({"success": None, "failure": None, "periodic": MID, "running": []}, MID, RequestState.SUCCESS),
        (
            {"success": None, "failure": {"uuid": MID, "error": "x"}, "periodic": None, "running": []},
            MID,
            RequestState.FAILURE,
        ),
        # running wins over a stale failure of the same uuid (a retried sync)
        (
            {"success": None, "failure": {"uuid": MID, "error": "x"}, "periodic": None, "running": [MID]},
            MID,
            RequestState.IN_PROGRESS,
        ),
        # new server, not running, not success, not failure: displaced or never started
        ({"success": NEW, "failure": None, "periodic": NEW, "running": []}, MID, RequestState.UNKNOWN),
        ({"success": None, "failure": None, "periodic": None, "running": []}, MID, RequestState.UNKNOWN),
        # old servers (no running): newer than the last success means still running
        ({"success": None, "failure": None, "periodic": None}, MID, RequestState.IN_PROGRESS),
        ({"success": OLD, "failure": None, "periodic": OLD}, MID, RequestState.IN_PROGRESS),
        ({"success": NEW, "failure": None, "periodic": NEW}, MID, RequestState.UNKNOWN),
        ({"success": MID, "failure": None, "periodic": MID}, MID, RequestState.SUCCESS),
    ],
)
def test_sync_result(payload: dict[str, object], uuid: str, state: RequestState) -> None:
    assert sync_result(uuid, payload).state is state


def test_failure_keeps_feldera_text() -> None:
    result = sync_result(MID, {"failure": {"uuid": MID, "error": "SignatureDoesNotMatch"}, "running": []})
    assert (result.state, result.error) == (RequestState.FAILURE, "SignatureDoesNotMatch")
    assert sync_result(MID, {"failure": {"uuid": MID}, "running": []}).error == "no error text from Feldera"


def test_unknown_is_settled_by_the_bucket_listing() -> None:
    assert resolve_unknown(MID, [OLD, MID]).state is RequestState.SUCCESS
    assert resolve_unknown(MID, [OLD]).state is RequestState.UNKNOWN


@pytest.mark.parametrize(
    ("seq", "payload", "state"),
    [
        (3, {"success": 3, "failure": None}, RequestState.SUCCESS),
        (3, {"success": 2, "failure": {"sequence_number": 3, "error": "e"}}, RequestState.FAILURE),
        (3, {"success": 2, "failure": None}, RequestState.IN_PROGRESS),
        (0, {"success": None, "failure": None}, RequestState.IN_PROGRESS),
        (3, {"success": 5, "failure": {"sequence_number": 4, "error": "e"}}, RequestState.UNKNOWN),
    ],
)
def test_checkpoint_result(seq: int, payload: dict[str, object], state: RequestState) -> None:
    assert checkpoint_result(seq, payload).state is state


@pytest.mark.parametrize(
    ("status", "error", "group"),
    [
        ("Stopped", None, PipelineGroup.STOPPED),
        ("Stopped", {"message": "boom"}, PipelineGroup.FAILED),
        ("Standby", None, PipelineGroup.STANDBY),
        ("Running", None, PipelineGroup.RUNNING),
        ("Paused", None, PipelineGroup.PAUSED),
        ("AwaitingApproval", None, PipelineGroup.AWAITING_APPROVAL),
        ("Initializing", None, PipelineGroup.TRANSITIONAL),
        ("Suspended", None, PipelineGroup.TRANSITIONAL),
        ("SomethingNew", None, PipelineGroup.TRANSITIONAL),
    ],
)
def test_pipeline_group(status: str, error: object, group: PipelineGroup) -> None:
    assert pipeline_group({"deployment_status": status, "deployment_error": error}) is group


def test_deployment_error_message() -> None:
    assert deployment_error_message({"deployment_error": {"message": "no checkpoint", "error_code": "X"}}) == (
        "no checkpoint"
    )
    assert deployment_error_message({"deployment_error": None}) is None


def test_uuid7_time_and_uuid_check() -> None:
    when = uuid7_time("01a216d5-781d-7000-ac06-4bdf123181e6")
    assert when.tzinfo is dt.UTC and when.year == 2026
    with pytest.raises(ValueError, match="version 4"):
        uuid7_time("8c0e5a47-23f4-4a0b-9a3b-1f4e9f0f3c11")
    lettered = "01a216d5-781d-7000-ac06-4bdf123181e6"
    assert is_uuid(lettered) and not is_uuid("latest") and not is_uuid(None) and not is_uuid(lettered.upper())


def test_newer_uuids_are_the_ones_after_the_watermark_oldest_first_each_once() -> None:
    from airflow_checkpoint_sync.rules.status import newer_uuids

    old, mid, new = (f"0190{n:04x}-0000-7000-8000-000000000000" for n in (1, 2, 3))
    listed = [new, "not-a-uuid", old, mid, new, None, mid.upper()]
    assert newer_uuids(listed, None) == [old, mid, new]
    assert newer_uuids(listed, old) == [mid, new]
    assert newer_uuids(listed, new) == []
    # A watermark removed from the bucket since (retention) still bounds what is new.
    assert newer_uuids([mid, new], old) == [mid, new]


OLD = "01900000-0000-7000-8000-000000000000"
NEW = "01a00000-0000-7000-8000-000000000000"


@pytest.mark.parametrize(
    ("listing", "uuids", "newest"),
    [
        ([{"uuid": OLD}, {"uuid": NEW}], [OLD, NEW], NEW),
        ([{"uuid": NEW}, {"uuid": OLD}], [NEW, OLD], NEW),  # the newest by time, never by list order
        ([{"uuid": OLD}, {"fingerprint": 1}, "odd", {"uuid": 7}, {"uuid": NEW}], [OLD, NEW], NEW),
        ([], [], None),
        (None, [], None),
        ({"uuid": NEW}, [], None),
    ],
)
def test_one_reading_of_a_checkpoint_listing(listing: object, uuids: list[str], newest: str | None) -> None:
    from airflow_checkpoint_sync.rules.status import listed_uuids, newest_listed

    assert listed_uuids(listing) == uuids
    assert newest_listed(listing) == newest
