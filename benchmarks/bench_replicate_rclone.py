"""6. Replication against rclone: one sync location of 2,000 objects of mixed sizes (1 GB in all by default), copied
S3 to S3 across two endpoints and S3 to Azure Blob, by the operator's copy and by ``rclone copy`` at the same
concurrency, in one run against the same servers (two moto servers and Azurite).

Part of ``make bench-replicate`` (``SIZE_MB=`` to change the total). Each copy runs in a fresh process, the operator's
as a task runs it, with bytecode caches as an installed Airflow has them (filled by a warm-up copy of a small
location first); the figures are its wall time, its peak resident memory, and the time of a second run with
nothing changed. The operator's time is the task's: from building the stores (which loads the stores' SDKs) to the
end, after the interpreter and Airflow have started (which every task process pays before any task code runs);
the whole process's time is printed beside it. rclone's is its process's. Goals: the operator's time at most
rclone's (ratio <= 1.0), its peak memory under 300 MB, and a rerun at most 5% of the first run's time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench_replicate import connection
from common import ROOT, SAFE_ENV, deployed_env, machine, median, report, verdict

from airflow_checkpoint_sync.testing import AzuriteServer, MotoS3Server
from airflow_checkpoint_sync.testing.emulators import AZURITE_ACCOUNT, AZURITE_KEY

OBJECTS = 2000
LARGE = 100  # of the objects, the large ones; the rest are 4 to 128 KB
CONCURRENCY = 4
RERUNS = 3
AZURITE = ROOT / "tests" / "azurite" / "node_modules" / ".bin" / "azurite-blob"

# What the task's execute() does, timed from its start: building both stores (their hooks and SDKs load here), then
# the replication. The interpreter and Airflow's own import come before any task code, in every task of any kind.
COPY = """
import json, sys, time
import airflow.sdk
started = time.monotonic()
from airflow_checkpoint_sync.object_stores import STORE_TYPES, store_for
from airflow_checkpoint_sync.operators.replicate import replicate
source = store_for("bench_source", sys.argv[1], "source_conn_id", STORE_TYPES)
destination = store_for(sys.argv[2], sys.argv[3], "destination_conn_id", STORE_TYPES)
report = replicate(source, destination, delete_removed=False, workers=int(sys.argv[4]))
print(json.dumps({"seconds": time.monotonic() - started, "copied": report["copied"]}))
"""


def stage(s3: MotoS3Server, size_mb: int) -> tuple[int, int]:
    """A sync location at ``bench/src``: checkpoint folders of small files and a few large ones, and the catalog
    naming them; returns (objects, bytes)."""
    rng = random.Random(0)
    checkpoints = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(10)]
    small = [rng.randrange(4, 129) * 1024 for _ in range(OBJECTS - LARGE - 1)]
    large_size = max(1, (size_mb * 2**20 - sum(small)) // LARGE)
    sizes = small + [large_size] * LARGE
    rng.shuffle(sizes)
    client = s3.client()
    block = os.urandom(max(sizes))

    def put(item: tuple[int, int]) -> None:
        n, size = item
        key = f"src/{checkpoints[n % len(checkpoints)]}/pspine-{n}.feldera"
        client.put_object(Bucket="bench", Key=key, Body=block[:size])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, enumerate(sizes)))
    catalog = json.dumps([{"uuid": u} for u in checkpoints]).encode()
    client.put_object(Bucket="bench", Key="src/checkpoints.feldera", Body=catalog)
    return len(sizes) + 1, sum(sizes) + len(catalog)


def run_measured(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``command`` in a fresh process: its wall seconds, its own peak resident memory in MB, and its output."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.monotonic()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)  # the child's own rusage, which Popen.wait would discard
        seconds = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode:
            raise RuntimeError(f"{' '.join(command[:2])} failed: {err.read()[-2000:]}")
        return seconds, usage.ru_maxrss / 1024, out.read()


def copy_and_rerun(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """The copy, then the same copy again with nothing changed, RERUNS times (a rerun is short, so one varies by
    a third from run to run on this machine; the median is reported)."""
    first, peak, out = run_measured(command, env)
    again = [run_measured(command, env) for _ in range(RERUNS)]
    return {"seconds": first, "peak_mb": peak, "out": out, "reruns": [(s, o) for s, _, o in again]}


def operator_copy(env: dict[str, str], conn: str, destination: str) -> dict[str, Any]:
    """The operator's copy and rerun, each in a fresh process: ``seconds`` and ``rerun`` are the task's own time
    (from building the stores on), ``process_seconds`` and ``process_rerun`` the whole process's."""
    figures = copy_and_rerun([sys.executable, "-c", COPY, "bench/src", conn, destination, str(CONCURRENCY)], env)
    first = json.loads(figures["out"].strip().splitlines()[-1])
    again = [json.loads(out.strip().splitlines()[-1]) for _, out in figures["reruns"]]
    figures["process_seconds"] = figures["seconds"]
    figures["process_rerun"] = median([seconds for seconds, _ in figures["reruns"]])
    figures["seconds"], figures["rerun"] = first["seconds"], median([run["seconds"] for run in again])
    figures["recopied"] = max(run["copied"] for run in again)
    return figures


