"""The example DAGs users copy parse cleanly and cheaply; tests/e2e runs every one of them on a real deployment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = ROOT / "example_dags"
sys.path.insert(0, str(ROOT / "demo"))
import run_demo  # noqa: E402

EXPECTED = {
    "feldera_dr_setup",
    "feldera_scheduled_dr",
    "feldera_rpo_monitor",
    "feldera_migration",
    "feldera_standby_setup",
    "feldera_failover",
    "feldera_replicate_checkpoints",
    "feldera_replicate_every_push",
    "feldera_restore_from_azure",
    "feldera_restore_drill",
}
CLOUD_SDKS = ("boto3", "botocore", "aiobotocore", "google", "azure")


def test_example_dags_parse_without_errors_or_cloud_sdks() -> None:
    # A fresh interpreter parses the folder the way the DAG processor does: no cloud SDK may load. (The example's
    # Asset uses an "x-" scheme: a provider scheme would make Airflow load every provider's asset handlers, and the
    # Amazon provider's s3 handler imports boto3.)
    code = (
        "import sys, json\n"
        "import airflow.sdk\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "after_dagbag = set(sys.modules)\n"
        f"bag = DagBag(dag_folder={str(EXAMPLE_DAGS)!r})\n"
        "added = sorted(set(sys.modules) - after_dagbag)\n"
        "print(json.dumps({'dags': sorted(bag.dags), 'errors': {k: str(v) for k, v in bag.import_errors.items()},"
        " 'added': added}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS)},
        check=True,
    )
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == {}
    assert set(parsed["dags"]) == EXPECTED
    assert [m for m in parsed["added"] if m.split(".")[0] in CLOUD_SDKS] == []


# The scenario that runs every example DAG, and the secret scan after it, run on a real Airflow deployment in
# tests/e2e (make e2e, part of make test); `make demo` runs the same scenario with `airflow dags test`.


def test_a_demo_claim_that_is_false_fails_the_demo() -> None:
    with pytest.raises(run_demo.DemoFailure, match="should be 15"):
        run_demo.check(14 == 15, "staging has 14 records, production had 15 at the checkpoint; both should be 15")
