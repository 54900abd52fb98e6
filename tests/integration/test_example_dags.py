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
    "feldera_rpo_monitor",
    "feldera_migration",
    "feldera_standby_setup",
    "feldera_failover",
    "feldera_replicate_checkpoints",
    "feldera_restore_from_azure",
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


def test_every_example_dag_runs_to_success_with_airflow_dags_test(
    airflow_db: str, moto_s3: MotoS3Server, s3_bucket: str
) -> None:
    from airflow_checkpoint_sync.testing import AzuriteServer, FelderaSandbox

    with AzuriteServer(run_demo.AZURITE) as azurite, FelderaSandbox(api_key=run_demo.API_KEY) as sandbox:
        env = run_demo.airflow_env(airflow_db, sandbox.url, moto_s3, azurite.connection_string)
        summary = run_demo.run_scenario(sandbox.url, moto_s3, s3_bucket, env)
        console_url = f"{sandbox.url}/pipelines/prod/"
    # run_scenario checks each claim as it goes; these are the ones the demo prints.
    assert summary.synced_uuid and f"prod/dependencies/{summary.synced_uuid}.json" in summary.bucket_objects
    assert "prod/checkpoints.feldera" in summary.bucket_objects and "prod/owner.json" in summary.bucket_objects
    assert summary.staging_records == summary.production_records == 15
    assert summary.standby_status == "Running"
    assert summary.standby_records == summary.primary_records == 22
    assert 0 <= summary.rpo_age_seconds < 3600
    assert summary.drill_records == 22

    # No secret reached what Airflow keeps or shows: CLI output (task logs included), log files, any table.
    from airflow_checkpoint_sync.testing.emulators import AZURITE_KEY

    secrets = {
        "Feldera API key": run_demo.API_KEY,
        "bucket secret key": moto_s3.secret_key,
        "Azure account key": AZURITE_KEY,
    }
    assert all(len(value) >= 20 for value in secrets.values())  # long enough that Airflow's masker applies
    places = {"airflow CLI output": "\n".join(run_demo.CLI_OUTPUT)}
    places.update(log_files(Path(airflow_db) / "logs"))
    places.update(database_tables())
    leaks = [f"{what} in {where}" for where, text in places.items() for what, value in secrets.items() if value in text]
    assert leaks == []
    assert "xcom" in places and "rendered_task_instance_fields" in places and "serialized_dag" in places
    # The scan does see values: the console link the tasks pushed to XCom is there.
    assert console_url in places["xcom"]


def log_files(root: Path) -> dict[str, str]:
    return {str(path): path.read_text(errors="replace") for path in root.rglob("*") if path.is_file()}


def database_tables() -> dict[str, str]:
    """Every row of every table of the metadata DB, as text, by table name."""
    from airflow.utils.session import create_session
    from sqlalchemy import inspect, text

    with create_session() as session:
        tables = inspect(session.get_bind()).get_table_names()
        return {
            table: "\n".join(repr(tuple(row)) for row in session.execute(text(f'SELECT * FROM "{table}"')))
            for table in tables
        }


def test_a_demo_claim_that_is_false_fails_the_demo() -> None:
    with pytest.raises(run_demo.DemoFailure, match="should be 15"):
        run_demo.check(14 == 15, "staging has 14 records, production had 15 at the checkpoint; both should be 15")
