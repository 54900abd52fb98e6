"""ReplicateCheckpointsOperator against moto (S3), Azurite (Azure Blob) and gcp-storage-emulator (GCS)."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
from airflow_support import aws_connection, run_dag, task_states, xcoms
from stores_support import CATALOG, azure_objects, gcs_objects, s3_objects
from support import wait_until

from airflow_checkpoint_sync.object_stores import endpoint_addresses

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
            assert f"destination={destination!r} overlaps source='{stores.bucket}/nest' in one store: {overlap}" in out
            assert (
                f"The source's connection 's3_dr' reaches {stores.s3.url}, the destination's '{conn}' reaches "
                f"{stores.s3.url}: both are http:loopback:{stores.s3.url.rsplit(':', 1)[1]}"
            ) in out
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


def spelled(server: Any, host: str, config: dict[str, Any] | None = None) -> str:
    """An ``aws`` connection to the moto server ``server`` through ``host`` (and botocore ``config``)."""
    port = server.url.rsplit(":", 1)[1]
    extra: dict[str, Any] = {"endpoint_url": f"http://{host}:{port}", "region_name": "us-east-1"}
    if config:
        extra["config_kwargs"] = config
    return aws_connection(server, extra=extra)


def test_another_spelling_of_the_source_endpoint_is_refused_before_any_write(
    stores: Feldera, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    bucket = stores.bucket
    spellings = {
        "s3_localhost": spelled(stores.s3, "localhost"),
        "s3_virtual": spelled(stores.s3, "localhost", {"s3": {"addressing_style": "virtual"}}),
        "s3_vhost": spelled(stores.s3, f"{bucket}.localhost"),  # the virtual-host style spelled in the URL
        "s3_other_loopback": spelled(stores.s3, "127.0.0.2"),
    }
    hostname = socket.gethostname()
    if endpoint_addresses(f"http://{hostname}:80") == {"loopback:80"}:
        spellings["s3_hostname"] = spelled(stores.s3, hostname)  # one server under another name: by its address
    for conn_id, value in spellings.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)
    write_source(stores, "live", {"data/0.bin": b"x" * 100})
    before = s3_objects(stores.s3, bucket, "live")
    capfd.readouterr()
    for conn_id in spellings:
        for destination in (f"{bucket}/live/replica", f"{bucket}/live"):
            run = run_dag("replicate", source=f"{bucket}/live", destination_conn=conn_id, destination=destination)
            assert task_states(run) == {"replicate": "failed"}
            out = capfd.readouterr().out
            assert f"destination={destination!r} overlaps source='{bucket}/live' in one store" in out, conn_id
            # Both spellings, as the connections spell them, and what to do.
            assert f"The source's connection 's3_dr' reaches {stores.s3.url}, the destination's '{conn_id}'" in out
            assert "Nothing was written: replicate to a location outside the source" in out
    assert s3_objects(stores.s3, bucket, "live") == before  # not one object written, not one replaced
    # Beside the source, through another spelling: a replica like any other.
    report = replicate(source=f"{bucket}/live", destination_conn="s3_localhost", destination=f"{bucket}/beside")
    assert report["copied"] == 1 and report["catalog_written"]


def test_an_endpoint_whose_identity_cannot_be_told_is_refused_unless_declared_another_store(
    stores: Feldera, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_S3_NOWHERE", spelled(stores.s3, "no-such-store.invalid"))
    write_source(stores, "live", {"data/0.bin": b"x" * 100})
    before = s3_objects(stores.s3, stores.bucket, "live")
    capfd.readouterr()
    conf = {"source": f"{stores.bucket}/live", "destination_conn": "s3_nowhere", "destination": f"{stores.bucket}/live"}
    run = run_dag("replicate", **conf)
    assert task_states(run) == {"replicate": "failed"}
    out = capfd.readouterr().out
    port = stores.s3.url.rsplit(":", 1)[1]
    assert f"whether they are one store cannot be told: http://no-such-store.invalid:{port} does not resolve" in out
    assert "if the two endpoints really are different stores, pass destination_is_another_store=True" in out
    # Declared another store, the replication goes on to that store (which here cannot be reached).
    run = run_dag("replicate_to_another_store", **conf)
    assert task_states(run) == {"replicate": "failed"}
    out = capfd.readouterr().out
    assert "overlaps" not in out
    assert f"(s3://{stores.bucket}/live) failed: EndpointConnectionError" in out
    assert s3_objects(stores.s3, stores.bucket, "live") == before


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
    # A refused key is final (not retried), and says so.
    monkeypatch.setenv("AIRFLOW_CONN_S3_BAD_SECRET", aws_connection(stores.s3, password="not-the-secret"))
    run = run_dag(
        "replicate", source=f"{stores.bucket}/sided", destination_conn="s3_bad_secret", destination=f"{stores.bucket}/x"
    )
    assert task_states(run) == {"replicate": "failed"}
    out = capfd.readouterr().out
    assert re.search(
        rf"AirflowFailException: listing the destination \(s3://{stores.bucket}/x\) failed: ClientError: .*"
        r"SignatureDoesNotMatch.* -- the secret key is refused, which a retry does not change: check the connection "
        "'s3_bad_secret'",
        out,
    ), out[-3000:]


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


@pytest.mark.parametrize("destination_conn", ["s3_other", "azure_dr", "gcs_dr"])
def test_a_streamed_copy_of_a_multipart_source_records_the_md5_it_wrote(stores: Feldera, destination_conn: str) -> None:
    import hashlib

    from airflow_checkpoint_sync.object_stores import STORE_TYPES, store_for
    from airflow_checkpoint_sync.object_stores.base import SINGLE_REQUEST_MAX
    from airflow_checkpoint_sync.operators.replicate import _copy
    from airflow_checkpoint_sync.rules.replication import up_to_date

    client, bucket = stores.s3.client(), stores.bucket
    data = random.Random(2).randbytes(SINGLE_REQUEST_MAX + 1024)
    upload = client.create_multipart_upload(Bucket=bucket, Key="big/data/a.bin")
    parts = []
    for number, start in enumerate((0, 8 * 2**20), start=1):
        chunk = data[start : start + 8 * 2**20] if number == 1 else data[start:]
        etag = client.upload_part(
            Bucket=bucket, Key="big/data/a.bin", UploadId=upload["UploadId"], PartNumber=number, Body=chunk
        )["ETag"]
        parts.append({"ETag": etag, "PartNumber": number})
    client.complete_multipart_upload(
        Bucket=bucket, Key="big/data/a.bin", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    source = store_for("s3_dr", f"{bucket}/big", "source_conn_id", STORE_TYPES)
    (listed,) = source.list()
    assert listed.md5 is None  # a multipart ETag: the source does not know its content's MD5
    container = bucket if destination_conn == "s3_other" else stores.container  # type: ignore[attr-defined]
    destination = store_for(destination_conn, f"{container}/big-copy", "destination_conn_id", STORE_TYPES)
    assert _copy(source, destination, listed) == len(data)
    (copy,) = destination.with_copy_marks(destination.list())
    assert copy.copied_from == listed.fingerprint
    # Known once streamed, recorded where metadata can change without a rewrite; on S3 the copy is a multipart
    # upload too, whose content the store has no MD5 of: judged by presence and size.
    expected = None if destination_conn == "s3_other" else hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert copy.copied_md5 == expected
    assert up_to_date(listed, copy)
