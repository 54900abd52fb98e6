"""The DR flows again, against the sandbox's other version profile (Feldera 0.337: no ``running`` in the sync
status, a checkpoint's success and failure kept apart). The other test modules run on the default profile (0.369);
``FELDERA_SANDBOX_PROFILE=0.337`` runs the whole suite on this one."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from airflow_support import aws_connection, feldera_connection, run_dag, task_states, xcoms
from feldera_setup import Feldera

# The flows, collected here a second time with this module's `feldera` fixture.
from test_recovery_operators import (
    BUCKET_CONN,
    test_a_checkpoint_no_source_holds_is_refused_before_anything_is_written,
    test_a_retry_after_a_lost_worker_follows_the_start_it_requested,
    test_hot_standby_then_failover_with_the_newer_state,
    test_migration_restores_the_synced_state,
    test_restore_deferred,
)
from test_sync_operator import (
    API_KEY,
    requests_to,
    test_restart_mid_sync_starts_one_new_sync,
    test_retry_after_a_lost_worker_reattaches_to_the_running_sync,
    test_sync_lands_in_the_bucket_catalog,
)

from airflow_checkpoint_sync.testing import FelderaSandbox, MotoS3Server

if TYPE_CHECKING:
    from collections.abc import Iterator

PROFILE = "0.337"

__all__ = [
    "test_a_checkpoint_no_source_holds_is_refused_before_anything_is_written",
    "test_a_retry_after_a_lost_worker_follows_the_start_it_requested",
    "test_hot_standby_then_failover_with_the_newer_state",
    "test_migration_restores_the_synced_state",
    "test_restart_mid_sync_starts_one_new_sync",
    "test_restore_deferred",
    "test_retry_after_a_lost_worker_reattaches_to_the_running_sync",
    "test_sync_lands_in_the_bucket_catalog",
]
SYNC = "/v0/pipelines/prod/checkpoint/sync"


@pytest.fixture
def feldera(
    airflow_db: str, moto_s3: MotoS3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Feldera]:
    """A 0.337-profile sandbox with an API key behind ``feldera_default``, and the bucket connections."""
    with FelderaSandbox(api_key=API_KEY, profile=PROFILE) as sandbox:
        assert sandbox.engine.settings.sync_running_field is False
        monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(sandbox.url, API_KEY))
        monkeypatch.setenv(f"AIRFLOW_CONN_{BUCKET_CONN.upper()}", aws_connection(moto_s3))
        monkeypatch.setenv("AIRFLOW_CONN_AZURE_DR", json.dumps({"conn_type": "wasb", "login": "a", "password": "b"}))
        yield Feldera(sandbox, moto_s3, s3_bucket, API_KEY)


def test_a_lost_sync_answer_fails_the_try_and_its_retry_syncs(
    feldera: Feldera, capfd: pytest.CaptureFixture[str]
) -> None:
    # 0.337 cannot say whether a push of a checkpoint is under way: the try fails rather than re-send blindly (the
    # 0.369 line follows the push it finds in `running` instead), and the task's retry pushes a new checkpoint.
    feldera.running_pipeline("prod", records=2)
    # A short push: the lost one is over before the retry's push starts (on 0.337, a push that ends before an older
    # one would be hidden behind it: `success` names the push that ended last, and there is no `running`).
    feldera.sandbox.control.set_timings(sync_delay_s=0.05)
    feldera.sandbox.control.drop(SYNC, method="POST", after=True)
    run = run_dag("sync_with_retries", pipeline="prod")
    assert task_states(run) == {"sync": "success"}
    assert "this Feldera cannot say whether it started; not re-sending it blindly" in capfd.readouterr().out
    assert [r["fault"] for r in requests_to(feldera, "POST", SYNC)] == ["drop_after", None]
    assert xcoms(run)[("sync", "return_value")] in feldera.catalog("prod")
