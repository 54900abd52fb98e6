"""7. DR at fleet scale: a deferrable sync mapped over 100 pipelines on a real Airflow deployment.

``make bench-fleet`` (``FLEET=`` to change the count). The deployment is ``make e2e``'s (tests/e2e/deployment.py:
api-server, scheduler, dag-processor and triggerer as separate processes, LocalExecutor, sqlite), with the Feldera
sandbox and moto on loopback. Each pipeline runs with checkpoint sync configured, and each push takes a few seconds,
so every mapped task defers. One DAG maps ``SyncCheckpointOperator(deferrable=True)`` over all the pipelines;
another over one of them, run first, for reference. The figures: every task's outcome; each pipeline's requests
(one checkpoint, one sync, then reads), from the sandbox's own request log; the waits in the triggerer at once; the
triggerer's peak memory (the resident memory of its process group, sampled); and the fleet's wall time against one
pipeline's. Figures, never pass/fail: the only goal is that all succeed with one checkpoint and one sync each.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from common import ROOT, SAFE_ENV, machine, verdict

sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from deployment import AirflowDeployment, deployment

from airflow_checkpoint_sync.testing import FelderaSandbox, MotoS3Server

FLEET = int(os.environ.get("FLEET", "100"))
API_KEY = "apikey:fleet-" + "0123456789abcdef" * 4
PUSH_S = 60.0
POLL_S = 5.0
PROGRAM = "CREATE TABLE t (x INT);"
DAGS = """
import datetime as dt
from airflow.sdk import DAG
from airflow_checkpoint_sync.operators.checkpoint import SyncCheckpointOperator

PIPELINES = {pipelines!r}
for dag_id, names in (("fleet_one", PIPELINES[:1]), ("fleet_dr", PIPELINES)):
    with DAG(dag_id, schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False, max_active_tasks=256):
        SyncCheckpointOperator.partial(
            task_id="sync", deferrable=True, poll_interval={poll}, retries=2, retry_delay=dt.timedelta(seconds=10)
        ).expand(pipeline_name=names)
"""


def pipelines() -> list[str]:
    return [f"fleet-{n:03d}" for n in range(FLEET)]


def prepare(sandbox: FelderaSandbox, s3: MotoS3Server, bucket: str) -> None:
    """Every pipeline created, configured to sync to ``bucket/<name>`` and running."""
    http = httpx.Client(base_url=f"{sandbox.url}/v0", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)
    for name in pipelines():
        sync = {"bucket": f"{bucket}/{name}", "endpoint": s3.url, "region": "us-east-1", "provider": "Other",
                "access_key": s3.access_key, "secret_key": s3.secret_key}  # fmt: skip
        runtime = {"storage": {"backend": {"name": "file", "config": {"sync": sync}}}}
        http.put(f"/pipelines/{name}", json={"name": name, "program_code": PROGRAM, "runtime_config": runtime})
    for name in pipelines():
        wait(lambda n=name: http.get(f"/pipelines/{n}").json()["program_status"] == "Success", f"{name} compiles")
        http.post(f"/pipelines/{name}/start")
    for name in pipelines():
        wait(lambda n=name: http.get(f"/pipelines/{n}").json()["deployment_status"] == "Running", f"{name} runs")


def wait(done: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not done in {timeout}s: {what}")
        time.sleep(0.2)


def group_rss_kb(pgid: int) -> int:
    """The resident memory of every process in the process group ``pgid``."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            status = (entry / "status").read_text()
        except (OSError, ProcessLookupError):
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total


class Sampler(threading.Thread):
    """Samples the triggerer's memory and the deferred task count of a run until stopped."""

    def __init__(self, airflow: AirflowDeployment, dag_id: str, run_id: str) -> None:
        super().__init__(daemon=True)
        self.airflow, self.dag_id, self.run_id = airflow, dag_id, run_id
        self.pgid = os.getpgid(airflow.processes["triggerer"].pid)
        self.peak_kb = self.baseline_kb = group_rss_kb(self.pgid)
        self.most_deferred = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            self.peak_kb = max(self.peak_kb, group_rss_kb(self.pgid))
            try:
                states = [ti.get("state") for ti in task_instances(self.airflow, self.dag_id, self.run_id)]
            except Exception:
                continue  # sqlite busy: the next sample reads it
            self.most_deferred = max(self.most_deferred, states.count("deferred"))


