"""3. Waiting at scale: 1,000 CheckpointSyncTriggers in one event loop against the sandbox (in its own process).

Prints resident memory per waiting trigger, the worst event-loop lag, CPU and HTTP requests per poll, and the TCP
connections all the waits used (they share one pool of at most 20). The same figures for a reference, a bare httpx
polling loop with a client per wait, separate what the provider costs from what any HTTP poll costs in a Python
process holding Airflow: mostly full garbage collections of that heap. Each goal is against the reference of the same
run: memory and worst lag no higher, CPU per poll at most 1.05 times, exactly one request per poll, at most 20
connections.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import httpx
from common import SAFE_ENV, verdict

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

Started = list[tuple[str, str, str]]

TRIGGERS = 1000
PIPELINES = 10
POLL_S = 2.0
RUN_S = 12.0
ROUNDS = 3
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


async def run_waits(
    url: str, make: Callable[[int], Awaitable[None]], counter: list[int], freeze_gc: bool
) -> dict[str, float]:
    """Run TRIGGERS waits made by ``make`` in this loop; memory, event-loop lag and polls (``counter[0]``)."""
    # Warm up imports, the connection lookup and one client before measuring memory.
    warm = asyncio.ensure_future(make(0))
    await asyncio.sleep(POLL_S + 0.5)
    warm.cancel()
    if freeze_gc:
        # What a triggerer can do after start-up: move the long-lived heap (Airflow, every module the first wait
        # imported) out of the collector's way, so full collections stop scanning it.
        gc.collect()
        gc.freeze()
    async with httpx.AsyncClient() as client:  # count only the measured waits' requests
        await client.delete(f"{url}/sandbox/requests")
    await asyncio.sleep(0.1)
    counter[0] = 0
    before = rss_kb()
    lags: list[tuple[float, float]] = []
    stop = asyncio.Event()

    async def monitor() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append((time.monotonic(), time.perf_counter() - t - 0.01))

    watcher = asyncio.ensure_future(monitor())
    tasks = [asyncio.ensure_future(make(i)) for i in range(TRIGGERS)]
    began = time.monotonic()
    await asyncio.sleep(POLL_S)
    cpu_before, polls_before = time.process_time(), counter[0]
    await asyncio.sleep(RUN_S - POLL_S)
    cpu_ms_per_poll = (time.process_time() - cpu_before) * 1000 / max(counter[0] - polls_before, 1)
    after = rss_kb()
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, watcher, return_exceptions=True)
    # The first poll of every wait lands within one interval of the start (connection lookup, client, first
    # request): report it apart.
    startup = [lag for at, lag in lags if at < began + POLL_S]
    steady = [lag for at, lag in lags if at >= began + POLL_S]
    return {
        "kb_per_trigger": (after - before) / TRIGGERS,
        "startup_lag_ms": max(startup, default=0.0) * 1000,
        "lag_ms": max(steady, default=0.0) * 1000,
        "lag_p99_ms": sorted(steady)[int(len(steady) * 0.99)] * 1000 if steady else 0.0,
        "polls": float(counter[0]),
        "cpu_ms_per_poll": cpu_ms_per_poll,
    }


def provider_waits(url: str, started: Started, counter: list[int]) -> Callable[[int], Awaitable[None]]:
    """The provider's CheckpointSyncTrigger, counting each reads() call: one poll."""
    os.environ["AIRFLOW_CONN_FELDERA_DEFAULT"] = json.dumps({"conn_type": "feldera", "host": url})
    from airflow_checkpoint_sync.triggers.checkpoint import CheckpointSyncTrigger

    class Counting(CheckpointSyncTrigger):
        # Each reads() call is one poll, however many requests it takes: the count the requests are compared with.
        def reads(self) -> Any:
            counter[0] += 1
            return super().reads()

    async def wait(i: int) -> None:
        name, uuid, incarnation = started[i % PIPELINES]
        trigger = Counting(
            feldera_conn_id="feldera_default",
            pipeline_name=name,
            checkpoint_uuid=uuid,
            incarnation_uuid=incarnation,
            end_time=time.time() + 3600,
            poll_interval=POLL_S,
        )
        async for _ in trigger.run():
            return

    return wait


def reference_waits(url: str, started: Started, counter: list[int]) -> Callable[[int], Awaitable[None]]:
    """The least any HTTP-polling trigger does: its own httpx.AsyncClient (sharing one TLS context, as the provider
    does), the same first-poll spread, one GET of the same status every interval, the JSON parsed, nothing else."""
    import ssl

    tls = ssl.create_default_context()

    async def wait(i: int) -> None:
        name = started[i % PIPELINES][0]
        async with httpx.AsyncClient(base_url=f"{url}/v0", timeout=30, verify=tls) as client:
            await asyncio.sleep(random.uniform(0, POLL_S))
            while True:
                counter[0] += 1
                (await client.get(f"/pipelines/{name}/checkpoint/sync_status")).json()
                await asyncio.sleep(POLL_S)

    return wait