def rclone_copy(env: dict[str, str], destination: str) -> dict[str, Any]:
    command = ["rclone", "copy", "src:bench/src", destination]
    command += [f"--transfers={CONCURRENCY}", f"--checkers={CONCURRENCY}"]
    figures = copy_and_rerun(command, env)
    figures["rerun"] = median([seconds for seconds, _ in figures["reruns"]])
    return figures


def rclone_env(source: MotoS3Server, target: MotoS3Server, azurite: AzuriteServer) -> dict[str, str]:
    # Remotes from the environment only. AWS_CA_BUNDLE (set on this machine for the real AWS) makes rclone's S3
    # backend refuse to start: the servers here are plain http.
    env = {k: v for k, v in SAFE_ENV.items() if k != "AWS_CA_BUNDLE"} | {"RCLONE_CONFIG": "/dev/null"}
    for name, s3 in (("SRC", source), ("DST", target)):
        remote = {"TYPE": "s3", "PROVIDER": "Other", "ACCESS_KEY_ID": s3.access_key,
                  "SECRET_ACCESS_KEY": s3.secret_key, "ENDPOINT": s3.url, "REGION": "us-east-1",
                  "FORCE_PATH_STYLE": "true"}  # fmt: skip
        env.update({f"RCLONE_CONFIG_{name}_{key}": value for key, value in remote.items()})
    # Azurite through a container SAS URL: rclone 1.60 takes no endpoint URL for Azure Blob (its 'endpoint' is a
    # domain suffix, and its emulator switch a fixed port), and a URL keeps every request on 127.0.0.1.
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    sas = generate_container_sas(
        AZURITE_ACCOUNT, "bench", account_key=AZURITE_KEY,
        permission=ContainerSasPermissions(read=True, write=True, list=True, create=True, add=True),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=6),
    )  # fmt: skip
    env.update({
        "RCLONE_CONFIG_AZ_TYPE": "azureblob",
        "RCLONE_CONFIG_AZ_SAS_URL": f"{azurite.url}/{AZURITE_ACCOUNT}/bench?{sas}",
    })  # fmt: skip
    return env


def warm_up(source: MotoS3Server, env: dict[str, str]) -> None:
    """Copy a small location to both destinations once: every module the measured copies import then has its
    bytecode cached, as in a deployment after its first task."""
    client = source.client()
    client.put_object(Bucket="bench", Key=f"warmup/{uuid.uuid4()}/pspine-0.feldera", Body=os.urandom(64 * 1024))
    client.put_object(Bucket="bench", Key="warmup/checkpoints.feldera", Body=b"[]")
    for conn in ("bench_s3", "bench_azure"):
        command = [sys.executable, "-c", COPY, "bench/warmup", conn, "bench/warmup", str(CONCURRENCY)]
        subprocess.run(command, env=env, capture_output=True, check=True, timeout=300)


