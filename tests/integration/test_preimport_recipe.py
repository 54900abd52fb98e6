"""The documented airflow_local_settings.py recipe: Airflow loads the provider at start-up; parsing loads no more."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from airflow_checkpoint_sync.get_provider_info import get_provider_info

ROOT = Path(__file__).resolve().parents[2]
RECIPE_DIR = ROOT / "docs" / "recipes"


def task_modules() -> set[str]:
    info = get_provider_info()
    return {module for kind in ("operators", "sensors") for entry in info[kind] for module in entry["python-modules"]}


def test_recipe_lists_every_operator_and_sensor_module() -> None:
    recipe = (RECIPE_DIR / "airflow_local_settings.py").read_text()
    assert {module for module in task_modules() if f'"{module}"' in recipe} == task_modules()


def test_with_the_recipe_airflow_loads_the_provider_and_parsing_loads_nothing_more() -> None:
    code = (
        "import json, sys\n"
        "import airflow, airflow.settings\n"
        "at_start = sorted(m for m in sys.modules if m.startswith('airflow_checkpoint_sync'))\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "before = set(sys.modules)\n"
        f"bag = DagBag(dag_folder={str(ROOT / 'example_dags')!r})\n"
        "added = sorted(m for m in set(sys.modules) - before if m.startswith('airflow_checkpoint_sync'))\n"
        "leftovers = [n for n in vars(airflow.settings) if 'feldera' in n.lower()]\n"
        "print(json.dumps({'at_start': at_start, 'added': added, 'dags': len(bag.dags),\n"
        "                  'errors': {k: str(v) for k, v in bag.import_errors.items()}, 'leftovers': leftovers}))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(RECIPE_DIR), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    assert task_modules() <= set(parsed["at_start"])
    assert parsed["errors"] == {}
    assert parsed["dags"] > 0
    assert parsed["added"] == []
    assert parsed["leftovers"] == []