def run_variant(variant: str, freeze_gc: bool) -> dict[str, float]:
    """One variant in this interpreter, against a sandbox of its own; the figures and the request log's counts."""
    # Both hold what any triggerer process holds, so the reference's collections scan a heap like the provider's.
    import airflow.sdk
    import airflow.triggers.base  # noqa: F401

    process, url = start_sandbox()
    try:
        started = prepare(url)
        counter = [0]
        make = (provider_waits if variant == "provider" else reference_waits)(url, started, counter)
        figures = asyncio.run(run_waits(url, make, counter, freeze_gc))
        log = httpx.get(f"{url}/sandbox/requests", timeout=60).json()
    finally:
        process.terminate()
        process.wait(timeout=20)
    reads = [r for r in log if r["path"].endswith("/checkpoint/sync_status")]
    return {
        **figures,
        "reads": float(len(reads)),
        "other": float(len(log) - len(reads)),
        "connections": float(len({r["client"] for r in reads})),
        "max_per_connection": float(max(collections.Counter(r["client"] for r in reads).values(), default=0)),
    }


def measure(freeze_gc: bool = False) -> list[str]:
    """Both variants, each in a fresh interpreter so neither inherits the other's heap, ROUNDS times in turn; each
    figure is the median of its rounds (one 12-second run moves by 20% with whatever else the machine does)."""
    rounds: dict[str, list[dict[str, float]]] = {"provider": [], "reference": []}
    for _ in range(ROUNDS):
        for variant in rounds:
            command = [sys.executable, __file__, "--variant", variant, *(["--freeze-gc"] if freeze_gc else [])]
            done = subprocess.run(command, capture_output=True, text=True, env=SAFE_ENV, timeout=300, check=True)
            rounds[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
    ours, ref = ({key: statistics.median(r[key] for r in runs) for key in runs[0]} for runs in rounds.values())
    frozen = " (gc.freeze() after start-up)" if freeze_gc else ""
    per_poll = ours["reads"] / max(ours["polls"], 1)
    cpu_ratio = ours["cpu_ms_per_poll"] / ref["cpu_ms_per_poll"]
    return [
        f"{TRIGGERS} triggers, poll every {POLL_S}s, {RUN_S:.0f}s of waiting{frozen}; reference beside each figure; "
        f"medians of {ROUNDS} rounds:",
        f"  memory per waiting trigger: {ours['kb_per_trigger']:.1f} KB, reference {ref['kb_per_trigger']:.1f} KB "
        f"(goal: no more) {verdict(ours['kb_per_trigger'] <= ref['kb_per_trigger'])}",
        f"  worst event-loop lag while waiting: {ours['lag_ms']:.1f} ms, reference {ref['lag_ms']:.1f} ms (goal: no "
        f"more) {verdict(ours['lag_ms'] <= ref['lag_ms'])}; 99th percentile {ours['lag_p99_ms']:.1f} ms, reference "
        f"{ref['lag_p99_ms']:.1f} ms; while all {TRIGGERS} start at once {ours['startup_lag_ms']:.1f} ms",
        f"  CPU per poll: {ours['cpu_ms_per_poll']:.3f} ms, reference {ref['cpu_ms_per_poll']:.3f} ms, ratio "
        f"{cpu_ratio:.2f} (goal <= 1.05) {verdict(cpu_ratio <= 1.05)}",
        f"  HTTP requests per poll: {per_poll:.3f} ({ours['reads']:.0f} status reads for {ours['polls']:.0f} polls, "
        f"{ours['other']:.0f} other requests; a poll cut off when the run ends has no read) (goal: exactly 1) "
        f"{verdict(ours['other'] == 0 and ours['polls'] - TRIGGERS <= ours['reads'] <= ours['polls'])}",
        f"  TCP connections: {ours['connections']:.0f} for {TRIGGERS} triggers, reference "
        f"{ref['connections']:.0f} (goal <= 20) {verdict(ours['connections'] <= 20)}",
    ]


if __name__ == "__main__":
    if "--variant" in sys.argv:
        print(json.dumps(run_variant(sys.argv[sys.argv.index("--variant") + 1], "--freeze-gc" in sys.argv)))
    else:
        print("\n".join(measure(freeze_gc="--freeze-gc" in sys.argv)))
