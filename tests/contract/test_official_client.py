"""The official ``feldera`` client (not our code) against the sandbox and a real S3 server.

If the sandbox misread Feldera's API, the client, written by Feldera against the real server, would fail here.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from feldera import FelderaClient, Pipeline, PipelineBuilder
from feldera.enums import CheckpointStatus, PipelineStatus
from feldera.rest.errors import FelderaAPIError
from feldera.rest.retry import RetryConfig
from feldera.runtime_config import RuntimeConfig, Storage
from openapi_contract import API_KEY, assert_conforms, checked_sandbox
from support import PROGRAM, file_storage, sync_config, wait_until

if TYPE_CHECKING:
    from airflow_checkpoint_sync.testing import FelderaSandbox, MotoS3Server

pytestmark = pytest.mark.contract


@pytest.fixture
def client(sandbox: FelderaSandbox) -> FelderaClient:
    return FelderaClient(url=sandbox.url, api_key=API_KEY, timeout=30)


def build(client: FelderaClient, name: str, sync: dict[str, Any] | None) -> Pipeline:
    runtime_config = RuntimeConfig(storage=Storage(config=file_storage(sync)))
    return PipelineBuilder(client, name, PROGRAM, runtime_config=runtime_config).create_or_replace()


def push_orders(pipeline: Pipeline, first: int, count: int) -> None:
    pipeline.input_json("orders", [{"id": i, "amount": i * 1.5} for i in range(first, first + count)])


def processed(pipeline: Pipeline) -> int:
    return int(pipeline.stats().global_metrics.total_processed_records)


def test_sync_then_restore_in_a_second_pipeline(
    client: FelderaClient, sandbox: FelderaSandbox, moto_s3: MotoS3Server, s3_bucket: str
) -> None:
    prod = build(client, "prod", sync_config(moto_s3, s3_bucket, "prod"))
    assert prod.status() == PipelineStatus.STOPPED
    prod.start()
    assert prod.status() == PipelineStatus.RUNNING
    push_orders(prod, 0, 25)
    assert processed(prod) == 25

    seq = prod.checkpoint(wait=True, timeout_s=20)
    assert prod.checkpoint_status(seq) == CheckpointStatus.Success

    moto_s3.start_recording()
    uuid = prod.sync_checkpoint(wait=True, timeout_s=30)
    assert prod.sync_checkpoint_status(uuid) == CheckpointStatus.Success
    assert str(prod.last_successful_checkpoint_sync()) == uuid
    assert [c["uuid"] for c in prod.remote_checkpoints()] == [uuid]

    keys = moto_s3.keys(s3_bucket, "prod/")
    assert "prod/owner.json" in keys
    assert "prod/checkpoints.feldera" in keys
    assert f"prod/dependencies/{uuid}.json" in keys
    state_files = [k for k in keys if k.startswith("prod/w0-")]
    assert state_files, keys
    # Order of writes as the S3 server saw them: every state object and the manifest before the catalog.
    puts = [path for method, path in moto_s3.recorded_requests() if method == "PUT"]
    catalog_at = puts.index(f"/{s3_bucket}/prod/checkpoints.feldera")
    for key in [*state_files, f"prod/dependencies/{uuid}.json"]:
        assert puts.index(f"/{s3_bucket}/{key}") < catalog_at
    catalog = json.loads(moto_s3.client().get_object(Bucket=s3_bucket, Key="prod/checkpoints.feldera")["Body"].read())
    assert [c["uuid"] for c in catalog] == [uuid]
    assert catalog[0]["processed_records"] == 25

    # Data after the checkpoint is not in it.
    push_orders(prod, 100, 5)
    assert processed(prod) == 30

    staging = build(
        client,
        "staging",
        sync_config(
            moto_s3,
            s3_bucket,
            "staging",
            start_from_checkpoint=uuid,
            read_bucket=f"{s3_bucket}/prod",
            fail_if_no_checkpoint=True,
        ),
    )
    staging.start(timeout_s=30)
    assert staging.status() == PipelineStatus.RUNNING
    assert processed(staging) == 25
    # read_bucket is never written; staging's own location is untouched until staging pushes.
    assert moto_s3.keys(s3_bucket, "prod/") == keys
    assert moto_s3.keys(s3_bucket, "staging/") == []


def test_standby_follows_the_primary_and_activates_with_the_newest_state(
    client: FelderaClient, moto_s3: MotoS3Server, s3_bucket: str
) -> None:
    primary = build(client, "primary", sync_config(moto_s3, s3_bucket, "primary"))
    primary.start()
    push_orders(primary, 0, 10)
    primary.checkpoint(wait=True)
    primary.sync_checkpoint(wait=True, timeout_s=30)

    standby = build(
        client,
        "standby",
        sync_config(
            moto_s3,
            s3_bucket,
            "standby",
            read_bucket=f"{s3_bucket}/primary",
            start_from_checkpoint="latest",
            pull_interval=1,
        ),
    )
    standby.start_standby(timeout_s=30)
    assert standby.status() == PipelineStatus.STANDBY
    # A standby has no controller: checkpoint answers 503 (which the client would retry for ~14 s by default).
    impatient = FelderaClient(url=client.config.url, api_key=API_KEY, retry_config=RetryConfig(max_retries=0))
    with pytest.raises(FelderaAPIError) as unavailable:
        Pipeline.get("standby", impatient).checkpoint()
    assert unavailable.value.status_code == 503
    assert unavailable.value.error_code == "Initializing"

    push_orders(primary, 10, 7)
    primary.checkpoint(wait=True)
    newest = primary.sync_checkpoint(wait=True, timeout_s=30)
    assert processed(primary) == 17

    standby.activate(timeout_s=30)
    assert standby.status() == PipelineStatus.RUNNING
    assert processed(standby) == 17
    assert newest in [c.uuid for c in standby.checkpoints()]


def test_injected_503s_are_retried_by_the_client(client: FelderaClient, sandbox: FelderaSandbox) -> None:
    pipeline = build(client, "retry", None)
    pipeline.start()
    sandbox.control.fail(
        "/v0/pipelines/retry/stats",
        method="GET",
        status=503,
        count=2,
        error_code="PipelineInteractionUnreachable",
    )
    assert processed(pipeline) == 0
    stats_calls = [r for r in sandbox.control.requests() if r["path"] == "/v0/pipelines/retry/stats"]
    assert [r["status"] for r in stats_calls] == [503, 503, 200]


def test_restart_is_reported_as_incarnation_mismatch(
    client: FelderaClient, sandbox: FelderaSandbox, moto_s3: MotoS3Server, s3_bucket: str
) -> None:
    pipeline = build(client, "restarts", sync_config(moto_s3, s3_bucket, "restarts"))
    pipeline.start()
    response = pipeline.checkpoint_response(wait=True)
    old = response["incarnation_uuid"]
    new = sandbox.control.restart("restarts")
    assert new != old
    wait_until(pipeline.status, lambda s: s == PipelineStatus.RUNNING)
    for call in (client.checkpoint_pipeline_status, client.sync_checkpoint_status):
        with pytest.raises(FelderaAPIError) as mismatch:
            call("restarts", old)
        assert mismatch.value.status_code == 400
        assert mismatch.value.error_code == "IncarnationUuidMismatch"
        assert mismatch.value.details == {"requested": old, "expected": new}
    # The new incarnation's sequence numbers start again at 0, and its sync status starts empty.
    assert pipeline.checkpoint_response(wait=True)["checkpoint_sequence_number"] == 0
    empty = {"success": None, "failure": None, "periodic": None}
    if sandbox.engine.settings.sync_running_field:
        empty["running"] = []  # Feldera after 0.337 lists the pushes under way
    assert client.sync_checkpoint_status("restarts", new) == empty


def test_community_edition_refuses_enterprise_features() -> None:
    with checked_sandbox(edition="community") as community:
        client = FelderaClient(url=community.url)
        assert client.get_config().edition.value == "Open source"
        pipeline = build(client, "oss", None)
        pipeline.start()
        for call in (pipeline.checkpoint, pipeline.sync_checkpoint, lambda: pipeline.stop(force=False)):
            with pytest.raises(FelderaAPIError) as refused:
                call()
            assert refused.value.status_code == 501
            assert refused.value.error_code == "EnterpriseFeature"
        assert_conforms(community)


def test_wrong_api_key_is_refused(sandbox: FelderaSandbox) -> None:
    with pytest.raises(FelderaAPIError) as refused:
        FelderaClient(url=sandbox.url, api_key="apikey:wrong")
    assert refused.value.status_code == 401
    assert refused.value.error_code == "AuthenticationFailed"
