"""The provider's task classes are loaded once in Airflow's DAG processor, before it forks a parser per file.

A real ``airflow dag-processor`` parses a probe DAG file that records, before its own imports run, which provider
modules its (forked) parser already holds; the other tests start Airflow as each of its processes does and look.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from airflow_checkpoint_sync import dag_processor_preload
from airflow_checkpoint_sync.get_provider_info import get_provider_info

ROOT = Path(__file__).resolve().parents[2]
CLOUD_SDKS = ("boto3", "botocore", "aiobotocore", "azure", "google.cloud", "moto", "httpx", "aiohttp")
PROBE = """\
import json, os, sys
with open(os.path.join(os.environ["PROBE_OUT"], f"{os.getpid()}.json"), "w") as out:
    json.dump(sorted(m for m in sys.modules if m.startswith("airflow_checkpoint_sync")), out)

import datetime as dt
from airflow.sdk import DAG
from airflow_checkpoint_sync.operators.checkpoint import SyncCheckpointOperator

with DAG("preload_probe", schedule=None, start_date=dt.datetime(2026, 1, 1)):
    SyncCheckpointOperator(task_id="sync", pipeline_name="prod")
"""


def task_modules() -> set[str]:
    info = get_provider_info()
    return {module for kind in ("operators", "sensors") for entry in info[kind] for module in entry["python-modules"]}


def started_as(command: list[str], **env: str) -> dict[str, object]:
    """Start Python as the Airflow command ``command`` starts (``import airflow`` with that argv), then parse the
    example DAGs; what was loaded at start and what the parse added."""
    code = (
        "import json, sys\n"
        f"sys.argv = {['airflow', *command]!r}\n"
        "import airflow\n"
        "at_start = set(sys.modules)\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(ROOT / 'example_dags')!r})\n"
        "mine = lambda names: sorted(m for m in names if m.startswith('airflow_checkpoint_sync'))\n"
        "print(json.dumps({'at_start': mine(at_start), 'added': mine(set(sys.modules) - at_start),\n"
        "    'dags': len(bag.dags), 'errors': {k: str(v) for k, v in bag.import_errors.items()},\n"
        f"    'sdks': sorted(m for m in at_start if m.startswith({CLOUD_SDKS!r}))}}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env={**os.environ, **env}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["errors"] == {}
    assert found["dags"]
    return found


def test_the_distribution_registers_the_preload_under_airflow_s_policy_entry_point() -> None:
    registered = [ep.value for ep in entry_points(group="airflow.policy")]
    assert "airflow_checkpoint_sync.dag_processor_preload" in registered


def test_the_preload_covers_every_operator_and_sensor_module_and_the_watcher_trigger() -> None:
    modules = dag_processor_preload.dag_file_modules()
    assert task_modules() <= set(modules)
    assert "airflow_checkpoint_sync.triggers.remote_checkpoints" in modules


def test_the_dag_processor_starts_with_the_provider_loaded_and_parsing_loads_no_more_of_it() -> None:
    found = started_as(["dag-processor"])
    assert set(dag_processor_preload.dag_file_modules()) <= set(found["at_start"])  # type: ignore[arg-type]
    assert found["added"] == []
    # What parsing needs and no client library: Airflow itself already loads httpx and the google namespace.
    assert found["sdks"] == started_as(["dag-processor"], AIRFLOW__FELDERA__PRELOAD_IN_DAG_PROCESSOR="False")["sdks"]


@pytest.mark.parametrize("command", [["scheduler"], ["triggerer"], ["api-server"], ["tasks", "list", "x"], []])
def test_other_airflow_processes_load_only_the_entry_point(command: list[str]) -> None:
    found = started_as(command)
    assert not set(found["at_start"]) & task_modules()  # type: ignore[arg-type]
    assert task_modules() & set(found["added"])  # type: ignore[arg-type]  # parsing imports them as usual


def test_the_preload_can_be_turned_off() -> None:
    found = started_as(["dag-processor"], AIRFLOW__FELDERA__PRELOAD_IN_DAG_PROCESSOR="False")
    assert not set(found["at_start"]) & task_modules()  # type: ignore[arg-type]


def test_a_module_that_fails_to_import_is_logged_and_the_rest_still_load(caplog: pytest.LogCaptureFixture) -> None:
    modules = ["airflow_checkpoint_sync.no_such_module", "airflow_checkpoint_sync.operators.checkpoint"]
    with caplog.at_level(logging.WARNING, logger=dag_processor_preload.__name__):
        failed = dag_processor_preload.preload(modules)
    assert failed == ["airflow_checkpoint_sync.no_such_module"]
    assert "airflow_checkpoint_sync.no_such_module" in caplog.text
    assert "airflow_checkpoint_sync.operators.checkpoint" in sys.modules


@pytest.mark.parametrize("preload", [True, False])
def test_a_real_dag_processor_forks_its_parsers_with_the_provider_already_loaded(tmp_path: Path, preload: bool) -> None:
    dags, out, home = tmp_path / "dags", tmp_path / "out", tmp_path / "home"
    for folder in (dags, out, home):
        folder.mkdir()
    (dags / "probe.py").write_text(PROBE)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
            [
                {
                    "name": "probe",
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {"path": str(dags)},
                }
            ]
        ),
        "AIRFLOW__FELDERA__PRELOAD_IN_DAG_PROCESSOR": str(preload),
        "PROBE_OUT": str(out),
    }
    for command in (["db", "migrate"], ["dag-processor", "--num-runs", "1"]):
        result = subprocess.run(
            [sys.executable, "-m", "airflow", *command], capture_output=True, text=True, timeout=300, env=env
        )
        assert result.returncode == 0, result.stderr[-3000:]
    (record,) = out.iterdir()  # one parse, in a parser process of its own
    assert int(record.stem) != os.getpid()
    held = set(json.loads(record.read_text()))
    assert (task_modules() <= held) is preload
