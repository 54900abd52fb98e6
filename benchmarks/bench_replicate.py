"""5. Replication memory: one large object streamed between two S3 connections (moto), the worker's peak memory.

Not part of ``make bench`` (moving a gigabyte through moto takes minutes): run it with ``make bench-replicate``
(``SIZE_MB=`` to change the object's size). The copy runs in a fresh interpreter, the way a task runs, and that
process reports its own peak resident memory, before and after the copy. The goal is under 300 MB for 1 GB.
"""

from __future__ import annotations

import json
import os
import sys
import time

from common import SAFE_ENV, machine, report, run_fresh

from airflow_checkpoint_sync.testing import MotoS3Server

COPY = """
import json, resource, time
from airflow_checkpoint_sync.object_stores import STORE_TYPES, store_for
from airflow_checkpoint_sync.operators.replicate import replicate
source = store_for("bench_source", "bench/src", "source_conn_id", STORE_TYPES)
destination = store_for("bench_destination", "bench/dst", "destination_conn_id", STORE_TYPES)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.monotonic()
report = replicate(source, destination, delete_removed=False, workers=4)
print(json.dumps({"seconds": time.monotonic() - started, "report": report, "before_kb": before,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def connection(s3: MotoS3Server) -> str:
    extra = {"endpoint_url": s3.url, "region_name": "us-east-1"}
    return json.dumps({"conn_type": "aws", "login": s3.access_key, "password": s3.secret_key, "extra": extra})


def measure(size_mb: int = 1024) -> list[str]:
    with MotoS3Server() as s3:
        s3.create_bucket("bench")
        client = s3.client()
        started = time.monotonic()
        upload = client.create_multipart_upload(Bucket="bench", Key="src/data/big.bin")
        part = os.urandom(64 * 1024 * 1024)
        parts = []
        for number in range(1, size_mb // 64 + 1):
            etag = client.upload_part(
                Bucket="bench", Key="src/data/big.bin", UploadId=upload["UploadId"], PartNumber=number, Body=part
            )["ETag"]
            parts.append({"ETag": etag, "PartNumber": number})
        client.complete_multipart_upload(
            Bucket="bench", Key="src/data/big.bin", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
        )
        client.put_object(Bucket="bench", Key="src/checkpoints.feldera", Body=b'{"checkpoints": []}')
        staged = time.monotonic() - started
        # Two connections to the same server: the copy is streamed through the worker, not done server-side.
        env = {
            **SAFE_ENV,
            "AIRFLOW_CONN_BENCH_SOURCE": connection(s3),
            "AIRFLOW_CONN_BENCH_DESTINATION": connection(s3),
        }
        result = run_fresh(COPY, env=env)
        copied = client.head_object(Bucket="bench", Key="dst/data/big.bin")["ContentLength"]
    peak_mb = float(result["peak_kb"]) / 1024  # type: ignore[arg-type]
    before_mb = float(result["before_kb"]) / 1024  # type: ignore[arg-type]
    verdict = "meets" if peak_mb < 300 else "MISSES"
    return [
        f"object: {size_mb} MB in 64 MB parts, staged into moto in {staged:.0f}s; copied {copied // 2**20} MB in "
        f"{float(result['seconds']):.0f}s (streamed between two connections, 8 MB parts, 4 copies at a time)",  # type: ignore[arg-type]
        f"worker peak resident memory: {peak_mb:.0f} MB ({before_mb:.0f} MB after imports, before the copy) "
        f"-> {verdict} the goal < 300 MB",
    ]


def main() -> int:
    size_mb = int(os.environ.get("SIZE_MB", "1024"))
    report(
        "Replication memory benchmark", "results_replicate.md", size_mb, [f"Machine: {machine()}", *measure(size_mb)]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
