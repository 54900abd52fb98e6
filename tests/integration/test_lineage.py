"""OpenLineage, through the OpenLineage provider's own listener and extraction, sees what each task read and wrote.

The tasks run in a separate interpreter with OpenLineage configured as users configure it (a transport, here the
file transport), since the provider registers its listener when Airflow loads plugins; this test process runs with
OpenLineage off, as the rest of the suite does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from airflow_support import aws_connection

from airflow_checkpoint_sync import lineage
from airflow_checkpoint_sync.hooks.feldera import FelderaHook

if TYPE_CHECKING:
    from feldera_setup import Feldera

TESTS = Path(__file__).resolve().parents[1]


def datasets(event: dict[str, object], side: str) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in event[side]]  # type: ignore[attr-defined,index]


def test_openlineage_extracts_the_locations_and_pipelines_of_sync_restore_replicate_and_drill(
    feldera: Feldera, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_S3_DR", aws_connection(feldera.s3))
    feldera.running_pipeline("prod", records=12)
    feldera.create("staging", sync=None)
    bucket = feldera.bucket
    events_file = tmp_path / "openlineage.jsonl"
    runs = [
        ("migration", {"bucket": f"{bucket}/staging", "read_bucket": f"{bucket}/prod", "bucket_conn": "s3_dr"}),
        ("replicate", {"source": f"{bucket}/prod", "destination_conn": "s3_dr", "destination": f"{bucket}/replica"}),
        ("drill_worker", {"scratch": f"{bucket}/drill", "location": ""}),
    ]
    code = (
        f"import sys; sys.path[:0] = [{str(TESTS)!r}]\n"
        "from airflow_support import run_dag, task_states\n"
        f"for dag_id, conf in {runs!r}:\n"
        "    print(dag_id, task_states(run_dag(dag_id, **conf)))\n"
    )
    transport = {"type": "file", "log_file_path": str(events_file), "append": True}
    env = {**os.environ, "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.count("'success'") == 4, result.stdout  # sync, restore, replicate, drill
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    complete = {e["job"]["name"]: e for e in events if e["eventType"] == "COMPLETE"}
    feldera_ns = f"feldera://{feldera.sandbox.url.removeprefix('http://')}"

    sync = complete["migration.sync"]
    assert datasets(sync, "inputs") == [(feldera_ns, "prod")]
    assert datasets(sync, "outputs") == [(f"s3://{bucket}", "prod")]
    restore = complete["migration.restore"]
    assert datasets(restore, "inputs") == [(f"s3://{bucket}", "prod")]  # the read_bucket it started from
    assert datasets(restore, "outputs") == [(feldera_ns, "staging")]
    replicate = complete["replicate.replicate"]
    assert datasets(replicate, "inputs") == [(f"s3://{bucket}", "prod")]
    assert datasets(replicate, "outputs") == [(f"s3://{bucket}", "replica")]
    drill = complete["drill_worker.drill"]
    assert datasets(drill, "inputs") == [(f"s3://{bucket}", "prod"), (feldera_ns, "prod")]
    assert datasets(drill, "outputs") == []
    # Lineage carries no secret: not the bucket's secret key, nor anything of the connections'.
    assert feldera.s3.secret_key not in events_file.read_text()


@pytest.mark.parametrize(
    ("fields", "namespace"),
    [
        ({"host": "feldera.example.com:8080"}, "feldera://feldera.example.com:8080"),
        ({"host": "feldera.example.com", "port": 8443}, "feldera://feldera.example.com:8443"),
        ({"host": "10.0.0.5", "port": 8080, "schema": "http"}, "feldera://10.0.0.5:8080"),
        ({"host": "https://gw.example.com/feldera/v0"}, "feldera://gw.example.com"),
    ],
)
def test_a_pipeline_s_namespace_is_the_server_the_hook_reaches(
    fields: dict[str, Any], namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A host without a scheme (the connection form's usual spelling) once gave the namespace feldera://<conn_id>.
    connection = {"conn_type": "feldera", "password": "apikey:lineage-secret", **fields}
    monkeypatch.setenv("AIRFLOW_CONN_FELDERA_LINEAGE", json.dumps(connection))
    dataset = lineage.pipeline("feldera_lineage", "prod")
    assert dataset == lineage.Dataset(namespace, "prod")
    assert dataset.namespace == f"feldera://{urlsplit(FelderaHook('feldera_lineage').settings.base_url).netloc}"
    assert "lineage-secret" not in dataset.namespace


def test_a_connection_filled_in_wrongly_leaves_the_connection_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_FELDERA_LINEAGE", json.dumps({"conn_type": "feldera", "host": "ftp://x"}))
    assert lineage.pipeline("feldera_lineage", "prod") == lineage.Dataset("feldera://feldera_lineage", "prod")
