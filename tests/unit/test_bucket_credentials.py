"""Bucket credentials from real Airflow connections (environment-variable connections), one per type."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from airflow_checkpoint_sync.exceptions import BucketCredentialsError
from airflow_checkpoint_sync.hooks.bucket_credentials import bucket_credentials


def conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))
    return conn_id


def test_no_connection_means_feldera_uses_its_own_credentials() -> None:
    assert bucket_credentials(None).sync_fields() == {}


def test_aws_static_keys_on_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    cid = conn(
        monkeypatch,
        "s3_prod",
        conn_type="aws",
        login="AKIAEXAMPLE",
        password="secret-example-value",
        extra={"region_name": "eu-west-1"},
    )
    assert bucket_credentials(cid).sync_fields() == {
        "access_key": "AKIAEXAMPLE",
        "secret_key": "secret-example-value",
        "region": "eu-west-1",
        "provider": "AWS",
    }


@pytest.mark.parametrize(
    ("extra", "endpoint", "provider"),
    [
        ({"endpoint_url": "http://127.0.0.1:9000"}, "http://127.0.0.1:9000", "Other"),
        (
            {"service_config": {"s3": {"endpoint_url": "http://minio.local:9000"}}, "endpoint_url": "http://x:1"},
            "http://minio.local:9000",
            "Minio",
        ),
        (
            {"endpoint_url": "https://acct.r2.cloudflarestorage.com"},
            "https://acct.r2.cloudflarestorage.com",
            "Cloudflare",
        ),
        ({"endpoint_url": "http://127.0.0.1:9000", "rclone_provider": "Ceph"}, "http://127.0.0.1:9000", "Ceph"),
    ],
)
def test_aws_s3_compatible_endpoints(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], endpoint: str, provider: str
) -> None:
    cid = conn(monkeypatch, "s3_compat", conn_type="aws", login="k", password="s", extra=extra)
    fields = bucket_credentials(cid).sync_fields()
    assert (fields["endpoint"], fields["provider"]) == (endpoint, provider)


def test_aws_without_keys_is_keyless(monkeypatch: pytest.MonkeyPatch) -> None:
    cid = conn(monkeypatch, "s3_role", conn_type="aws", extra={"region_name": "us-east-2"})
    assert bucket_credentials(cid).sync_fields() == {"region": "us-east-2", "provider": "AWS"}


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"aws_session_token": "token-value"}, "session token"),
        ({"role_arn": "arn:aws:iam::123456789012:role/dr"}, "assumes the role"),
    ],
)
def test_aws_temporary_credentials_are_refused_with_the_way_out(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], fragment: str
) -> None:
    cid = conn(monkeypatch, "s3_temp", conn_type="aws", login="k", password="s", extra=extra)
    with pytest.raises(BucketCredentialsError) as refused:
        bucket_credentials(cid)
    assert fragment in str(refused.value) and "leave bucket_conn_id unset" in str(refused.value)
    assert "token-value" not in str(refused.value)


def test_aws_half_a_key_pair_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    cid = conn(monkeypatch, "s3_half", conn_type="aws", login="AKIAONLY")
    with pytest.raises(BucketCredentialsError, match="an access key but no secret"):
        bucket_credentials(cid)


def test_google_hmac_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    cid = conn(
        monkeypatch,
        "gcs_dr",
        conn_type="google_cloud_platform",
        extra={"project": "p", "hmac_access_id": "GOOGHMACID", "hmac_secret": "hmac-secret-value"},
    )
    assert bucket_credentials(cid).sync_fields() == {
        "access_key": "GOOGHMACID",
        "secret_key": "hmac-secret-value",
        "endpoint": "https://storage.googleapis.com",
        "provider": "GCS",
    }
    prefixed = conn(
        monkeypatch,
        "gcs_old",
        conn_type="google_cloud_platform",
        extra={
            "extra__google_cloud_platform__hmac_access_id": "ID2",
            "extra__google_cloud_platform__hmac_secret": "S2",
        },
    )
    assert bucket_credentials(prefixed).access_key == "ID2"


def test_google_without_hmac_names_the_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    cid = conn(monkeypatch, "gcs_oauth", conn_type="google_cloud_platform", extra={"project": "p"})
    with pytest.raises(BucketCredentialsError) as refused:
        bucket_credentials(cid)
    assert "hmac_access_id, hmac_secret" in str(refused.value)


def test_wasb_is_refused_plainly(monkeypatch: pytest.MonkeyPatch) -> None:
    cid = conn(monkeypatch, "azure_dr", conn_type="wasb", login="acct", password="key")
    with pytest.raises(BucketCredentialsError, match="S3-compatible stores only"):
        bucket_credentials(cid)


def test_other_types_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    cid = conn(monkeypatch, "pg", conn_type="postgres", host="db")
    with pytest.raises(BucketCredentialsError, match="accepted: aws, google_cloud_platform"):
        bucket_credentials(cid)


def test_no_cloud_sdk_until_a_connection_of_its_type_is_resolved() -> None:
    code = (
        "import sys, airflow.sdk\n"
        "before = set(sys.modules)\n"
        "import airflow_checkpoint_sync.hooks.bucket_credentials, airflow_checkpoint_sync.operators.restore\n"
        "import airflow_checkpoint_sync.operators.standby\n"
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in ('boto3', 'botocore', 'google', "
        "'azure') or m.startswith('airflow.providers.amazon')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "[]"
