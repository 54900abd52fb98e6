"""The wait before a push while another run's push of the same pipeline is under way."""

from __future__ import annotations

from typing import Any

from airflow_checkpoint_sync.waits import other_pushes_wait

MINE, THEIRS = "01990000-0000-7000-8000-000000000002", "01990000-0000-7000-8000-000000000001"


def decide(status: dict[str, Any] | None, *, error: Exception | None = None, now: float = 0.0) -> dict[str, Any] | None:
    return other_pushes_wait(
        pipeline_name="p", mine=MINE, others=[THEIRS], status=status, error=error, end_time=10.0, now=now
    )


def test_waits_while_the_other_push_runs_and_ends_when_it_has() -> None:
    assert decide({"running": [THEIRS]}) is None
    assert decide({"running": [THEIRS, MINE]}) is None
    done = decide({"running": [], "success": THEIRS})
    assert done is not None
    assert done["status"] == "success"
    assert "the other push has ended" in done["message"]


def test_a_push_started_after_the_wait_began_is_not_waited_for() -> None:
    event = decide({"running": ["01990000-0000-7000-8000-000000000003"]})
    assert event is not None
    assert event["status"] == "success"


def test_times_out_at_the_deadline_naming_the_other_push() -> None:
    event = decide({"running": [THEIRS]}, now=10.0)
    assert event is not None
    assert event["status"] == "timeout"
    assert f"was still pushing {THEIRS} (started by another run)" in event["message"]
    assert f"checkpoint {MINE} was not pushed" in event["message"]


def test_a_status_it_cannot_read_or_without_running_never_blocks_the_push() -> None:
    for event in (decide(None, error=ConnectionError("reset")), decide({"success": THEIRS}), decide({"running": 3})):
        assert event is not None
        assert event["status"] == "success"
