"""2. DAG parse: each example DAG file against a trivial file with the same DAGs, tasks, params and assets.

Parsed the way the DAG processor does: a fresh process with Airflow already imported, timing DagBag on one file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import ROOT, median, ratio_line, run_fresh

RUNS = 5
PARSE = """
import json, time
import airflow.sdk
from airflow.dag_processing.dagbag import DagBag
t = time.perf_counter()
bag = DagBag(dag_folder={path!r})
elapsed = time.perf_counter() - t
assert not bag.import_errors, bag.import_errors
print(json.dumps({{"s": elapsed, "dags": {{d.dag_id: [len(d.tasks), any(t.outlets for t in d.tasks)]
                  for d in bag.dags.values()}}}}))
"""


def trivial_file(shape: dict[str, list[object]]) -> str:
    lines = [
        "import datetime as dt",
        "from airflow.sdk import DAG, Asset, Param",
        "from airflow.providers.standard.operators.empty import EmptyOperator",
    ]
    for dag_id, (tasks, has_outlets) in shape.items():
        lines.append(
            f"with DAG({dag_id + '_trivial'!r}, schedule=None, start_date=dt.datetime(2026, 1, 1), "
            "params={'p': Param('x', type='string')}):"
        )
        for i in range(int(tasks)):  # type: ignore[call-overload]
            outlets = ", outlets=[Asset('x-trivial://asset')]" if has_outlets and i == 0 else ""
            lines.append(f"    EmptyOperator(task_id='t{i}'{outlets})")
    return "\n".join(lines) + "\n"


def measure() -> list[str]:
    out = []
    totals_ours, totals_ref = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted((ROOT / "example_dags").glob("*.py")):
            shape = run_fresh(PARSE.format(path=str(path)))["dags"]
            baseline = Path(tmp) / f"trivial_{path.name}"
            baseline.write_text(trivial_file(shape))  # type: ignore[arg-type]
            ours = [float(run_fresh(PARSE.format(path=str(path)))["s"]) for _ in range(RUNS)]  # type: ignore[arg-type]
            ref = [float(run_fresh(PARSE.format(path=str(baseline)))["s"]) for _ in range(RUNS)]  # type: ignore[arg-type]
            totals_ours.append(median(ours))
            totals_ref.append(median(ref))
            out.append("  " + ratio_line(path.name, median(ours), median(ref), 1.10))
    out.insert(0, ratio_line("all example DAG files (sum of medians)", sum(totals_ours), sum(totals_ref), 1.10))
    return out


if __name__ == "__main__":
    print("\n".join(measure()))
