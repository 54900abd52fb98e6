"""4. Overhead against the official client, and how fast a finished sync is noticed.

The non-deferrable SyncCheckpointOperator (its execute(), outside Airflow's task runner, whose start-up is not the
operator's cost) against feldera's Pipeline.checkpoint(wait=True) + sync_checkpoint(wait=True): the same sandbox,
the same sync duration, the same 0.1 s poll interval (the official client's fixed one).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from typing import Any

import httpx
from common import median, ratio_line

from airflow_checkpoint_sync.testing import FelderaSandbox, MotoS3Server, Timings

RUNS = 5
SYNC_S = 2.0
PROGRAM = "CREATE TABLE t (x INT);"


class _TaskInstance:
    """Just enough of a task instance for execute(): somewhere to push XComs."""

    stats_tags: dict[str, str] = {}

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def setup(url: str, s3: MotoS3Server, bucket: str) -> None:
    api = httpx.Client(base_url=f"{url}/v0", timeout=30)
    sync = {"bucket": f"{bucket}/p", "endpoint": s3.url, "access_key": s3.access_key, "secret_key": s3.secret_key}
    api.put(
        "/pipelines/p",
        json={
            "name": "p",
            "program_code": PROGRAM,
            "runtime_config": {"storage": {"backend": {"name": "file", "config": {"sync": sync}}}},
        },
    )
    while api.get("/pipelines/p").json()["program_status"] != "Success":
        time.sleep(0.05)
    api.post("/pipelines/p/start")
    while api.get("/pipelines/p").json()["deployment_status"] != "Running":
        time.sleep(0.05)


def finished_at(sandbox: FelderaSandbox, uuid: str) -> float:
    line = next(x for x in sandbox.control.log("p") if f"checkpoint sync of {uuid} succeeded" in x)
    return dt.datetime.fromisoformat(line.split(" ", 1)[0].replace("Z", "+00:00")).timestamp()


def measure() -> list[str]:
    from feldera import FelderaClient, Pipeline

    from airflow_checkpoint_sync.operators.checkpoint import SyncCheckpointOperator

    ours, theirs, our_detect, their_detect = [], [], [], []
    with MotoS3Server() as s3, FelderaSandbox(timings=Timings(sync_delay_s=SYNC_S)) as sandbox:
        bucket = s3.create_bucket("bench")
        setup(sandbox.url, s3, bucket)
        os.environ["AIRFLOW_CONN_FELDERA_DEFAULT"] = json.dumps({"conn_type": "feldera", "host": sandbox.url})
        pipeline = Pipeline.get("p", FelderaClient(url=sandbox.url))
        for _ in range(RUNS):
            t = time.time()
            pipeline.checkpoint(wait=True)
            uuid = pipeline.sync_checkpoint(wait=True)
            done = time.time()
            theirs.append(done - t)
            their_detect.append(done - finished_at(sandbox, uuid))

            task = SyncCheckpointOperator(
                task_id=f"bench{len(ours)}", pipeline_name="p", poll_interval=0.1, deferrable=False
            )
            t = time.time()
            uuid = task.execute({"ti": _TaskInstance()})  # type: ignore[arg-type]
            done = time.time()
            ours.append(done - t)
            our_detect.append(done - finished_at(sandbox, uuid))
    return [
        ratio_line(
            f"checkpoint + sync ({SYNC_S:.0f}s push) with SyncCheckpointOperator vs the feldera client",
            median(ours),
            median(theirs),
            1.05,
        ),
        f"  time from the sync finishing to noticing it: operator {median(our_detect) * 1000:.0f} ms, feldera "
        f"client {median(their_detect) * 1000:.0f} ms (goal: within the 100 ms poll interval + 100 ms)",
    ]


if __name__ == "__main__":
    print("\n".join(measure()))
