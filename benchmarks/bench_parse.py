"""2. DAG parse: each example DAG file against a trivial file with the same DAGs, schedules, DAG arguments
(``default_args``, tags, catchup, ...), params, task count and dependencies, whose tasks are ``EmptyOperator``.

Parsed the way Airflow 3.3's DAG processor does it: one parent starts as ``airflow dag-processor`` does (so Airflow
loads its ``airflow.policy`` entry points, the provider's preload among them), pre-imports the ``airflow.*`` modules
the file names (``parsing_pre_import_modules``), freezes its heap (``gc.freeze()``, as the processor's manager does
before its parse loop) and forks a child per parse; the child times ``DagBag`` on the file. Three settings:

- *deployed*: Airflow's default configuration, bytecode caches written (as a wheel install or the first parse
  leaves them) - the figure for the goal;
- *preload off*: as deployed with ``[feldera] preload_in_dag_processor = False``, so every parse imports the
  provider again: what the preload saves;
- *no bytecode caches*: as deployed with ``PYTHONDONTWRITEBYTECODE=1`` and no ``__pycache__``, so every module a
  parse imports compiles from source.
"""

from __future__ import annotations

import ast
import os
import tempfile
from pathlib import Path

from common import ROOT, SAFE_ENV, deployed_env, median, ratio_line, run_fresh

RUNS = 15
PRELOAD_OFF = {"AIRFLOW__FELDERA__PRELOAD_IN_DAG_PROCESSOR": "False"}
#: What replaces the provider's imports in a trivial file: tasks become EmptyOperators (keeping their task id and
#: outlets), triggers a bare event trigger. Both come from ``airflow.*`` modules, which the processor pre-imports.
STAND_INS = """
from airflow.providers.standard.operators.empty import EmptyOperator as _EmptyOperator
from airflow.triggers.base import BaseEventTrigger as _BaseEventTrigger


def _task(*, task_id, outlets=None, **_ignored):
    return _EmptyOperator(task_id=task_id, outlets=outlets or [])


class _Trigger(_BaseEventTrigger):
    def __init__(self, **_ignored):
        super().__init__()

    def serialize(self):
        return "trivial._Trigger", {}

    async def run(self):
        yield
"""
# The parent stands in for the DAG processor's manager; each fork is one parse, timed in the child.
FORKED_PARSES = """
import gc, importlib, json, os, sys, time
sys.argv = ["airflow", "dag-processor"]  # what Airflow sees when its DAG processor starts
import airflow.sdk
from airflow.dag_processing.dagbag import DagBag
from airflow.utils.file import iter_airflow_imports
preloaded = sorted(m for m in sys.modules if m.startswith("airflow_checkpoint_sync."))
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
# Round-robin, so a slow moment of the machine falls on every file alike rather than on one file's parses.
times = {{path: [] for path in {paths!r}}}
for _ in range({runs}):
    for path in {paths!r}:
        times[path].append(parse_in_child(path))
print(json.dumps({{"times": times, "preloaded": preloaded}}))
"""


def trivial_file(source: str) -> str:
    """The example DAG file ``source`` with the provider's classes replaced by stand-ins (:data:`STAND_INS`):
    the same DAGs, schedules, DAG arguments, params, other tasks, assets and dependencies, without the provider."""
    tree = ast.parse(source)
    body: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("airflow_checkpoint_sync"):
            for alias in node.names:
                name = alias.asname or alias.name
                body.append(ast.parse(f"{name} = {'_Trigger' if name.endswith('Trigger') else '_task'}").body[0])
        else:
            body.append(node)
    stand_ins = ast.parse(STAND_INS).body
    # After any ``from __future__`` import, which must stay first.
    futures = [node for node in body if isinstance(node, ast.ImportFrom) and node.module == "__future__"]
    rest = [node for node in body if node not in futures]
    return ast.unparse(ast.Module(body=[*futures, *stand_ins, *rest], type_ignores=[])) + "\n"


def forked_medians(paths: list[str], env: dict[str, str]) -> tuple[dict[str, float], int]:
    """Each file's median parse time, and how many provider modules the parent held before the first fork."""
    found = run_fresh(FORKED_PARSES.format(paths=paths, runs=RUNS), env=env)
    times: dict[str, list[float]] = found["times"]  # type: ignore[assignment]
    return {path: median(values) for path, values in times.items()}, len(found["preloaded"])  # type: ignore[arg-type]


def compare(
    title: str, examples: list[Path], baselines: list[Path], measured: tuple[dict[str, float], int]
) -> list[str]:
    medians, preloaded = measured
    ours = [medians[str(path)] for path in examples]
    ref = [medians[str(path)] for path in baselines]
    lines = [ratio_line(f"{title}: all example DAG files (sum of medians)", sum(ours), sum(ref), 1.10)]
    lines.append(f"  provider modules in the DAG processor before its first fork: {preloaded}")
    lines += ["  " + ratio_line(path.name, o, r, 1.10) for path, o, r in zip(examples, ours, ref, strict=True)]
    return lines


def measure() -> list[str]:
    examples = sorted((ROOT / "example_dags").glob("*.py"))
    with tempfile.TemporaryDirectory() as tmp:
        baselines = []
        for path in examples:
            baseline = Path(tmp) / f"trivial_{path.name}"
            baseline.write_text(trivial_file(path.read_text()))
            baselines.append(baseline)
        paths = [str(path) for path in examples + baselines]
        deployed = deployed_env(str(Path(tmp) / "pycache"))
        # An empty cache prefix also hides any __pycache__ an earlier run left in the tree.
        no_bytecode = {**SAFE_ENV, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(Path(tmp) / "none")}
        out = compare("deployed (default configuration)", examples, baselines, forked_medians(paths, deployed))
        out += compare("preload off", examples, baselines, forked_medians(paths, {**deployed, **PRELOAD_OFF}))
        out += compare("no bytecode caches", examples, baselines, forked_medians(paths, no_bytecode))
    out.append(f"  ({RUNS} forked parses per file and setting, medians; {os.cpu_count()} cores)")
    return out


if __name__ == "__main__":
    print("\n".join(measure()))
