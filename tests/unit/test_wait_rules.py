"""The wait before a push while another run's push of the same pipeline is under way."""

from __future__ import annotations

from typing import Any

from airflow_checkpoint_sync.rules.waits import other_pushes_wait

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


def test_a_compilation_that_failed_ends_its_wait_with_the_compiler_s_words() -> None:
    from airflow_checkpoint_sync.rules.waits import pipeline_wait

    error = {
        "sql_compilation": {
            "exit_code": 1,
            "messages": [
                {"warning": True, "message": "unused view", "start_line_number": 2},
                {"error_type": "Error parsing SQL", "message": "unexpected token", "start_line_number": 3},
            ],
        },
        "rust_compilation": None,
        "system_error": None,
    }
    ended = pipeline_wait(
        pipeline_name="p",
        pipeline={"program_status": "SqlError", "program_error": error, "deployment_status": "Stopped"},
        error=None,
        targets=["Success"],
        end_time=10**12,
        now=0,
        field="program_status",
    )
    assert ended is not None
    assert (ended["status"], ended["final"]) == ("failure", True)
    assert (
        ended["message"] == "pipeline 'p' failed to compile (SqlError): Error parsing SQL at line 3: unexpected token"
    )
    rust = {"rust_compilation": {"exit_code": 101, "stderr": "warning\nerror[E0308]: mismatched types\n"}}
    ended = pipeline_wait(
        pipeline_name="p",
        pipeline={"program_status": "RustError", "program_error": rust},
        error=None,
        targets=["Success"],
        end_time=10**12,
        now=0,
        field="program_status",
    )
    assert ended is not None and "failed to compile (RustError): warning / error[E0308]: mismatched types" in str(
        ended["message"]
    )
    # Still compiling: the wait goes on.
    still = pipeline_wait(
        pipeline_name="p",
        pipeline={"program_status": "CompilingRust"},
        error=None,
        targets=["Success"],
        end_time=10**12,
        now=0,
        field="program_status",
    )
    assert still is None
