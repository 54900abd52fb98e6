"""VerifyCheckpointsOperator against a sandbox pipeline's sync location in moto (S3) and its replicas in Azurite
(Azure Blob) and gcp-storage-emulator (GCS): a good location verifies and its retention forecast comes true; a
damaged one fails naming every problem; nothing it reads is changed."""

from __future__ import annotations

import json
import re
import time
import uuid as uuidlib
from typing import TYPE_CHECKING, Any

import pytest
from airflow_support import aws_connection, run_dag, task_states
from stores_support import CATALOG, azure_container, azure_objects, gcs_objects, s3_objects
from support import sync_config

if TYPE_CHECKING:
    from feldera_setup import Feldera

    from airflow_checkpoint_sync.testing import AzuriteServer


def mapped_xcoms(dag_run: Any, task_id: str) -> dict[int, Any]:
    """The return values of a mapped task, by map index."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == "return_value",
            )
        ).all()
        return {row.map_index: XComModel.deserialize_value(row) for row in rows}


def states(dag_run: Any) -> dict[tuple[str, int], str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {(ti.task_id, ti.map_index): str(ti.state) for ti in dag_run.get_task_instances(session=session)}


def uuid7_now() -> str:
    """A UUIDv7 of this moment, as Feldera makes checkpoint uuids."""
    value = (int(time.time() * 1000) << 80) | (0x7 << 76) | (0x8 << 60) | 0x123456789ABC
    return str(uuidlib.UUID(int=value))


def test_a_good_location_and_its_replicas_verify_and_the_retention_forecast_comes_true(
    stores: Feldera, azurite: AzuriteServer
) -> None:
    feldera, container = stores, stores.container  # type: ignore[attr-defined]
    # Retention keeps 3 and deletes at any age: the 4th push deletes the oldest, as the forecast must say.
    sync = sync_config(feldera.s3, feldera.bucket, "prod", retention_min_count=3, retention_min_age=0)
    feldera.running_pipeline("prod", sync=sync)
    uuids = [feldera.sync_now(records=5 * (i + 1)) for i in range(3)]
    source = s3_objects(feldera.s3, feldera.bucket, "prod")

    run = run_dag("verify_everywhere", bucket=feldera.bucket, container=container, pipeline="prod")
    assert states(run) == {
        ("to_azure", -1): "success",
        ("to_gcs", -1): "success",
        ("verify", 0): "success",
        ("verify", 1): "success",
        ("verify", 2): "success",
    }
    reports = mapped_xcoms(run, "verify")
    locations = [f"s3://{feldera.bucket}/prod", f"wasb://{container}/prod", f"gs://{container}/prod"]
    for index, location in enumerate(locations):
        report = reports[index]
        assert report["location"] == location
        assert report["ok"] is True and report["problems"] == []
        assert report["checkpoint_uuids"] == uuids and report["newest_checkpoint_uuid"] == uuids[-1]
        assert 0 <= report["newest_checkpoint_age_seconds"] < 600
        # One state file per table per checkpoint, each named by its manifest and found.
        assert report["files_checked"] == 3 * len(json.loads(source[f"dependencies/{uuids[0]}.json"])["batches"])
        assert report["retention"] == {"min_count": 3, "min_age_days": 0, "source": "pipeline 'prod'"}
        assert report["retention_deletes_next"] == [uuids[0]]
    expected_bytes = sum(len(body) for name, body in source.items() if name != "owner.json")
    assert reports[0]["bytes"] == expected_bytes + len(source["owner.json"])
    assert reports[1]["bytes"] == reports[2]["bytes"] == expected_bytes
    # The verification read only: the sync location is byte-for-byte what it was.
    assert s3_objects(feldera.s3, feldera.bucket, "prod") == source
    assert azure_objects(azurite, container, "prod") == gcs_objects(container, "prod")

    newest = feldera.sync_now(records=1)
    assert feldera.catalog("prod") == [*uuids[1:], newest]  # the forecast came true


def test_a_damaged_location_fails_naming_every_problem_and_is_left_as_it_was(
    stores: Feldera, capfd: pytest.CaptureFixture[str]
) -> None:
    feldera = stores
    feldera.running_pipeline("prod")
    first, second = feldera.sync_now(records=4), feldera.sync_now(records=4)
    client, bucket = feldera.s3.client(), feldera.bucket

    def batches(uuid: str) -> list[str]:
        manifest = client.get_object(Bucket=bucket, Key=f"prod/dependencies/{uuid}.json")["Body"].read()
        return list(json.loads(manifest)["batches"])

    missing, truncated = batches(first)[0], batches(second)[0]
    client.delete_object(Bucket=bucket, Key=f"prod/{missing}")
    body = client.get_object(Bucket=bucket, Key=f"prod/{truncated}")["Body"].read()
    client.put_object(Bucket=bucket, Key=f"prod/{truncated}", Body=body[: len(body) // 2])
    absent = uuid7_now()
    catalog = json.loads(client.get_object(Bucket=bucket, Key=f"prod/{CATALOG}")["Body"].read())
    catalog.append({**catalog[-1], "uuid": absent})
    client.put_object(Bucket=bucket, Key=f"prod/{CATALOG}", Body=json.dumps(catalog).encode())
    damaged = s3_objects(feldera.s3, bucket, "prod")
    feldera.sandbox.control.clear_requests()

    capfd.readouterr()
    run = run_dag("verify_one", conn="s3_dr", location=f"{bucket}/prod")
    out = capfd.readouterr().out
    assert task_states(run) == {"verify": "failed"}
    error = re.findall(r"AirflowFailException: (.*)", out)[-1]
    assert f"s3://{bucket}/prod failed verification, 3 problem(s)" in error
    assert f"checkpoint {first}: {missing} is missing" in error
    assert f"checkpoint {second}: {truncated} is {len(body) // 2} bytes, its manifest says {len(body)}" in error
    assert f"checkpoint {absent}: its manifest dependencies/{absent}.json is missing" in error
    report = mapped_xcoms(run, "verify")[-1]  # the report is the XCom even when the task fails
    assert report["ok"] is False and len(report["problems"]) == 3
    assert report["checkpoint_uuids"] == [first, second, absent]
    assert s3_objects(feldera.s3, bucket, "prod") == damaged  # nothing repaired, nothing deleted
    assert feldera.mutating_requests() == []


def replicated(dag_id: str = "replicate", **conf: str) -> dict[str, Any]:
    run = run_dag(dag_id, **conf)
    assert task_states(run) == {"replicate": "success"}
    report: dict[str, Any] = mapped_xcoms(run, "replicate")[-1]
    return report


def verified(conn: str, location: str) -> dict[str, Any]:
    """The verification report of ``location``, whether it passed or not."""
    run = run_dag("verify_one", conn=conn, location=location)
    report: dict[str, Any] = mapped_xcoms(run, "verify")[-1]
    assert task_states(run) == {"verify": "success" if report["ok"] else "failed"}
    return report


class Replica:
    """Reading and overwriting one object of a replica behind ``conn`` (moto or Azurite), as any tool would."""

    def __init__(self, feldera: Feldera, azurite: AzuriteServer, conn: str, where: str, prefix: str) -> None:
        self.feldera, self.azurite, self.conn, self.where, self.prefix = feldera, azurite, conn, where, prefix

    def names(self) -> list[str]:
        if self.conn == "azure_dr":
            return sorted(azure_objects(self.azurite, self.where, self.prefix))
        return sorted(s3_objects(self.feldera.s3, self.where, self.prefix))

    def read(self, name: str) -> tuple[bytes, dict[str, str]]:
        key = f"{self.prefix}/{name}"
        if self.conn == "azure_dr":
            blob = azure_container(self.azurite, self.where).get_blob_client(key)
            return blob.download_blob().readall(), dict(blob.get_blob_properties().metadata)
        response = self.feldera.s3.client().get_object(Bucket=self.where, Key=key)
        return response["Body"].read(), dict(response["Metadata"])

    def overwrite(self, name: str, body: bytes, metadata: dict[str, str]) -> None:
        """An ordinary upload: ``metadata`` (the copy mark kept) or none (dropped)."""
        key = f"{self.prefix}/{name}"
        if self.conn == "azure_dr":
            blob = azure_container(self.azurite, self.where).get_blob_client(key)
            blob.upload_blob(body, overwrite=True, metadata=metadata or None)
        else:
            self.feldera.s3.client().put_object(Bucket=self.where, Key=key, Body=body, Metadata=metadata)


@pytest.mark.parametrize("destination_conn", ["s3_other", "azure_dr"])
@pytest.mark.parametrize("mark", ["kept", "dropped"])
def test_a_copy_changed_after_it_was_made_is_named_and_one_rerun_repairs_it(
    stores: Feldera, azurite: AzuriteServer, destination_conn: str, mark: str
) -> None:
    feldera = stores
    feldera.running_pipeline("prod")
    feldera.sync_now(records=6)
    # S3 to S3 through another connection (streamed, not server-side), or to Azure Blob.
    where = feldera.bucket if destination_conn == "s3_other" else feldera.container  # type: ignore[attr-defined]
    conf = {"source": f"{feldera.bucket}/prod", "destination_conn": destination_conn, "destination": f"{where}/dr"}
    first = replicated(**conf)
    good = verified(destination_conn, f"{where}/dr")
    assert good["ok"] and good["judged_by_size_only"] == 0  # every copy judged by its content
    replica = Replica(feldera, azurite, destination_conn, where, "dr")
    name = next(n for n in replica.names() if n.startswith("w0-"))
    original, metadata = replica.read(name)
    damaged = bytes(b ^ 0xFF for b in original)
    # Same size, other bytes: the copy mark kept, or dropped by an ordinary upload.
    replica.overwrite(name, damaged, metadata if mark == "kept" else {})

    report = verified(destination_conn, f"{where}/dr")
    if mark == "kept":
        assert report["problems"] == [
            f"{name}: its content's MD5 {_md5(damaged)} is not the {_md5(original)} its replication wrote (it changed "
            "after it was copied): run the replication again to copy it anew"
        ]
    else:
        assert report["problems"] == [
            f"{name}: it carries no copy mark in a replica, so it was not written by a replication (it was written "
            "over after the copy, or put there by something else): run the replication again with repair=True to "
            "copy it anew"
        ]
    again = replicated(**conf)  # the plain rerun: the damaged copy is seen and copied anew, nothing else
    assert (again["copied"], again["skipped"], again["catalog_written"]) == (1, first["copied"] - 1, False)
    assert replica.read(name)[0] == original
    assert verified(destination_conn, f"{where}/dr")["problems"] == []


def test_an_unmarked_copy_of_the_right_content_is_named_and_repair_rewrites_it(
    stores: Feldera, azurite: AzuriteServer
) -> None:
    feldera = stores
    feldera.running_pipeline("prod")
    feldera.sync_now(records=6)
    conf = {"source": f"{feldera.bucket}/prod", "destination_conn": "s3_other", "destination": f"{feldera.bucket}/dr"}
    replicated(**conf)
    replica = Replica(feldera, azurite, "s3_other", feldera.bucket, "dr")
    name = next(n for n in replica.names() if n.startswith("w0-"))
    original, _ = replica.read(name)
    replica.overwrite(name, original, {})  # the same bytes, without the copy mark
    problems = verified("s3_other", f"{feldera.bucket}/dr")["problems"]
    assert len(problems) == 1 and problems[0].startswith(f"{name}: it carries no copy mark in a replica")
    # A plain rerun cannot see it (its listing shows the source's content): the named remedy can.
    assert replicated(**conf)["copied"] == 0
    assert verified("s3_other", f"{feldera.bucket}/dr")["problems"] == problems
    repaired = replicated("replicate_repairing", **conf)
    assert (repaired["copied"], repaired["catalog_written"]) == (1, False)
    assert verified("s3_other", f"{feldera.bucket}/dr")["ok"]


def _md5(body: bytes) -> str:
    import hashlib

    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def tries(dag_run: Any) -> dict[str, tuple[str, int]]:
    """(state, try number) of each task of a run."""
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: (str(ti.state), ti.try_number) for ti in dag_run.get_task_instances(session=session)}


def test_a_store_error_no_retry_changes_fails_at_once_and_a_passing_one_is_retried(
    stores: Feldera, azurite: AzuriteServer, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from airflow_checkpoint_sync.testing.server import free_port

    down = {
        "conn_type": "aws",
        "login": "k",
        "password": "s",
        "extra": {"endpoint_url": f"http://127.0.0.1:{free_port()}"},
    }
    wrong_key = re.sub(r"AccountKey=[^;]+", "AccountKey=" + "A" * 86 + "==", azurite.connection_string)
    connections = {
        "s3_bad_secret": aws_connection(stores.s3, password="not-the-secret"),
        "s3_bad_key": aws_connection(stores.s3, login="not-a-key"),
        "s3_down": json.dumps(down),
        "azure_bad_key": json.dumps({"conn_type": "wasb", "extra": {"connection_string": wrong_key}}),
    }
    for conn_id, value in connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)
    bucket, container = stores.bucket, stores.container  # type: ignore[attr-defined]
    final = [
        ("s3_dr", "no-such-bucket/prod", "NoSuchBucket", "the bucket does not exist"),
        ("s3_bad_secret", f"{bucket}/prod", "SignatureDoesNotMatch", "the secret key is refused"),
        ("s3_bad_key", f"{bucket}/prod", "InvalidAccessKeyId", "the access key is unknown"),
        ("azure_dr", "no-such-container/prod", "ResourceNotFoundError", "the container does not exist"),
        ("azure_bad_key", f"{container}/prod", "HttpResponseError", "access is denied"),
        ("gcs_dr", "no-such-bucket/prod", "NotFound", "the bucket does not exist"),
    ]
    capfd.readouterr()
    for conn, location, error, cause in final:
        run = run_dag("verify_retried", conn=conn, location=location)
        assert tries(run) == {"verify": ("failed", 1)}, (conn, location)  # no retry
        out = capfd.readouterr().out
        message = re.findall(r"AirflowFailException: (.*)", out)[-1]
        scheme = {"azure": "wasb", "gcs": "gs"}.get(conn.split("_")[0], "s3")
        assert message.startswith(f"listing the location ({scheme}://{location}) failed: "), message
        assert error in message, message
        assert f"{cause}, which a retry does not change: check the connection '{conn}'" in out, out[-3000:]
    # A store that does not answer may answer later: retried.
    run = run_dag("verify_retried", conn="s3_down", location=f"{bucket}/prod")
    assert tries(run) == {"verify": ("failed", 2)}
    out = capfd.readouterr().out
    assert f"listing the location (s3://{bucket}/prod) failed: EndpointConnectionError" in out
    assert "which a retry does not change" not in out