def task_instances(airflow: AirflowDeployment, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
    return list(airflow.api("GET", path, params={"limit": FLEET + 10})["task_instances"])


def run_measured(airflow: AirflowDeployment, dag_id: str) -> dict[str, Any]:
    run_id = airflow.trigger(dag_id, {})
    sampler = Sampler(airflow, dag_id, run_id)
    started = time.monotonic()
    sampler.start()
    try:
        state = airflow.wait_run(dag_id, run_id, timeout=1800)
    finally:
        sampler.stopped.set()
        sampler.join()
    tasks = task_instances(airflow, dag_id, run_id)
    return {
        "state": state,
        "seconds": time.monotonic() - started,
        "tasks": collections.Counter(str(ti.get("state")) for ti in tasks),
        "retries": sum(max(0, int(ti.get("try_number") or 1) - 1) for ti in tasks),
        "peak_kb": sampler.peak_kb,
        "baseline_kb": sampler.baseline_kb,
        "most_deferred": sampler.most_deferred,
    }


def requests_per_pipeline(records: list[dict[str, Any]]) -> dict[str, collections.Counter[str]]:
    """Per pipeline, its requests by kind: checkpoint, sync, status reads, other reads."""
    found: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for record in records:
        parts = record["path"].split("/")  # /v0/pipelines/<name>/...
        if len(parts) < 4 or parts[2] != "pipelines":
            continue
        action = "/".join(parts[4:])
        kind = {
            ("POST", "checkpoint"): "checkpoint",
            ("POST", "checkpoint/sync"): "sync",
            ("GET", "checkpoint/sync_status"): "sync status reads",
            ("GET", "checkpoint_status"): "checkpoint status reads",
        }.get((record["method"], action), "other reads" if record["method"] == "GET" else f"other {record['method']}")
        found[parts[3]][kind] += 1
    return found


def measure() -> list[str]:
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp, MotoS3Server() as s3:
        home, dags = Path(tmp) / "airflow", Path(tmp) / "dags"
        dags.mkdir()
        (dags / "fleet.py").write_text(DAGS.format(pipelines=pipelines(), poll=POLL_S))
        bucket = s3.create_bucket("fleet")
        with FelderaSandbox(api_key=API_KEY) as sandbox:
            sandbox.control.set_timings(sync_delay_s=PUSH_S)
            started = time.monotonic()
            prepare(sandbox, s3, bucket)
            prepared = time.monotonic() - started
            env = {**SAFE_ENV, "AIRFLOW_CONN_FELDERA_DEFAULT": json.dumps(
                {"conn_type": "feldera", "host": sandbox.url, "password": API_KEY})}  # fmt: skip
            env.pop("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", None)
            with deployment(home, dags, env) as airflow:
                airflow.wait_parsed({"fleet_one", "fleet_dr"})
                one = run_measured(airflow, "fleet_one")
                sandbox.control.clear_requests()
                fleet = run_measured(airflow, "fleet_dr")
                per_pipeline = requests_per_pipeline(sandbox.control.requests())
    return report(one, fleet, per_pipeline, prepared)


def report(
    one: dict[str, Any], fleet: dict[str, Any], per_pipeline: dict[str, collections.Counter[str]], prepared: float
) -> list[str]:
    kinds = ["checkpoint", "sync", "sync status reads", "checkpoint status reads", "other reads"]
    totals = {kind: [per_pipeline[name][kind] for name in pipelines()] for kind in kinds}
    exact = all(per_pipeline[name]["checkpoint"] == 1 and per_pipeline[name]["sync"] == 1 for name in pipelines())
    others = sorted({k for c in per_pipeline.values() for k in c if k not in kinds})
    ok = fleet["state"] == "success" and fleet["tasks"] == {"success": FLEET} and exact
    lines = [
        f"{FLEET} running pipelines (prepared in {prepared:.0f}s), each push {PUSH_S:.0f}s; SyncCheckpointOperator"
        f"(deferrable=True, poll_interval={POLL_S:.0f}) mapped over them; LocalExecutor, parallelism 8, sqlite",
        f"outcome: run {fleet['state']}, tasks {dict(fleet['tasks'])}, {fleet['retries']} retries; one checkpoint and "
        f"one sync per pipeline: {'yes' if exact else 'NO'} ({verdict(ok)})",
        f"wall time: {fleet['seconds']:.0f}s for {FLEET}, {one['seconds']:.0f}s for one "
        f"(ratio {fleet['seconds'] / one['seconds']:.1f}; {fleet['seconds'] / FLEET:.2f}s per pipeline)",
        "requests per pipeline (min / mean / max): "
        + "; ".join(f"{kind} {min(v)} / {sum(v) / len(v):.1f} / {max(v)}" for kind, v in totals.items() if any(v))
        + (f"; also {', '.join(others)}" if others else ""),
        f"  a status read every {POLL_S:.0f}s of a wait in the triggerer, or the worker's one look before deferring",
        f"triggerer: at most {fleet['most_deferred']} waits deferred at once; peak resident memory of its processes "
        f"{fleet['peak_kb'] / 1024:.0f} MB ({(fleet['peak_kb'] - fleet['baseline_kb']) / 1024:.0f} MB above its "
        f"{fleet['baseline_kb'] / 1024:.0f} MB before the run); with one pipeline {one['peak_kb'] / 1024:.0f} MB",
    ]
    return lines


def main() -> int:
    lines = [f"Machine: {machine()}", *measure()]
    print("\n".join(lines))
    if "--write" in sys.argv:
        out = Path(__file__).parent / "results_fleet.md"
        body = "\n".join(lines)
        out.write_text(f"# DR at fleet scale\n\n`make bench-fleet`, {FLEET} pipelines:\n\n```\n{body}\n```\n")
        print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