def compare(env: dict[str, str], renv: dict[str, str]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Each route's operator figures and rclone figures."""
    return {
        "S3 to S3": (operator_copy(env, "bench_s3", "bench/operator"), rclone_copy(renv, "dst:bench/rclone")),
        "S3 to Azure Blob": (
            operator_copy(env, "bench_azure", "bench/operator"),
            rclone_copy(renv, "az:bench/rclone"),
        ),
    }


def measure(size_mb: int = 1024) -> list[str]:
    if shutil.which("rclone") is None:
        return ["rclone is not installed (make bench-replicate installs Debian's rclone)"]
    from azure.storage.blob import BlobServiceClient

    with MotoS3Server() as source, MotoS3Server() as target, AzuriteServer(AZURITE) as azurite:
        source.create_bucket("bench")
        target.create_bucket("bench")
        blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
        blobs.create_container("bench")
        started = time.monotonic()
        objects, total = stage(source, size_mb)
        staged = time.monotonic() - started
        connections = {
            "AIRFLOW_CONN_BENCH_SOURCE": connection(source),
            "AIRFLOW_CONN_BENCH_S3": connection(target),
            "AIRFLOW_CONN_BENCH_AZURE": json.dumps(
                {"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string}}
            ),
        }
        renv = rclone_env(source, target, azurite)
        with tempfile.TemporaryDirectory() as cache:
            env = deployed_env(cache) | connections
            warm_up(source, env)
            figures = compare(env, renv)
        counts = {
            "S3 to S3": (len(target.keys("bench", "operator/")), len(target.keys("bench", "rclone/"))),
            "S3 to Azure Blob": tuple(
                sum(1 for _ in blobs.get_container_client("bench").list_blobs(name_starts_with=p))
                for p in ("operator/", "rclone/")
            ),
        }
    lines = [
        f"sync location: {objects} objects, {total / 2**20:.0f} MB ({LARGE} large, the rest 4 to 128 KB), staged in "
        f"{staged:.0f}s; {CONCURRENCY} copies at a time for both; each copy a fresh process",
    ]
    for route, (ours, theirs) in figures.items():
        ratio = ours["seconds"] / theirs["seconds"]
        rerun = ours["rerun"] / ours["seconds"]
        mine, rclones = counts[route]
        lines += [
            f"{route}: operator {ours['seconds']:.1f}s, rclone copy {theirs['seconds']:.1f}s, ratio {ratio:.2f} "
            f"(goal <= 1.0) {verdict(ratio <= 1.0)}; objects at the destination: operator {mine}, rclone {rclones}",
            f"  the operator's whole process (Python and Airflow starting, then the task): "
            f"{ours['process_seconds']:.1f}s, ratio {ours['process_seconds'] / theirs['seconds']:.2f}; "
            f"its rerun {ours['process_rerun']:.1f}s",
            f"  operator's peak memory {ours['peak_mb']:.0f} MB (goal < 300 MB) {verdict(ours['peak_mb'] < 300)}; "
            f"rclone's {theirs['peak_mb']:.0f} MB",
            f"  rerun with nothing changed (median of {RERUNS}): operator {ours['rerun']:.2f}s, {rerun:.1%} of its "
            "first run (goal <= 5%) "
            f"{verdict(rerun <= 0.05)}, {ours['recopied']:.0f} copied again; rclone {theirs['rerun']:.1f}s",
        ]
    return lines


def rclone_version() -> str:
    if shutil.which("rclone") is None:
        return "no rclone"
    return subprocess.run(["rclone", "version"], capture_output=True, text=True).stdout.splitlines()[0]


def main() -> int:
    size_mb = int(os.environ.get("SIZE_MB", "1024"))
    lines = [f"Machine: {machine()}, {rclone_version()}", *measure(size_mb)]
    report("Replication against rclone", "results_rclone.md", size_mb, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
