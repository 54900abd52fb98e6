"""The end-to-end suite's table: one row per DAG run on the deployment."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from test_real_deployment import RESULTS

    if not RESULTS:
        return
    terminalreporter.section("real deployment (LocalExecutor)")
    terminalreporter.write_line(f"{'scenario':<44} {'DAG':<30} {'outcome':<8} {'seconds':>8} {'mutating':>9}")
    for scenario, dag_id, outcome, seconds, mutating in RESULTS:
        terminalreporter.write_line(f"{scenario[:44]:<44} {dag_id:<30} {outcome:<8} {seconds:>8.1f} {mutating:>9}")
