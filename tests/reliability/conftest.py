"""Fixtures for the fault matrix, and the table it prints at the end of the session."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from airflow_support import aws_connection, feldera_connection
from feldera_setup import Feldera
from harness import BUCKET_CONN, Outcome
from plan import CLIENT_TIMEOUT, KINDS, PROFILES

from airflow_checkpoint_sync.testing import FelderaSandbox, MotoS3Server

if TYPE_CHECKING:
    from collections.abc import Iterator

    from plan import Plan

OUTCOMES: list[Outcome] = []
VERDICTS = ("success", "correct_failure", "wrong", "hang")
HEADERS = {
    "runs": "runs",
    "fault hit": "fault hit",
    "success": "successes",
    "correct_failure": "correct failures",
    "wrong": "wrong outcomes",
    "hang": "hangs",
}


@pytest.fixture(scope="module")
def labs(airflow_db: str, moto_s3: MotoS3Server) -> Iterator[dict[str, Feldera]]:
    """One sandbox per version profile and one bucket for the module's runs (each run uses its own pipelines)."""
    bucket = moto_s3.create_bucket("reliability")
    with ExitStack() as stack, pytest.MonkeyPatch.context() as env:
        env.setenv(f"AIRFLOW_CONN_{BUCKET_CONN.upper()}", aws_connection(moto_s3))
        sandboxes = {profile: stack.enter_context(FelderaSandbox(profile=profile)) for profile in PROFILES}
        yield {profile: Feldera(sandbox, moto_s3, bucket) for profile, sandbox in sandboxes.items()}


@pytest.fixture
def lab(labs: dict[str, Feldera], plan: Plan, monkeypatch: pytest.MonkeyPatch) -> Feldera:
    """The sandbox of the run's version profile, behind ``feldera_default``."""
    feldera = labs[plan.profile]
    monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(feldera.sandbox.url, timeout=CLIENT_TIMEOUT))
    return feldera


def table(outcomes: list[Outcome]) -> str:
    """The matrix's figures by fault kind: runs, how many hit their fault, and each verdict."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for outcome in outcomes:
        row = counts[outcome.plan.kind]
        row["runs"] += 1
        row["fault hit"] += outcome.fault_hit
        row[outcome.verdict] += 1
    columns = ("runs", "fault hit", *VERDICTS)
    lines = [
        "| fault kind | " + " | ".join(HEADERS[c] for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    total: Counter[str] = Counter()
    for kind in [k for k in KINDS if k in counts]:
        lines.append(f"| {kind} | " + " | ".join(str(counts[kind][c]) for c in columns) + " |")
        total.update(counts[kind])
    lines.append("| **all** | " + " | ".join(f"**{total[c]}**" for c in columns) + " |")
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not OUTCOMES:
        return
    terminalreporter.section("fault matrix")
    seconds = sorted(o.seconds for o in OUTCOMES)
    seeds = sorted(o.plan.seed for o in OUTCOMES)
    summary = (
        f"{len(OUTCOMES)} runs (seeds {seeds[0]}-{seeds[-1]}); flow time median {seconds[len(seconds) // 2]:.1f}s, "
        f"longest {seconds[-1]:.1f}s"
    )
    by_profile = "; ".join(
        f"{profile}: {sum(o.plan.profile == profile for o in OUTCOMES)} runs, "
        + ", ".join(
            f"{sum(o.plan.profile == profile and o.verdict == v for o in OUTCOMES)} {HEADERS[v]}" for v in VERDICTS
        )
        for profile in PROFILES
    )
    summary += f"\nby Feldera version profile: {by_profile}"
    terminalreporter.write_line(table(OUTCOMES))
    terminalreporter.write_line(f"\n{summary}")
    if os.environ.get("RELIABILITY_WRITE"):
        # make reliability WRITE=1: the table the docs include (docs/reliability.rst).
        lines = [*table(OUTCOMES).splitlines(), "", *summary.splitlines()]
        target = Path(__file__).parents[2] / "docs" / "reliability_table.rst"
        target.write_text(".. code-block:: text\n\n" + "".join(f"   {line}\n" for line in lines))
        terminalreporter.write_line(f"written to {target}")
    for outcome in OUTCOMES:
        if outcome.problems:
            terminalreporter.write_line(f"{outcome.plan.label}: {outcome.verdict}: {'; '.join(outcome.problems)}")
