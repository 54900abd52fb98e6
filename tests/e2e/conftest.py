"""The end-to-end suite's table: one row per DAG run on the deployment."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from test_real_deployment import LOCK_TIMEOUTS, RESULTS

    if not RESULTS:
        return
    terminalreporter.section("real deployment")
    terminalreporter.write_line(
        f"{'executor':<8} {'scenario':<50} {'DAG':<30} {'outcome':<8} {'seconds':>8} {'mutating':>9} "
        f"{'retries':>8} {'races':>6}"
    )
    for r in RESULTS:
        terminalreporter.write_line(
            f"{r.executor:<8} {r.scenario[:50]:<50} {r.dag_id:<30} {r.outcome:<8} {r.seconds:>8.1f} {r.mutating:>9} "
            f"{r.retries:>8} {r.airflow_races:>6}"
        )
    terminalreporter.write_line(
        "races: times Airflow 3.3 failed a deferred task whose trigger had fired (apache/airflow 67287); a run it "
        "failed is shown as 'race' and run again"
    )
    for executor, count in LOCK_TIMEOUTS.items():
        terminalreporter.write_line(
            f"{executor}: {count} REST call(s) refused by sqlite's lock timeout (HTTP 500 'Database error') and sent "
            "again: several Airflow processes share one sqlite file"
        )
