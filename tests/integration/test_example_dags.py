"""The example DAGs users copy: they parse cleanly and cheaply, and each runs to success with `airflow dags test`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_checkpoint_sync.testing import MotoS3Server

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = ROOT / "example_dags"
sys.path.insert(0, str(ROOT / "demo"))
import run_demo  # noqa: E402

EXPECTED = {
    "feldera_dr_setup",
    "feldera_scheduled_dr",
    "feldera_migration",
    "feldera_standby_setup",
    "feldera_failover",
}
CLOUD_SDKS = ("boto3", "botocore", "aiobotocore", "google", "azure")


def test_example_dags_parse_without_errors_or_cloud_sdks() -> None:
    # A fresh interpreter parses the folder the way the DAG processor does; the provider must add no cloud SDK.
    # The baseline includes one Asset: creating any Asset makes Airflow load every installed provider's asset-URI
    # handlers, and the Amazon provider's s3 handler imports boto3. That cost is Airflow's, paid by any DAG with an
    # Asset; what is measured here is what the example DAGs and this provider add on top of it.
    code = (
        "import sys, json\n"
        "import airflow.sdk\n"
        "airflow.sdk.Asset('baseline://asset')\n"
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


def test_every_example_dag_runs_to_success_with_airflow_dags_test(
    airflow_db: str, moto_s3: MotoS3Server, s3_bucket: str
) -> None:
    from airflow_checkpoint_sync.testing import FelderaSandbox

    with FelderaSandbox(api_key=run_demo.API_KEY) as sandbox:
        env = run_demo.airflow_env(airflow_db, sandbox.url, moto_s3)
        summary = run_demo.run_scenario(sandbox.url, moto_s3, s3_bucket, env)
    # run_scenario checks each claim as it goes; these are the ones the demo prints.
    assert summary.synced_uuid and f"prod/dependencies/{summary.synced_uuid}.json" in summary.bucket_objects
    assert "prod/checkpoints.feldera" in summary.bucket_objects and "prod/owner.json" in summary.bucket_objects
    assert summary.staging_records == summary.production_records == 15
    assert summary.standby_status == "Running"
    assert summary.standby_records == summary.primary_records == 22


def test_a_demo_claim_that_is_false_fails_the_demo() -> None:
    with pytest.raises(run_demo.DemoFailure, match="should be 15"):
        run_demo.check(14 == 15, "staging has 14 records, production had 15 at the checkpoint; both should be 15")
