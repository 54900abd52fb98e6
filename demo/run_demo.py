"""``make demo``: the whole mission on one machine, with real Airflow, a Feldera sandbox and a local S3 server.

It starts moto's S3 server, Azurite and the Feldera sandbox on loopback, gives Airflow its connections through
environment variables, creates a production pipeline with some data, and runs the example DAGs with
``airflow dags test``: scheduled DR, an RPO check, migration to staging, a hot standby and a failover, then a
replica in Azure and a DR drill restored from it. It checks every outcome, prints a summary, exits
non-zero if anything is not as claimed, and stops everything it started.

The integration tests run the same scenario (:func:`run_scenario`), so the demo's claims are tested claims.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from azure.storage.blob import BlobServiceClient

from airflow_checkpoint_sync.testing import AzuriteServer, FelderaSandbox, MotoS3Server

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DAGS = ROOT / "example_dags"
AZURITE = ROOT / "tests" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
API_KEY = "apikey:demo-" + "0123456789abcdef" * 4
PROGRAM = """
CREATE TABLE orders (id INT NOT NULL PRIMARY KEY, amount DOUBLE);
CREATE MATERIALIZED VIEW order_count AS SELECT COUNT(*) AS n FROM orders;
"""


#: What a RestoreDrillOperator logs when its drill passed: the checkpoint, the location, the recovery time.
DRILL_PASSED = r"Drill passed: checkpoint (\S+) of (\S+) restored in ([\d.]+)s"


class DemoFailure(AssertionError):
    """A step of the demo did not do what the demo claims."""


@dataclass
class Summary:
    """What the demo established, in the words it prints."""

    synced_uuid: str = ""
    bucket_objects: list[str] = field(default_factory=list)
    production_records: int = 0
    staging_records: int = 0
    migrated_uuid: str = ""
    standby_status: str = ""
    standby_records: int = 0
    primary_records: int = 0
    rpo_age_seconds: float = -1.0
    drill_records: int = 0
    drills: list[tuple[str, str, float]] = field(default_factory=list)

    def lines(self, bucket: str) -> list[str]:
        return [
            f"scheduled DR   checkpoint {self.synced_uuid} synced; s3://{bucket}/prod holds "
            f"{len(self.bucket_objects)} objects: {', '.join(o.split('/', 1)[1] for o in self.bucket_objects)}",
            f"migration      staging restored from {self.migrated_uuid}: {self.staging_records} records, as production "
            f"had at that checkpoint ({self.production_records})",
            f"hot standby    after failover the standby is {self.standby_status} with {self.standby_records} records "
            f"(the primary's newest synced state: {self.primary_records})",
            f"RPO monitor    the newest synced checkpoint was {self.rpo_age_seconds:.0f}s old, within the 1h objective",
            f"Azure replica  a DR drill pipeline restored from the Azure copy holds {self.drill_records} records",
            *(
                f"restore drill  checkpoint {uuid} of {where} restored into a scratch pipeline in {seconds:.1f}s, "
                "its check passed, the scratch pipeline deleted"
                for uuid, where, seconds in self.drills
            ),
        ]


class Feldera:
    """Plain HTTP to the sandbox, for setting up pipelines (the DAGs do the rest)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=f"{url}/v0", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)

    def status(self, name: str) -> dict[str, Any]:
        body: dict[str, Any] = self.http.get(f"/pipelines/{name}", params={"selector": "status"}).json()
        return body

    def wait(self, name: str, done: Callable[[dict[str, Any]], bool], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not done(self.status(name)):
            if time.monotonic() > deadline:
                raise DemoFailure(f"pipeline '{name}' did not {what} within {timeout}s: {self.status(name)}")
            time.sleep(0.1)

    def create(self, name: str) -> None:
        response = self.http.put(f"/pipelines/{name}", json={"name": name, "program_code": PROGRAM})
        if response.status_code not in (200, 201):
            raise DemoFailure(f"creating '{name}' failed: {response.text}")
        self.wait(name, lambda p: p["program_status"] == "Success", "compile")

    def start(self, name: str) -> None:
        self.http.post(f"/pipelines/{name}/start")
        self.wait(name, lambda p: p["deployment_status"] == "Running", "start")

    def stop(self, name: str) -> None:
        self.http.post(f"/pipelines/{name}/stop", params={"force": "true"})
        self.wait(name, lambda p: p["deployment_status"] == "Stopped", "stop")

    def ingest(self, name: str, first: int, count: int) -> None:
        rows = [{"id": i, "amount": i * 2.5} for i in range(first, first + count)]
        response = self.http.post(
            f"/pipelines/{name}/ingress/orders", params={"format": "json", "array": "true"}, content=json.dumps(rows)
        )
        if response.status_code != 200:
            raise DemoFailure(f"ingesting into '{name}' failed: {response.text}")

    def records(self, name: str) -> int:
        return int(self.http.get(f"/pipelines/{name}/stats").json()["global_metrics"]["total_processed_records"])


def airflow_env(home: str, feldera_url: str, s3: MotoS3Server, azure_connection_string: str) -> dict[str, str]:
    """Airflow on sqlite in ``home``, the example DAGs, and the three connections as environment variables."""
    bucket_conn = {
        "conn_type": "aws",
        "login": s3.access_key,
        "password": s3.secret_key,
        "extra": {"endpoint_url": s3.url, "region_name": "us-east-1"},
    }
    # The example DAGs are the default dags-folder bundle: a bundle list set around the demo (the test suite sets
    # one for tests/dags) would hide them.
    inherited = {k: v for k, v in os.environ.items() if k != "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"}
    return {
        **inherited,
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
        "AIRFLOW_CONN_FELDERA_DEFAULT": json.dumps({"conn_type": "feldera", "host": feldera_url, "password": API_KEY}),
        "AIRFLOW_CONN_FELDERA_BUCKET": json.dumps(bucket_conn),
        "AIRFLOW_CONN_FELDERA_AZURE": json.dumps(
            {"conn_type": "wasb", "extra": {"connection_string": azure_connection_string}}
        ),
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_GCE_CHECK": "True",
    }


#: Everything the Airflow CLI printed in this process (the leak scan in the tests reads it).
CLI_OUTPUT: list[str] = []


def airflow(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, timeout=600
    )
    CLI_OUTPUT.extend([result.stdout, result.stderr])
    if result.returncode != 0:
        raise DemoFailure(f"airflow {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


#: The example DAGs that wait for a person's approval (Airflow's ApprovalOperator): the demo approves, as the on-call
#: engineer would in the Required Actions UI.
APPROVED_BY_THE_DEMO = {"feldera_failover"}


def dags_test(env: dict[str, str], dag_id: str, **conf: Any) -> str:
    if dag_id not in APPROVED_BY_THE_DEMO:
        return check_dags_test(dag_id, airflow(env, "dags", "test", dag_id, "--conf", json.dumps(conf)))
    # `airflow dags test` leaves the approval waiting until someone answers: the provider's approver does, through
    # Airflow's own handler, from another process on the same metadata database.
    approver = subprocess.Popen(
        [sys.executable, "-m", "airflow_checkpoint_sync.testing", "approve", dag_id, "--user", "demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out = airflow(env, "dags", "test", dag_id, "--conf", json.dumps(conf))
    finally:
        if approver.poll() is None:
            approver.terminate()
        CLI_OUTPUT.append(approver.communicate(timeout=30)[0])
    return check_dags_test(dag_id, out)


def check_dags_test(dag_id: str, out: str) -> str:
    if f"dag_id={dag_id}" not in out or "state=success" not in out.split("DagRun Finished")[-1]:
        raise DemoFailure(f"DAG {dag_id} did not succeed:\n{out[-4000:]}")
    return out


def catalog(s3: MotoS3Server, bucket: str, prefix: str) -> list[dict[str, Any]]:
    body = s3.client().get_object(Bucket=bucket, Key=f"{prefix}/checkpoints.feldera")["Body"].read()
    entries: list[dict[str, Any]] = json.loads(body)  # Feldera's catalog: a list of CheckpointMetadata
    return entries


def replica_container(env: dict[str, str]) -> None:
    """The examples' Azure container for the replica, made if it is not there yet."""
    from azure.core.exceptions import ResourceExistsError

    azure = json.loads(env["AIRFLOW_CONN_FELDERA_AZURE"])["extra"]["connection_string"]
    with contextlib.suppress(ResourceExistsError):
        BlobServiceClient.from_connection_string(azure).create_container("feldera-replica")


def check(condition: bool, message: str) -> None:
    if not condition:
        raise DemoFailure(message)


def run_scenario(
    feldera_url: str,
    s3: MotoS3Server,
    bucket: str,
    env: dict[str, str],
    run: Callable[..., str] | None = None,
) -> Summary:
    """Scheduled DR, migration, hot standby and failover, each checked against the bucket and the pipelines.

    ``run(dag_id, **conf)`` runs one DAG to success and returns its output: ``airflow dags test`` by default; the
    end-to-end suite passes one that triggers the run on a real deployment.
    """
    run = run or (lambda dag_id, **conf: dags_test(env, dag_id, **conf))
    feldera = Feldera(feldera_url)
    summary = Summary()
    for name in ("prod", "staging", "standby", "drill"):
        feldera.create(name)

    # 1. Scheduled disaster recovery: configure once (pipeline stopped), then a scheduled run syncs.
    run("feldera_dr_setup", pipeline="prod", bucket=f"{bucket}/prod", bucket_conn_id="feldera_bucket")
    feldera.start("prod")
    feldera.ingest("prod", 0, 10)
    run("feldera_scheduled_dr", pipeline="prod")
    first = catalog(s3, bucket, "prod")
    check(len(first) == 1, f"the bucket's catalog should list one checkpoint, it lists {first}")
    summary.synced_uuid = first[0]["uuid"]
    summary.bucket_objects = s3.keys(bucket, "prod/")
    check(
        f"prod/dependencies/{summary.synced_uuid}.json" in summary.bucket_objects,
        "the checkpoint's manifest is missing from the bucket",
    )

    # 2. Migration: production moves on, is synced, and staging starts from exactly that checkpoint.
    feldera.ingest("prod", 10, 5)
    run(
        "feldera_migration",
        production="prod",
        staging="staging",
        production_bucket=f"{bucket}/prod",
        staging_bucket=f"{bucket}/staging",
        bucket_conn_id="feldera_bucket",
    )
    migrated = catalog(s3, bucket, "prod")[-1]
    summary.migrated_uuid = migrated["uuid"]
    summary.production_records = int(migrated["processed_records"])
    summary.staging_records = feldera.records("staging")
    check(
        summary.staging_records == summary.production_records == 15,
        f"staging has {summary.staging_records} records, production had {summary.production_records} at the "
        "checkpoint; both should be 15",
    )

    # 3. Hot standby: it pulls the primary's newest checkpoint; the primary moves on, then fails over.
    run(
        "feldera_standby_setup",
        standby="standby",
        primary_bucket=f"{bucket}/prod",
        standby_bucket=f"{bucket}/standby",
        bucket_conn_id="feldera_bucket",
    )
    check(feldera.status("standby")["deployment_status"] == "Standby", "the standby is not in Standby")
    feldera.ingest("prod", 15, 7)
    run("feldera_scheduled_dr", pipeline="prod")
    newest = catalog(s3, bucket, "prod")[-1]
    summary.primary_records = int(newest["processed_records"])
    out = run("feldera_rpo_monitor", pipeline="prod")
    age = re.search(rf"newest synced checkpoint of 'prod' is {newest['uuid']}, (\d+)s old: within", out)
    check(age is not None, "the RPO monitor did not report the newest synced checkpoint as fresh")
    summary.rpo_age_seconds = float(age[1]) if age else -1.0
    feldera.stop("prod")  # the primary goes down
    run("feldera_failover", standby="standby", primary="prod", initial="running")
    summary.standby_status = feldera.status("standby")["deployment_status"]
    summary.standby_records = feldera.records("standby")
    check(summary.standby_status == "Running", f"the standby is {summary.standby_status} after failover")
    check(
        summary.standby_records == summary.primary_records == 22,
        f"the activated standby has {summary.standby_records} records; the newest synced state had "
        f"{summary.primary_records}; both should be 22",
    )

    # 4. Cross-cloud replica: the primary's bucket copied to Azure; a DR drill restores a pipeline from that copy.
    replica_container(env)
    out = run("feldera_replicate_checkpoints", source=f"{bucket}/prod", replica="feldera-replica/prod")
    check(
        re.search(rf"wasb://feldera-replica/prod verified: \d+ checkpoint\(s\), newest {newest['uuid']}", out)
        is not None,
        "the replica was not verified holding the newest synced checkpoint",
    )
    run(
        "feldera_restore_from_azure",
        replica="feldera-replica/prod",
        staging_prefix=f"{bucket}/from-azure",
        pipeline="drill",
        bucket=f"{bucket}/drill",
        checkpoint=newest["uuid"],
    )
    summary.drill_records = feldera.records("drill")
    check(
        summary.drill_records == summary.primary_records,
        f"the drill pipeline restored from Azure has {summary.drill_records} records, the newest synced state "
        f"{summary.primary_records}",
    )

    # 5. The weekly restore drill: from the bucket and from the replica copied back, in scratch pipelines.
    out = run("feldera_restore_drill")
    # The logs hold every try; a retried drill (the task's retries are on) passes again, from the same place.
    passed = {where: (uuid, float(seconds)) for uuid, where, seconds in re.findall(DRILL_PASSED, out)}
    summary.drills = [(uuid, where, seconds) for where, (uuid, seconds) in sorted(passed.items())]
    expected = {f"{bucket}/prod", f"{bucket}/prod-replica-copy"}
    check(set(passed) == expected, f"drills should have passed from {sorted(expected)}; passed: {sorted(passed)}")
    left = [name for name in ("prod-drill", "prod-replica-drill") if feldera.http.get(f"/pipelines/{name}").is_success]
    check(not left, f"the drills left scratch pipelines behind: {left}")
    return summary


def main() -> int:
    started = time.monotonic()
    bucket = "feldera-dr"
    print("Starting moto's S3 server, Azurite and the Feldera sandbox on 127.0.0.1 ...", flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="feldera-demo-") as home,
        MotoS3Server() as s3,
        AzuriteServer(AZURITE) as azurite,
        FelderaSandbox(api_key=API_KEY) as sandbox,
    ):
        s3.create_bucket(bucket)
        env = airflow_env(home, sandbox.url, s3, azurite.connection_string)
        print("Preparing Airflow (sqlite in a temporary AIRFLOW_HOME) ...", flush=True)
        airflow(env, "db", "migrate")
        print("Running the example DAGs with `airflow dags test` ...", flush=True)
        try:
            summary = run_scenario(sandbox.url, s3, bucket, env)
        except DemoFailure as failure:
            print(f"\nDEMO FAILED: {failure}", file=sys.stderr)
            return 1
    print(f"\nFeldera checkpoint sync demo: every check passed in {time.monotonic() - started:.0f}s")
    for line in summary.lines(bucket):
        print(f"  {line}")
    print("Everything the demo started (sandbox, S3 server, Airflow home) has been stopped and removed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
