"""The direct object paths (``s3_direct``, ``azure_direct``) against moto and Azurite, which both check signatures.

What they write reads back through each store's own SDK exactly as the SDK would have written it; a request the
store refuses is made by the SDK instead, and the direct path is not used again; where the SDK would do something the
direct path does not (a proxy, a credential it does not reproduce), it is not used at all.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import random
from typing import TYPE_CHECKING, Any

import pytest
from airflow_support import aws_connection

from airflow_checkpoint_sync.object_stores import STORE_TYPES, store_for
from airflow_checkpoint_sync.object_stores.azure_direct import DirectAzureBlob
from airflow_checkpoint_sync.object_stores.s3_direct import DirectS3
from airflow_checkpoint_sync.rules.replication import CONTENT_MD5, SOURCE_FINGERPRINT

if TYPE_CHECKING:
    from airflow_checkpoint_sync.object_stores.azure import AzureBlobStore
    from airflow_checkpoint_sync.object_stores.s3 import S3Store
    from airflow_checkpoint_sync.testing import AzuriteServer, MotoS3Server

#: Keys as a listing may return them: characters that URL quoting and request signing both touch.
AWKWARD = ["plain/pspine-1.feldera", "a b/x+y=z&ü~(1).bin", "dir/%41%2F.bin", "dir//double-slash.bin"]
#: Keys urllib3 would send elsewhere (it resolves dot segments): the direct path leaves them to the SDK and stays on.
DOT_SEGMENTS = ["dots/../not-a-parent", "./here.bin"]
EMULATOR_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def body(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@pytest.fixture
def s3_store(moto_s3: MotoS3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> S3Store:
    monkeypatch.setenv("AIRFLOW_CONN_DIRECT_S3", aws_connection(moto_s3))
    store = store_for("direct_s3", f"{s3_bucket}/replica", "destination_conn_id", STORE_TYPES)
    return store  # type: ignore[return-value]


def azure_store(monkeypatch: pytest.MonkeyPatch, connection: dict[str, Any], container: str) -> AzureBlobStore:
    monkeypatch.setenv("AIRFLOW_CONN_DIRECT_AZURE", json.dumps({"conn_type": "wasb", **connection}))
    return store_for("direct_azure", f"{container}/replica", "destination_conn_id", STORE_TYPES)  # type: ignore[return-value]


@pytest.fixture
def container(azurite: AzuriteServer) -> str:
    from azure.storage.blob import BlobServiceClient

    name = f"direct{random.randrange(10**9)}"
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(name)
    return name


def test_s3_objects_written_and_read_the_direct_way_are_what_the_sdk_sees(s3_store: S3Store) -> None:
    direct = s3_store.direct
    assert direct is not None
    for i, name in enumerate(AWKWARD):
        data = body(1000 + i)
        assert direct.put(s3_store.key(name), data, {SOURCE_FINGERPRINT: f"etag-{i}"})
        seen = s3_store.client.get_object(Bucket=s3_store.container, Key=s3_store.key(name))
        assert seen["Body"].read() == data
        assert seen["Metadata"] == {SOURCE_FINGERPRINT: f"etag-{i}"}
        assert seen["ETag"].strip('"') == md5(data)  # the MD5 the service checked the body against
        assert b"".join(s3_store.chunks(name)) == data
    assert not any(direct.put(s3_store.key(name), b"x", {}) for name in DOT_SEGMENTS)
    assert all(direct.get(s3_store.key(name), 1024) is None for name in DOT_SEGMENTS)
    assert {obj.name for obj in s3_store.list()} == set(AWKWARD)
    listed = direct.list(s3_store.key(""), page_size=3)  # several pages
    pages = s3_store.client.get_paginator("list_objects_v2").paginate(Bucket=s3_store.container, Prefix="replica/")
    by_sdk = [item for page in pages for item in page["Contents"]]
    assert listed is not None and len(listed) == len(by_sdk) == len(AWKWARD)
    assert {(o["Key"], o["Size"], o["ETag"]) for o in listed} == {(o["Key"], o["Size"], o["ETag"]) for o in by_sdk}
    assert s3_store.direct is direct  # nothing turned it off


def test_s3_store_writes_small_objects_in_one_request_and_large_ones_in_parts(s3_store: S3Store) -> None:
    from airflow_checkpoint_sync.object_stores.base import SINGLE_REQUEST_MAX

    small, large = body(64 * 1024), body(SINGLE_REQUEST_MAX + 1)
    s3_store.write("small.bin", io.BytesIO(small), len(small), "fp-small")
    s3_store.write("large.bin", io.BytesIO(large), len(large), "fp-large")
    listed = {obj.name: obj for obj in s3_store.with_copy_marks(s3_store.list())}
    assert (listed["small.bin"].fingerprint, listed["small.bin"].copied_from) == (md5(small), "fp-small")
    assert "-" in str(listed["large.bin"].fingerprint) and listed["large.bin"].copied_from == "fp-large"
    assert b"".join(s3_store.chunks("large.bin")) == large


def test_a_direct_s3_request_the_store_refuses_is_made_by_the_sdk_and_the_path_is_not_used_again(
    s3_store: S3Store, moto_s3: MotoS3Server
) -> None:
    from botocore.credentials import Credentials

    assert s3_store.direct is not None
    wrong = DirectS3(
        s3_store.direct.base_url,
        "us-east-1",
        Credentials(moto_s3.access_key, "not-the-secret-key"),
        verify=True,
        pool_size=4,
        timeouts=(5.0, 5.0),
    )
    s3_store._direct.set(wrong)  # the store's direct path, with credentials the server refuses
    data = body(2048)
    s3_store.write("refused.bin", io.BytesIO(data), len(data), "fp")
    assert not wrong.enabled and s3_store.direct is None
    assert b"".join(s3_store.chunks("refused.bin")) == data  # through the SDK now
    # The copy mark: the source's fingerprint and the MD5 of the content written.
    assert s3_store.client.head_object(Bucket=s3_store.container, Key=s3_store.key("refused.bin"))["Metadata"] == {
        SOURCE_FINGERPRINT: "fp",
        CONTENT_MD5: md5(data),
    }


def test_with_a_proxy_in_the_environment_the_sdk_makes_every_request(
    s3_store: S3Store, azurite: AzuriteServer, container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert s3_store.direct is None
    connection = {"extra": {"connection_string": azurite.connection_string}}
    assert azure_store(monkeypatch, connection, container).direct is None


def account_sas() -> str:
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    return generate_account_sas(
        "devstoreaccount1",
        EMULATOR_KEY,
        resource_types=ResourceTypes(container=True, object=True),
        permission=AccountSasPermissions(read=True, write=True, list=True, create=True, delete=True),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )


@pytest.mark.parametrize("auth", ["account key", "SAS"])
def test_azure_blobs_uploaded_the_direct_way_are_what_the_sdk_sees(
    azurite: AzuriteServer, container: str, monkeypatch: pytest.MonkeyPatch, auth: str
) -> None:
    connection = (
        {"extra": {"connection_string": azurite.connection_string}}
        if auth == "account key"
        else {"host": f"{azurite.url}/devstoreaccount1", "extra": {"sas_token": account_sas()}}
    )
    store = azure_store(monkeypatch, connection, container)
    direct = store.direct
    assert direct is not None
    if auth == "SAS":  # it travels in the URL of every request, which urllib3 logs at debug level
        from airflow.sdk.log import redact

        sas = connection["extra"]["sas_token"]  # type: ignore[index]
        assert sas not in str(redact(f"GET {direct.container_url}?{sas}"))
    for i, name in enumerate([*AWKWARD, "empty.bin"]):
        data = b"" if name == "empty.bin" else body(3000 + i)
        assert direct.put(store.key(name), data, {"feldera_source_fingerprint": f"etag-{i}"})
        blob = store.container_client.get_blob_client(store.key(name))
        properties = blob.get_blob_properties()
        assert blob.download_blob().readall() == data
        assert properties.metadata == {"feldera_source_fingerprint": f"etag-{i}"}
        assert bytes(properties.content_settings.content_md5).hex() == md5(data)
    assert not any(direct.put(store.key(name), b"x", {}) for name in DOT_SEGMENTS)
    listed = {obj.name: obj for obj in store.list()}
    assert set(listed) == {*AWKWARD, "empty.bin"} and listed["empty.bin"].size == 0
    by_sdk = {
        store.name(blob.name): (blob.size, bytes(blob.content_settings.content_md5).hex(), dict(blob.metadata))
        for blob in store.container_client.list_blobs(name_starts_with="replica/", include=["metadata"])
    }
    assert {
        name: (o.size, o.md5, {"feldera_source_fingerprint": o.copied_from}) for name, o in listed.items()
    } == by_sdk
    paged = direct.list(store.key(""), page_size=2)  # several pages
    assert paged is not None and sorted(store.name(blob["name"]) for blob in paged) == sorted(by_sdk)
    assert store.direct is direct


def test_a_direct_azure_upload_the_service_refuses_is_made_by_the_sdk_and_the_path_is_not_used_again(
    azurite: AzuriteServer, container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = azure_store(monkeypatch, {"extra": {"connection_string": azurite.connection_string}}, container)
    assert store.direct is not None
    wrong_key = base64.b64encode(b"not the account key").decode()
    wrong = DirectAzureBlob(
        store.direct.container_url, store.direct.api_version, account_name="devstoreaccount1", account_key=wrong_key
    )
    store._direct.set(wrong)
    data = body(4096)
    store.write("refused.bin", io.BytesIO(data), len(data), "fp")
    assert not wrong.enabled and store.direct is None
    (copy,) = [obj for obj in store.list() if obj.name == "refused.bin"]
    assert (copy.copied_from, copy.md5, copy.copied_md5) == ("fp", md5(data), md5(data))


def test_an_azure_credential_the_direct_path_does_not_reproduce_leaves_every_request_to_the_sdk() -> None:
    from azure.identity import ClientSecretCredential
    from azure.storage.blob import ContainerClient

    # A Microsoft Entra ID service principal, as a wasb connection with a tenant id builds it (no request is made).
    entra = ClientSecretCredential("00000000-0000-0000-0000-000000000000", "client-id", "client-secret")
    client = ContainerClient("https://account.blob.core.windows.net", "container", credential=entra)
    assert DirectAzureBlob.for_container(client) is None


def test_a_direct_path_that_cannot_be_made_leaves_every_request_to_the_sdk(s3_store: S3Store) -> None:
    from airflow_checkpoint_sync.object_stores.direct_http import LazyPath

    def broken() -> DirectS3:
        raise RuntimeError("the session cannot be made")

    s3_store._direct = LazyPath(broken, str(s3_store))
    assert s3_store.direct is None
    s3_store.write("through-the-sdk.bin", io.BytesIO(b"sdk"), 3, "fp")
    assert b"".join(s3_store.chunks("through-the-sdk.bin")) == b"sdk"
    assert [obj.name for obj in s3_store.list()] == ["through-the-sdk.bin"]
