"""2. DAG parse: each example DAG file against a trivial file with the same DAGs, schedules, params and task count.

Parsed the way Airflow 3.3's DAG processor does it: one parent imports Airflow, pre-imports the ``airflow.*`` modules
the file names (``parsing_pre_import_modules``), freezes its heap (``gc.freeze()``, as the processor's manager does
before its parse loop) and forks a child per parse; the child times ``DagBag`` on the file. Three settings:

- *deployed*: bytecode caches written (as a wheel install or the first parse leaves them) - the figure for the goal;
- *provider pre-imported*: as deployed, with the provider's operator modules imported before the fork, which is what
  Airflow already does for every ``airflow.*`` module and what ``airflow_local_settings.py`` can do for ours;
- *no bytecode caches*: ``PYTHONDONTWRITEBYTECODE=1`` with no ``__pycache__``, so every module compiles from source.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from common import ROOT, SAFE_ENV, deployed_env, median, ratio_line, run_fresh

RUNS = 15
#: The operator and sensor modules the example DAGs import; ``airflow_local_settings.py`` can pre-import the same.
PROVIDER_MODULES = (
    "airflow_checkpoint_sync.operators.checkpoint",
    "airflow_checkpoint_sync.operators.restore",
    "airflow_checkpoint_sync.operators.standby",
    "airflow_checkpoint_sync.operators.replicate",
    "airflow_checkpoint_sync.sensors.checkpoint",
    "airflow_checkpoint_sync.sensors.freshness",
)
SHAPES = """
import datetime as dt, json
from airflow.dag_processing.dagbag import DagBag

def schedule(dag):
    value = dag.schedule
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    assets = value if isinstance(value, (list, tuple)) else [asset for _, asset in value.iter_assets()]
    return [asset.uri for asset in assets]

def params(dag):
    found = {{}}
    for name in dag.params.keys():
        param = dag.params.get_param(name)
        found[name] = [param.value, param.description, param.schema]
    return found

shapes = {{}}
for path in {paths!r}:
    bag = DagBag(dag_folder=path)
    assert not bag.import_errors, bag.import_errors
    shapes[path] = {{
        d.dag_id: {{"tasks": len(d.tasks), "outlets": any(t.outlets for t in d.tasks), "schedule": schedule(d),
                   "params": params(d)}}
        for d in bag.dags.values()
    }}
print(json.dumps(shapes))
"""
# The parent stands in for the DAG processor's manager; each fork is one parse, timed in the child.
FORKED_PARSES = """
import gc, importlib, json, os, time
import airflow.sdk
from airflow.dag_processing.dagbag import DagBag
from airflow.utils.file import iter_airflow_imports
for module in {preimport!r}:
    importlib.import_module(module)
for path in {paths!r}:
    for module in iter_airflow_imports(path):
        importlib.import_module(module)

def parse_in_child(path):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        started = time.perf_counter()
        bag = DagBag(dag_folder=path)
        elapsed = time.perf_counter() - started
        os.write(write, json.dumps([elapsed, bool(bag.import_errors)]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        elapsed, failed = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert not failed, path
    return elapsed

gc.collect()
gc.freeze()
for path in {paths!r}:
    parse_in_child(path)  # warm-up: writes the bytecode caches when they are enabled
times = {{path: [parse_in_child(path) for _ in range({runs})] for path in {paths!r}}}
print(json.dumps(times))
"""


def trivial_file(shape: dict[str, dict[str, Any]]) -> str:
    """A DAG file with the same DAGs, schedules, params and task count, whose tasks are EmptyOperators."""
    lines = [
        "import datetime as dt",
        "from airflow.sdk import DAG, Asset, Param",
        "from airflow.providers.standard.operators.empty import EmptyOperator",
    ]
    for dag_id, dag in shape.items():
        schedule = dag["schedule"]
        if isinstance(schedule, float):
            schedule = f"dt.timedelta(seconds={schedule})"
        elif isinstance(schedule, list):
            schedule = "[" + ", ".join(f"Asset({uri!r})" for uri in schedule) + "]"
        else:
            schedule = repr(schedule)
        params = ", ".join(
            f"{name!r}: Param({value!r}, description={description!r}, **{schema!r})"
            for name, (value, description, schema) in dag["params"].items()
        )
        lines.append(
            f"with DAG({dag_id + '_trivial'!r}, schedule={schedule}, start_date=dt.datetime(2026, 1, 1), "
            f"params={{{params}}}):"
        )
        for i in range(int(dag["tasks"])):
            outlets = ", outlets=[Asset('x-trivial://asset')]" if dag["outlets"] and i == 0 else ""
            lines.append(f"    EmptyOperator(task_id='t{i}'{outlets})")
    return "\n".join(lines) + "\n"


def forked_medians(paths: list[str], env: dict[str, str], preimport: tuple[str, ...] = ()) -> dict[str, float]:
    code = FORKED_PARSES.format(paths=paths, runs=RUNS, preimport=preimport)
    times = run_fresh(code, env=env)
    return {path: median(values) for path, values in times.items()}  # type: ignore[arg-type]


def compare(title: str, examples: list[Path], baselines: list[Path], medians: dict[str, float]) -> list[str]:
    ours = [medians[str(path)] for path in examples]
    ref = [medians[str(path)] for path in baselines]
    lines = [ratio_line(f"{title}: all example DAG files (sum of medians)", sum(ours), sum(ref), 1.10)]
    lines += ["  " + ratio_line(path.name, o, r, 1.10) for path, o, r in zip(examples, ours, ref, strict=True)]
    return lines


def measure() -> list[str]:
    examples = sorted((ROOT / "example_dags").glob("*.py"))
    shapes = run_fresh(SHAPES.format(paths=[str(path) for path in examples]))
    with tempfile.TemporaryDirectory() as tmp:
        baselines = []
        for path in examples:
            baseline = Path(tmp) / f"trivial_{path.name}"
            baseline.write_text(trivial_file(shapes[str(path)]))  # type: ignore[arg-type]
            baselines.append(baseline)
        paths = [str(path) for path in examples + baselines]
        deployed = deployed_env(str(Path(tmp) / "pycache"))
        # An empty cache prefix also hides any __pycache__ an earlier run left in the tree.
        no_bytecode = {**SAFE_ENV, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(Path(tmp) / "none")}
        out = compare("deployed (bytecode cached)", examples, baselines, forked_medians(paths, deployed))
        out += compare(
            "provider pre-imported before the fork",
            examples,
            baselines,
            forked_medians(paths, deployed, PROVIDER_MODULES),
        )
        out += compare("no bytecode caches", examples, baselines, forked_medians(paths, no_bytecode))
    out.append(f"  ({RUNS} forked parses per file and setting, medians; {os.cpu_count()} cores)")
    return out


if __name__ == "__main__":
    print("\n".join(measure()))
