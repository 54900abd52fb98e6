"""Least privilege against a Feldera with RBAC: a Read-role API key reads everything a sensor, a verification or a
readiness report needs; every task that changes a pipeline fails on its first change, changing nothing, and says
which role it needs; ``test_connection`` tells a read-only key apart."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from airflow_support import aws_connection, feldera_connection, run_dag, task_states
from feldera_setup import Feldera
from support import sync_config

from airflow_checkpoint_sync.hooks.feldera import FelderaHook
from airflow_checkpoint_sync.testing import FelderaSandbox, MotoS3Server

if TYPE_CHECKING:
    from collections.abc import Iterator

WRITE_KEY = "apikey:" + "w" * 48
READ_KEY = "apikey:" + "r" * 48


@pytest.fixture
def feldera(
    airflow_db: str, moto_s3: MotoS3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Feldera]:
    """'prod' running with a synced checkpoint, 'standby' following it, 'spare' stopped: set up with the Write key;
    the tasks get the Read key."""
    with FelderaSandbox(api_key=WRITE_KEY, read_api_keys=(READ_KEY,)) as sandbox:
        feldera = Feldera(sandbox, moto_s3, s3_bucket, WRITE_KEY)
        feldera.running_pipeline("prod")
        feldera.uuid = feldera.sync_now("prod", records=4)  # type: ignore[attr-defined]
        standby = sync_config(
            moto_s3, s3_bucket, "standby", read_bucket=f"{s3_bucket}/prod", start_from_checkpoint="latest"
        )
        feldera.create("standby", standby)
        feldera.start("standby", "standby")
        feldera.create("spare", sync=None)
        monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(sandbox.url, READ_KEY))
        monkeypatch.setenv("AIRFLOW_CONN_S3_DR", aws_connection(moto_s3))
        sandbox.control.clear_requests()
        yield feldera


def states(feldera: Feldera) -> dict[str, tuple[str, object]]:
    return {
        name: (feldera.pipeline(name)["deployment_status"], feldera.pipeline(name, "all")["runtime_config"])
        for name in ("prod", "standby", "spare")
    }


def test_a_read_key_reads_everything_the_checks_need(feldera: Feldera) -> None:
    run = run_dag("read_only_reads", bucket=feldera.bucket, uuid=feldera.uuid)  # type: ignore[attr-defined]
    assert task_states(run) == {
        "status": "success",
        "freshness": "success",
        "verify": "success",
        "readiness": "success",
    }
    assert feldera.sandbox.control.mutating_requests() == []


def test_every_task_that_changes_a_pipeline_fails_with_a_read_key_changing_nothing(
    feldera: Feldera, capfd: pytest.CaptureFixture[str]
) -> None:
    before = states(feldera)
    capfd.readouterr()
    run = run_dag("read_only_writes", bucket=feldera.bucket)
    out = capfd.readouterr().out
    tasks = ("sync", "configure", "restore", "activate", "drill")
    assert task_states(run) == dict.fromkeys(tasks, "failed")
    # Each refused on its first change, naming the role it has and the one it needs.
    refused = [r for r in feldera.sandbox.control.mutating_requests() if r["status"] == 403]
    assert feldera.sandbox.control.mutating_requests() == refused
    assert len(refused) == len(tasks)  # one refused change each: configure and restore both PATCH 'spare' first
    assert out.count("it has Feldera's Read role, and this needs the Write role") >= len(tasks)
    assert states(feldera) == before
    assert READ_KEY not in out and WRITE_KEY not in out


def test_test_connection_tells_a_read_only_key(feldera: Feldera, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = FelderaHook().test_connection()
    assert ok, message
    assert "the API key is read-only (Feldera's Read role)" in message
    assert "need a key with the Write role" in message
    assert feldera.sandbox.control.mutating_requests()[0]["status"] == 403  # the probe: refused, nothing changed
    monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(feldera.sandbox.url, WRITE_KEY))
    ok, message = FelderaHook().test_connection()
    assert ok and message.endswith("the API key may change pipelines (Write role)")
    assert all(r["status"] >= 400 for r in feldera.sandbox.control.mutating_requests())
