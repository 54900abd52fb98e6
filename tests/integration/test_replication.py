"""ReplicateCheckpointsOperator against moto (S3), Azurite (Azure Blob) and gcp-storage-emulator (GCS)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
from airflow_support import run_dag, task_states, xcoms
from stores_support import CATALOG, azure_objects, gcs_objects, s3_objects
from support import wait_until

if TYPE_CHECKING:
    from feldera_setup import Feldera

    from airflow_checkpoint_sync.testing import AzuriteServer


def replicate(dag_id: str = "replicate", **conf: str) -> dict[str, Any]:
    run = run_dag(dag_id, **conf)
    assert task_states(run) == {"replicate": "success"}
    report: dict[str, Any] = xcoms(run)[("replicate", "return_value")]
    return report


def test_s3_to_azure_and_back_then_restore(stores: Feldera, azurite: AzuriteServer) -> None:
    feldera, container = stores, stores.container  # type: ignore[attr-defined]
    feldera.running_pipeline("prod")
    uuid = feldera.sync_now(records=12)
    source = s3_objects(feldera.s3, feldera.bucket, "prod")

    report = replicate(source=f"{feldera.bucket}/prod", destination_conn="azure_dr", destination=f"{container}/prod")
    assert report["newest_checkpoint_uuid"] == uuid and report["catalog_written"]
    assert report["copied"] == len(source) - 2  # all but owner.json and the catalog, which is written apart
    assert report["bytes_copied"] == sum(len(v) for k, v in source.items() if k not in (CATALOG, "owner.json"))
    replica = azure_objects(azurite, container, "prod")
    assert replica == {k: v for k, v in source.items() if k != "owner.json"}

    # Back from Azure to an S3-compatible prefix, then a pipeline restores from it as its read_bucket.
    back = replicate(
        source_conn="azure_dr",
        source=f"{container}/prod",
        destination_conn="s3_dr",
        destination=f"{feldera.bucket}/restored",
    )
    assert back["newest_checkpoint_uuid"] == uuid
    assert s3_objects(feldera.s3, feldera.bucket, "restored") == replica
    feldera.create("staging", sync=None)
    run = run_dag(
        "restore_running",
        pipeline="staging",
        checkpoint=uuid,
        bucket=f"{feldera.bucket}/staging",
        read_bucket=f"{feldera.bucket}/restored",
        bucket_conn="s3_dr",
    )
    assert task_states(run) == {"restore": "success"}
    assert feldera.processed("staging") == 12


def test_s3_to_gcs_then_only_what_changed(stores: Feldera) -> None:
    feldera, container = stores, stores.container  # type: ignore[attr-defined]
    feldera.running_pipeline("prod")
    feldera.sync_now(records=5)
    conf = {"source": f"{feldera.bucket}/prod", "destination_conn": "gcs_dr", "destination": f"{container}/prod"}
    first = replicate(**conf)
    source = s3_objects(feldera.s3, feldera.bucket, "prod")
    assert gcs_objects(container, "prod") == {k: v for k, v in source.items() if k != "owner.json"}
    assert first["copied"] > 0 and first["skipped"] == 0

    again = replicate(**conf)
    assert (again["copied"], again["bytes_copied"], again["catalog_written"]) == (0, 0, False)
    assert again["skipped"] == first["copied"]

    newer = feldera.sync_now(records=3)
    after = s3_objects(feldera.s3, feldera.bucket, "prod")
    new_objects = {k for k in after if k not in source} | {k for k in after if k in source and after[k] != source[k]}
    third = replicate(**conf)
    assert third["newest_checkpoint_uuid"] == newer
    assert third["copied"] == len(new_objects - {CATALOG, "owner.json"})
    assert gcs_objects(container, "prod") == {k: v for k, v in after.items() if k != "owner.json"}

    # GCS as a source: back to an S3 prefix, byte for byte.
    back = replicate(
        source_conn="gcs_dr", source=f"{container}/prod", destination_conn="s3_dr", destination=f"{feldera.bucket}/gs"
    )
    assert back["newest_checkpoint_uuid"] == newer and back["catalog_written"]
    assert s3_objects(feldera.s3, feldera.bucket, "gs") == gcs_objects(container, "prod")


def test_objects_gone_from_the_source_are_kept_unless_asked(stores: Feldera, azurite: AzuriteServer) -> None:
    feldera, container = stores, stores.container  # type: ignore[attr-defined]
    conf = {"source": "", "destination_conn": "azure_dr", "destination": f"{container}/synthetic"}
    write_source(feldera, "synthetic", {"a.bin": b"a" * 10, "b.bin": b"b" * 20})
    conf["source"] = f"{feldera.bucket}/synthetic"
    replicate(**conf)
    feldera.s3.client().delete_object(Bucket=feldera.bucket, Key="synthetic/a.bin")
    write_source(feldera, "synthetic", {"c.bin": b"c" * 5})
    kept = replicate(**conf)
    assert kept["deleted"] == 0 and "a.bin" in azure_objects(azurite, container, "synthetic")
    pruned = replicate("replicate_pruning", **conf)
    assert pruned["deleted"] == 1
    assert set(azure_objects(azurite, container, "synthetic")) == {"b.bin", "c.bin", CATALOG}


def test_one_s3_endpoint_through_one_connection_copies_server_side(stores: Feldera) -> None:
    feldera = stores
    write_source(feldera, "same", {f"data/{i}.bin": bytes([i]) * 1000 for i in range(5)})
    feldera.s3.start_recording()
    report = replicate(source=f"{feldera.bucket}/same", destination_conn="s3_dr", destination=f"{feldera.bucket}/copy")
    reads = [path for method, path in feldera.s3.recorded_requests() if method == "GET" and "/same/data/" in path]
    assert reads == []  # no object body went through the worker
    assert report["copied"] == 5 and report["bytes_copied"] == 5000
    copy = s3_objects(feldera.s3, feldera.bucket, "copy")
    assert copy == s3_objects(feldera.s3, feldera.bucket, "same")
    # Another connection to the same server is streamed instead: the source's bodies are read.
    feldera.s3.start_recording()
    replicate(source=f"{feldera.bucket}/same", destination_conn="s3_other", destination=f"{feldera.bucket}/streamed")
    recorded = feldera.s3.recorded_requests()
    assert len([path for method, path in recorded if method == "GET" and "/same/data/" in path]) == 5
    assert [path for method, path in recorded if method == "HEAD" and "/same/" in path] == []  # the source is listed


def test_bad_locations_and_connections_are_refused(stores: Feldera, capfd: pytest.CaptureFixture[str]) -> None:
    cases = {
        ("s3_dr", "s3://b/p"): "source='s3://b/p' is not valid: 'bucket-name[/prefix]'",
        ("feldera_default", "b/p"): "source_conn_id 'feldera_default' has type 'feldera'; expected one of aws",
    }
    for (conn, source), message in cases.items():
        run = run_dag("replicate", source_conn=conn, source=source, destination=f"{stores.bucket}/x")
        assert task_states(run) == {"replicate": "failed"}
        assert message in capfd.readouterr().out
    write_source(stores, "nest", {"data/0.bin": b"x" * 100})
    before = s3_objects(stores.s3, stores.bucket, "nest")
    overlapping = {
        "nest": "they are the same location",
        "nest/replica": "the destination lies inside the source",
        "": "the source lies inside the destination",
    }
    # Two connection ids that reach the same endpoint are one store: the second id does not get past the check.
    for conn in ("s3_dr", "s3_other"):
        for prefix, overlap in overlapping.items():
            destination = f"{stores.bucket}/{prefix}".rstrip("/")
            run = run_dag("replicate", source=f"{stores.bucket}/nest", destination_conn=conn, destination=destination)
            assert task_states(run) == {"replicate": "failed"}
            out = capfd.readouterr().out
            assert f"destination={destination!r} overlaps source='{stores.bucket}/nest' in one store" in out
            assert f"through connections 's3_dr' and '{conn}'): {overlap}" in out
    assert s3_objects(stores.s3, stores.bucket, "nest") == before  # refused before anything was written
    run = run_dag(
        "replicate", source=f"{stores.bucket}/empty", destination_conn="s3_dr", destination=f"{stores.bucket}/x"
    )
    assert task_states(run) == {"replicate": "failed"}
    assert "holds no checkpoints.feldera: nothing has been synced there" in capfd.readouterr().out
    client = stores.s3.client()
    for key in ("host0/checkpoints.feldera", "host0/a.zip", "host1/checkpoints.feldera", "host1/b.zip"):
        client.put_object(Bucket=stores.bucket, Key=f"multi/{key}", Body=b"{}")
    run = run_dag(
        "replicate", source=f"{stores.bucket}/multi", destination_conn="s3_dr", destination=f"{stores.bucket}/y"
    )
    assert task_states(run) == {"replicate": "failed"}
    assert "has the multihost layout (a checkpoints.feldera in each of host0, host1, none at the root)" in (
        capfd.readouterr().out
    )
    assert stores.s3.keys(stores.bucket, "y/") == []


def test_store_errors_say_which_side_and_which_step(
    stores: Feldera, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from airflow_checkpoint_sync.testing.server import free_port

    down = {
        "conn_type": "aws",
        "login": "k",
        "password": "s",
        "extra": {"endpoint_url": f"http://127.0.0.1:{free_port()}"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_S3_DOWN", json.dumps(down))
    write_source(stores, "sided", {"data/0.bin": b"x" * 10})
    run = run_dag("replicate", source_conn="s3_down", source=f"{stores.bucket}/sided", destination=f"{stores.bucket}/x")
    assert task_states(run) == {"replicate": "failed"}
    assert f"of the source (s3://{stores.bucket}/sided) failed: EndpointConnectionError" in capfd.readouterr().out
    run = run_dag(
        "replicate",
        source=f"{stores.bucket}/sided",
        destination_conn="s3_down",
        destination=f"{stores.bucket}/x",
    )
    assert task_states(run) == {"replicate": "failed"}
    assert f"listing the destination (s3://{stores.bucket}/x) failed: EndpointConnectionError" in capfd.readouterr().out


def done(process: subprocess.Popen[bytes]) -> bool:
    return process.poll() is not None


def write_source(feldera: Feldera, prefix: str, objects: dict[str, bytes]) -> None:
    """Objects, then a catalog naming them (written last, as Feldera does)."""
    client = feldera.s3.client()
    for name, body in objects.items():
        client.put_object(Bucket=feldera.bucket, Key=f"{prefix}/{name}", Body=body)
    names = sorted(k.split("/", 1)[1] for k in feldera.s3.keys(feldera.bucket, f"{prefix}/"))
    catalog = json.dumps({"checkpoints": [], "objects": [n for n in names if n != CATALOG]})
    client.put_object(Bucket=feldera.bucket, Key=f"{prefix}/{CATALOG}", Body=catalog.encode())


KILL_SCRIPT = """
import json, sys
from airflow_checkpoint_sync.object_stores import store_for, STORE_TYPES
from airflow_checkpoint_sync.operators.replicate import replicate
source = store_for("s3_dr", sys.argv[1], "source_conn_id", STORE_TYPES)
destination = store_for("s3_other", sys.argv[2], "destination_conn_id", STORE_TYPES)
print("STARTED", flush=True)
print(json.dumps(replicate(source, destination, delete_removed=False, workers=2)), flush=True)
"""


@pytest.mark.parametrize("seed", range(4))
def test_a_replication_killed_at_any_point_leaves_no_catalog_naming_missing_data(stores: Feldera, seed: int) -> None:
    rng = random.Random(seed)
    feldera = stores
    prefix, replica = f"kill{seed}", f"kill{seed}-replica"
    objects = {f"data/{i:03}.bin": rng.randbytes(rng.randint(20_000, 200_000)) for i in range(30)}
    write_source(feldera, prefix, objects)
    source = s3_objects(feldera.s3, feldera.bucket, prefix)
    env = {**os.environ}
    for attempt in range(2):
        process = subprocess.Popen(
            [sys.executable, "-c", KILL_SCRIPT, f"{feldera.bucket}/{prefix}", f"{feldera.bucket}/{replica}"],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"STARTED"
        # Killed once the replica holds a seeded number of objects: mid-copy, or around the catalog's write.
        target = rng.randint(1, len(objects) + 1)
        wait_until(
            lambda: len(feldera.s3.keys(feldera.bucket, f"{replica}/")),
            lambda n, target=target, process=process: n >= target or done(process),
        )
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        copy = s3_objects(feldera.s3, feldera.bucket, replica)
        if CATALOG in copy:  # whatever the catalog could name is there, complete
            assert all(copy.get(name) == body for name, body in source.items() if name != "owner.json")
        else:
            assert all(copy[name] == source[name] for name in copy), f"a partial object after kill {attempt}"
    missing = [n for n in source if n != CATALOG and n not in s3_objects(feldera.s3, feldera.bucket, replica)]
    result = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, f"{feldera.bucket}/{prefix}", f"{feldera.bucket}/{replica}"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["copied"] == len(missing)
    assert s3_objects(feldera.s3, feldera.bucket, replica) == source


@pytest.mark.parametrize("destination_conn", ["s3_other", "azure_dr"])
@pytest.mark.parametrize("change", ["same size, other bytes", "one byte more"])
def test_a_source_object_that_changes_after_the_listing_is_never_copied(
    stores: Feldera, destination_conn: str, change: str
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_checkpoint_sync.object_stores import STORE_TYPES, store_for
    from airflow_checkpoint_sync.operators.replicate import _copy

    client, bucket = stores.s3.client(), stores.bucket
    original = random.Random(1).randbytes(64 * 1024)
    client.put_object(Bucket=bucket, Key="moving/data/a.bin", Body=original)
    source = store_for("s3_dr", f"{bucket}/moving", "source_conn_id", STORE_TYPES)
    container = bucket if destination_conn == "s3_other" else stores.container  # type: ignore[attr-defined]
    destination = store_for(destination_conn, f"{container}/copy", "destination_conn_id", STORE_TYPES)
    (listed,) = source.list()
    assert listed.md5  # what the store vouches the content is

    # Between the listing and the copy, the object is rewritten.
    changed = original[::-1] if change == "same size, other bytes" else original + b"!"
    client.put_object(Bucket=bucket, Key="moving/data/a.bin", Body=changed)
    with pytest.raises(AirflowFailException, match=r"moving/data/a\.bin changed or was damaged while copied"):
        _copy(source, destination, listed)
    assert destination.list() == []  # refused by the store (its MD5 is the listed one's), or removed

    # As listed, it is copied and reads back the same.
    client.put_object(Bucket=bucket, Key="moving/data/a.bin", Body=original)
    assert _copy(source, destination, listed) == len(original)
    assert b"".join(destination.chunks("data/a.bin")) == original
