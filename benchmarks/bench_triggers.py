"""3. Waiting at scale: 1,000 CheckpointSyncTriggers in one event loop against the sandbox (in its own process).

Prints resident memory per waiting trigger, the worst event-loop lag, HTTP requests per trigger per poll, and how many
TCP connections each trigger used (1 = its one AsyncClient kept the connection).
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import resource
import subprocess
import sys
import time

import httpx
from common import SAFE_ENV

TRIGGERS = 1000
PIPELINES = 10
POLL_S = 2.0
RUN_S = 12.0
PROGRAM = "CREATE TABLE t (x INT);"


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def start_sandbox() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_checkpoint_sync.testing", "serve", "--port", "0", "--sync-delay", "600"],
        stdout=subprocess.PIPE,
        text=True,
        env=SAFE_ENV,
    )
    assert process.stdout is not None
    url = process.stdout.readline().split("serving on ")[1].split(";")[0].strip()
    return process, url


def prepare(url: str) -> list[tuple[str, str, str]]:
    """Pipelines each with one long sync running: (pipeline, checkpoint_uuid, incarnation_uuid)."""
    api = httpx.Client(base_url=f"{url}/v0", timeout=30)
    sync = {"bucket": "bench/x", "endpoint": "http://127.0.0.1:9", "access_key": "k", "secret_key": "s"}
    started = []
    for i in range(PIPELINES):
        name = f"p{i}"
        api.put(
            f"/pipelines/{name}",
            json={
                "name": name,
                "program_code": PROGRAM,
                "runtime_config": {"storage": {"backend": {"name": "file", "config": {"sync": sync}}}},
            },
        )
    for i in range(PIPELINES):
        while api.get(f"/pipelines/p{i}").json()["program_status"] != "Success":
            time.sleep(0.05)
        api.post(f"/pipelines/p{i}/start")
    for i in range(PIPELINES):
        while api.get(f"/pipelines/p{i}").json()["deployment_status"] != "Running":
            time.sleep(0.05)
        api.post(f"/pipelines/p{i}/checkpoint")
    time.sleep(0.5)
    for i in range(PIPELINES):
        body = api.post(f"/pipelines/p{i}/checkpoint/sync").json()
        started.append((f"p{i}", body["checkpoint_uuid"], body["incarnation_uuid"]))
    api.delete(f"{url}/sandbox/requests")
    return started


async def run_triggers(url: str, started: list[tuple[str, str, str]]) -> dict[str, float]:
    os.environ["AIRFLOW_CONN_FELDERA_DEFAULT"] = json.dumps({"conn_type": "feldera", "host": url})
    from airflow_checkpoint_sync.triggers.checkpoint import CheckpointSyncTrigger

    polls = 0

    class Counting(CheckpointSyncTrigger):
        # Each decide() call is one poll: the count the requests are compared with.
        def decide(self, result: object, error: Exception | None, now: float) -> dict[str, object] | None:
            nonlocal polls
            polls += 1
            return super().decide(result, error, now)

    def make(i: int) -> CheckpointSyncTrigger:
        name, uuid, incarnation = started[i % PIPELINES]
        return Counting(
            feldera_conn_id="feldera_default",
            pipeline_name=name,
            checkpoint_uuid=uuid,
            incarnation_uuid=incarnation,
            end_time=time.time() + 3600,
            poll_interval=POLL_S,
        )

    async def drive(trigger: CheckpointSyncTrigger) -> None:
        async for _ in trigger.run():
            return

    # Warm up imports, the connection lookup and one client before measuring memory.
    warm = asyncio.ensure_future(drive(make(0)))
    await asyncio.sleep(POLL_S + 0.5)
    warm.cancel()
    async with httpx.AsyncClient() as client:  # count only the measured triggers' requests
        await client.delete(f"{url}/sandbox/requests")
    await asyncio.sleep(0.1)
    polls = 0
    before = rss_kb()
    lags: list[tuple[float, float]] = []
    stop = asyncio.Event()

    async def monitor() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append((time.monotonic(), time.perf_counter() - t - 0.01))

    watcher = asyncio.ensure_future(monitor())
    tasks = [asyncio.ensure_future(drive(make(i))) for i in range(TRIGGERS)]
    began = time.monotonic()
    await asyncio.sleep(RUN_S)
    after = rss_kb()
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, watcher, return_exceptions=True)
    # The first poll of every trigger lands at once (connection lookup, client, first request): report it apart.
    startup = [lag for at, lag in lags if at < began + POLL_S]
    steady = [lag for at, lag in lags if at >= began + POLL_S]
    return {
        "kb_per_trigger": (after - before) / TRIGGERS,
        "startup_lag_ms": max(startup, default=0.0) * 1000,
        "lag_ms": max(steady, default=0.0) * 1000,
        "polls": float(polls),
        "done_early": float(sum(t.done() and not t.cancelled() for t in tasks)),
    }


def measure(freeze_gc: bool = False) -> list[str]:
    process, url = start_sandbox()
    try:
        started = prepare(url)
        if freeze_gc:
            # What a triggerer can do after start-up: move the long-lived heap (Airflow, imports) out of the
            # collector's way, so full collections stop scanning it.
            import gc

            import airflow_checkpoint_sync.hooks.feldera
            import airflow_checkpoint_sync.triggers.checkpoint  # noqa: F401

            gc.collect()
            gc.freeze()
        figures = asyncio.run(run_triggers(url, started))
        log = httpx.get(f"{url}/sandbox/requests", timeout=60).json()
    finally:
        process.terminate()
        process.wait(timeout=20)
    reads = [r for r in log if r["path"].endswith("/checkpoint/sync_status")]
    per_connection = collections.Counter(r["client"] for r in reads)
    other = [r for r in log if not r["path"].endswith("/checkpoint/sync_status")]
    frozen = " (gc.freeze() after start-up)" if freeze_gc else ""
    return [
        f"{TRIGGERS} triggers, poll every {POLL_S}s, {RUN_S:.0f}s of waiting{frozen}:",
        f"  resident memory per waiting trigger: {figures['kb_per_trigger']:.1f} KB (goal <= 100 KB)",
        f"  worst event-loop lag while waiting: {figures['lag_ms']:.1f} ms (goal < 50 ms); during the start of all "
        f"{TRIGGERS} at once: {figures['startup_lag_ms']:.1f} ms",
        f"  HTTP requests per poll: {len(reads) / max(figures['polls'], 1):.3f} (goal: exactly 1; "
        f"{len(reads)} status reads for {figures['polls']:.0f} polls, {len(other)} other requests)",
        f"  TCP connections: {len(per_connection)} for {TRIGGERS} triggers "
        f"(max {max(per_connection.values())} requests on one connection: connections reused)",
    ]


if __name__ == "__main__":
    print("\n".join(measure(freeze_gc="--freeze-gc" in sys.argv)))
