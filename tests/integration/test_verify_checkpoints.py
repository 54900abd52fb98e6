"""VerifyCheckpointsOperator against a sandbox pipeline's sync location in moto (S3) and its replicas in Azurite
(Azure Blob) and gcp-storage-emulator (GCS): a good location verifies and its retention forecast comes true; a
damaged one fails naming every problem; nothing it reads is changed."""

from __future__ import annotations

import json
import re
import time
import uuid as uuidlib
from typing import TYPE_CHECKING, Any

from airflow_support import run_dag, task_states
from stores_support import CATALOG, azure_container, azure_objects, gcs_objects, s3_objects
from support import sync_config

if TYPE_CHECKING:
    import pytest
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


def test_a_replica_copy_changed_after_it_was_made_is_found(stores: Feldera, azurite: AzuriteServer) -> None:
    feldera, container = stores, stores.container  # type: ignore[attr-defined]
    feldera.running_pipeline("prod")
    feldera.sync_now(records=6)
    copy = run_dag(
        "replicate", source=f"{feldera.bucket}/prod", destination_conn="azure_dr", destination=f"{container}/prod"
    )
    assert task_states(copy) == {"replicate": "success"}
    blobs = azure_container(azurite, container)
    name = next(b.name for b in blobs.list_blobs(name_starts_with="prod/w0-"))
    blob = blobs.get_blob_client(name)
    metadata = blob.get_blob_properties().metadata
    original = blob.download_blob().readall()
    # Same size, other bytes, the copy mark kept: only the content's checksum can tell.
    blob.upload_blob(bytes(b ^ 0xFF for b in original), overwrite=True, metadata=metadata)

    run = run_dag("verify_one", conn="azure_dr", location=f"{container}/prod")
    assert task_states(run) == {"verify": "failed"}
    report = mapped_xcoms(run, "verify")[-1]
    assert report["problems"] == [
        f"{name.removeprefix('prod/')}: its content's MD5 {_md5(bytes(b ^ 0xFF for b in original))} is not the "
        f"{_md5(original)} of the source it was copied from"
    ]


def _md5(body: bytes) -> str:
    import hashlib

    return hashlib.md5(body, usedforsecurity=False).hexdigest()
