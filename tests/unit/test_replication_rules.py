"""The replication's pure rules: what is copied, skipped, written last and deleted."""

from __future__ import annotations

import json

import pytest

from airflow_checkpoint_sync.rules.bucket_layout import CATALOG, OWNER
from airflow_checkpoint_sync.rules.locations import (
    EndpointIdentity,
    Overlap,
    endpoint_identity,
    location_overlap,
    normalize_location,
    same_store,
    split_location,
)
from airflow_checkpoint_sync.rules.replication import (
    StoredObject,
    copy_marks_needed,
    missing_after_copy,
    newest_in_catalog,
    plan_replication,
    up_to_date,
)

SRC = [
    StoredObject(OWNER, 10, "o"),
    StoredObject(CATALOG, 50, "cat2"),
    StoredObject("a.bin", 100, "a1"),
    StoredObject("b.bin", 200, "b1"),
    StoredObject("c.bin", 300, "c1"),
]


def test_only_missing_or_different_objects_are_copied_and_the_catalog_is_apart() -> None:
    there = [
        StoredObject("a.bin", 100, "x", copied_from="a1"),  # copied earlier from this very content
        StoredObject("b.bin", 200, "y", copied_from="b0"),  # copied from older content
        StoredObject(CATALOG, 40, "z", copied_from="cat1"),
    ]
    plan = plan_replication(SRC, there, delete_removed=False)
    assert [o.name for o in plan.copy] == ["b.bin", "c.bin"]
    assert [o.name for o in plan.skip] == ["a.bin"]
    assert plan.catalog == SRC[1] and plan.catalog_changed
    assert plan.delete == ()


def test_owner_json_is_never_copied_nor_deleted_and_deletions_need_the_flag() -> None:
    there = [StoredObject(OWNER, 1, "mine"), StoredObject("old.bin", 5, "o", copied_from="o")]
    assert plan_replication(SRC, there, delete_removed=False).delete == ()
    plan = plan_replication(SRC, there, delete_removed=True)
    assert plan.delete == ("old.bin",)
    assert OWNER not in [o.name for o in plan.copy]


def test_an_up_to_date_catalog_is_not_rewritten() -> None:
    there = [StoredObject(CATALOG, 50, "z", copied_from="cat2")]
    assert not plan_replication(SRC, there, delete_removed=False).catalog_changed


def test_same_size_without_a_fingerprint_is_copied_again() -> None:
    assert not up_to_date(StoredObject("a", 1, None), StoredObject("a", 1, None))
    assert not up_to_date(StoredObject("a", 1, "f"), StoredObject("a", 2, "f", copied_from="f"))
    assert up_to_date(StoredObject("a", 1, "f"), StoredObject("a", 1, "f"))  # e.g. a server-side copy's ETag


def test_the_catalog_waits_for_every_object_in_full() -> None:
    plan = plan_replication(SRC, [], delete_removed=False)
    partial = [StoredObject("a.bin", 100), StoredObject("b.bin", 150)]
    assert missing_after_copy(plan, partial) == ["b.bin (150 of 200 bytes)", "c.bin (missing)"]
    complete = [StoredObject(o.name, o.size) for o in SRC]
    assert missing_after_copy(plan, complete) == []


def test_newest_in_catalog() -> None:
    older, newer = "01890000-0000-7000-8000-000000000001", "01990000-0000-7000-8000-000000000001"
    body = json.dumps({"checkpoints": [{"uuid": newer}, {"uuid": older}]}).encode()
    assert newest_in_catalog(body) == newer
    assert newest_in_catalog(b"not json") is None
    assert newest_in_catalog(b"{}") is None


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("", "required"),
        ("s3://b/p", "drop the scheme"),
        ("s3:b/p", "drop the scheme"),
        ("/b/p", "is not a bucket name"),
        ("b//p", "no empty"),
        ("b/p/../q", "'..'"),
        ("b/./p", "'.'"),
        ("b/p//", "no empty"),
        ("b/p q", "no white space"),
        ("b/p\\q", "backslashes"),
        ("b/p\x00", "control characters"),
        ("b?x/p", "is not a bucket name"),
    ],
)
def test_locations_are_refused_when_they_could_name_another_place(bad: str, why: str) -> None:
    with pytest.raises(ValueError, match=r"destination=.* is not valid: .*'bucket-name\[/prefix\]'") as refused:
        split_location(bad, "destination")
    assert why in str(refused.value)


def test_a_location_has_one_spelling() -> None:
    assert split_location("b/p/q/", "destination") == ("b", "p/q")
    assert split_location(" b/p ", "destination") == ("b", "p")
    assert split_location("b", "destination") == ("b", "")
    assert normalize_location("b/p/") == normalize_location("b/p") == "b/p"


@pytest.mark.parametrize(
    ("source", "destination", "overlap"),
    [
        (("S3Store", "c", "b", "p"), ("S3Store", "c", "b", "p"), Overlap.SAME),
        (("S3Store", "c", "b", "p"), ("S3Store", "c", "b", "p/replica"), Overlap.INSIDE),
        (("S3Store", "c", "b", ""), ("S3Store", "c", "b", "p"), Overlap.INSIDE),
        (("S3Store", "c", "b", "p/q"), ("S3Store", "c", "b", "p"), Overlap.HOLDS),
        (("S3Store", "c", "b", "p"), ("S3Store", "c", "b", ""), Overlap.HOLDS),
        (("S3Store", "c", "b", "p"), ("S3Store", "c", "b", "p2"), None),  # a shared start is not nesting
        (("S3Store", "c", "b", "p"), ("S3Store", "c", "other", "p"), None),
        (("S3Store", "c", "b", "p"), ("S3Store", "d", "b", "p"), None),
        (("S3Store", "c", "b", "p"), ("AzureStore", "c", "b", "p"), None),
    ],
)
def test_overlapping_locations(source: tuple[str, ...], destination: tuple[str, ...], overlap: Overlap | None) -> None:
    assert location_overlap(source, destination) == overlap


def test_copy_marks_are_fetched_only_for_replicas_the_listing_cannot_judge() -> None:
    source = [StoredObject("same.bin", 10, "e1"), StoredObject("multipart.bin", 20, "m-2"),
              StoredObject("resized.bin", 30, "r1"), StoredObject("unknown.bin", 40, None)]  # fmt: skip
    needed = copy_marks_needed(source)
    replicas = {
        "same.bin": StoredObject("same.bin", 10, "e1"),  # same content by its listed fingerprint
        "multipart.bin": StoredObject("multipart.bin", 20, "other-3"),  # written in other parts: only its mark tells
        "resized.bin": StoredObject("resized.bin", 31, "x"),  # another size: copied whatever its mark says
        "unknown.bin": StoredObject("unknown.bin", 40, "u"),  # no source fingerprint: copied again anyway
        "extra.bin": StoredObject("extra.bin", 5, "z"),  # not in the source
    }
    assert {name for name, replica in replicas.items() if needed(replica)} == {"multipart.bin"}
    # Whatever is not fetched, the plan judges as it would with every mark.
    for name, replica in replicas.items():
        original = next((o for o in source if o.name == name), None)
        if original is not None and not needed(replica):
            marked = StoredObject(name, replica.size, replica.fingerprint, copied_from=original.fingerprint)
            assert up_to_date(original, replica) == up_to_date(original, marked) or replica.size != original.size


MD5_A, MD5_B = "a" * 32, "b" * 32


@pytest.mark.parametrize(
    ("source", "replica", "expected"),
    [
        # The listing shows the source's content (a single-part copy's ETag is its MD5): no mark needed.
        (StoredObject("x", 5, MD5_A, md5=MD5_A), StoredObject("x", 5, MD5_A, md5=MD5_A), True),
        # Marked from this source and still holding what was written.
        (StoredObject("x", 5, "m-2"), StoredObject("x", 5, "r-3", copied_from="m-2"), True),  # no store MD5
        (StoredObject("x", 5, "m-2"), StoredObject("x", 5, MD5_A, "m-2", MD5_A, MD5_A), True),
        # The bytes changed, the mark survived (same size): the store's MD5 is not the one the mark recorded.
        (StoredObject("x", 5, "m-2"), StoredObject("x", 5, MD5_B, "m-2", MD5_B, MD5_A), False),
        (StoredObject("x", 5, MD5_A, md5=MD5_A), StoredObject("x", 5, MD5_B, MD5_A, MD5_B, MD5_A), False),
        # An older mark without the content MD5: the source's MD5 still judges it.
        (StoredObject("x", 5, MD5_A, md5=MD5_A), StoredObject("x", 5, "etag", MD5_A, MD5_B), False),
        (StoredObject("x", 5, "az", md5=MD5_A), StoredObject("x", 5, "az2", "az", MD5_B), False),
        (StoredObject("x", 5, "az", md5=MD5_A), StoredObject("x", 5, "az2", "az", MD5_A), True),
        # Rewritten at the same size by an ordinary upload: no mark, other content.
        (StoredObject("x", 5, MD5_A, md5=MD5_A), StoredObject("x", 5, MD5_B, md5=MD5_B), False),
        # A mark from other source content.
        (StoredObject("x", 5, "m-2"), StoredObject("x", 5, "r-3", copied_from="m-1"), False),
    ],
)
def test_a_copy_mark_is_trusted_only_while_the_replica_holds_what_was_written(
    source: StoredObject, replica: StoredObject, expected: bool
) -> None:
    assert up_to_date(source, replica) is expected


def test_repair_trusts_only_a_mark() -> None:
    source = StoredObject("x", 5, MD5_A, md5=MD5_A)
    unmarked_same_content = StoredObject("x", 5, MD5_A, md5=MD5_A)
    assert up_to_date(source, unmarked_same_content)
    assert not up_to_date(source, unmarked_same_content, repair=True)
    marked = StoredObject("x", 5, MD5_A, MD5_A, MD5_A, MD5_A)
    assert up_to_date(source, marked, repair=True)
    src = [StoredObject(CATALOG, 5, "c", md5=MD5_A), source]
    there = [StoredObject(CATALOG, 5, "c", md5=MD5_A), unmarked_same_content]
    assert plan_replication(src, there, delete_removed=False).copy == ()
    repaired = plan_replication(src, there, delete_removed=False, repair=True)
    assert repaired.copy == (source,) and repaired.catalog_changed


def test_a_damaged_replica_is_among_those_whose_mark_is_read() -> None:
    # Damaged in place (same size): its listed fingerprint is no longer the source's, so its mark is read, and the
    # mark then judges it by content.
    source = StoredObject("x", 5, MD5_A, md5=MD5_A)
    damaged = StoredObject("x", 5, MD5_B, md5=MD5_B)
    assert copy_marks_needed([source])(damaged)
    marked = StoredObject("x", 5, MD5_B, copied_from=MD5_A, md5=MD5_B, copied_md5=MD5_A)
    assert not up_to_date(source, marked)


LOOP = EndpointIdentity("http", "loopback:9000")
AWS = EndpointIdentity("aws-s3", "aws")


@pytest.mark.parametrize(
    ("url", "bucket", "identity"),
    [
        ("http://localhost:9000", None, LOOP),
        ("http://127.0.0.1:9000/", None, LOOP),
        ("HTTP://LocalHost:9000", None, LOOP),
        ("http://127.5.6.7:9000", None, LOOP),
        ("http://[::1]:9000", None, LOOP),
        ("http://b.localhost:9000", "b", LOOP),  # virtual-host style on the path-style host
        ("http://127.0.0.1:9001", None, EndpointIdentity("http", "loopback:9001")),
        ("https://minio.example.com:443", None, EndpointIdentity("https", "minio.example.com")),
        ("https://MINIO.example.com./", None, EndpointIdentity("https", "minio.example.com")),
        ("http://minio.example.com:80", None, EndpointIdentity("http", "minio.example.com")),
        ("http://minio.example.com:443", None, EndpointIdentity("http", "minio.example.com:443")),
        ("https://bkt.minio.example.com", "bkt", EndpointIdentity("https", "minio.example.com")),
        ("https://bkt.minio.example.com", "other", EndpointIdentity("https", "bkt.minio.example.com")),
        ("https://s3.amazonaws.com", None, AWS),
        ("https://s3.eu-west-1.amazonaws.com", None, AWS),
        ("http://s3.eu-west-1.amazonaws.com:443", None, AWS),
        ("https://s3-eu-west-1.amazonaws.com", None, AWS),
        ("https://s3.dualstack.us-east-2.amazonaws.com", None, AWS),
        ("https://s3-fips.us-east-1.amazonaws.com", None, AWS),
        ("https://bkt.s3.us-east-1.amazonaws.com", "bkt", AWS),
        ("https://bkt.s3.amazonaws.com", None, AWS),
        ("https://bucket.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com", None, AWS),
        ("https://s3.cn-north-1.amazonaws.com.cn", None, EndpointIdentity("aws-s3", "aws-cn")),
        ("https://s3.us-gov-west-1.amazonaws.com", None, EndpointIdentity("aws-s3", "aws-us-gov")),
        ("https://acct.blob.core.windows.net", None, EndpointIdentity("azure-blob", "core.windows.net/acct")),
        ("https://ACCT.blob.core.windows.net/", None, EndpointIdentity("azure-blob", "core.windows.net/acct")),
        ("https://acct-secondary.blob.core.windows.net", None, EndpointIdentity("azure-blob", "core.windows.net/acct")),
        ("https://acct.blob.core.chinacloudapi.cn", None, EndpointIdentity("azure-blob", "core.chinacloudapi.cn/acct")),
        ("http://127.0.0.1:10000/devstoreaccount1", None, EndpointIdentity("http", "loopback:10000/devstoreaccount1")),
        ("http://localhost:10000/devstoreaccount1/", None, EndpointIdentity("http", "loopback:10000/devstoreaccount1")),
        ("https://storage.googleapis.com", None, EndpointIdentity("gcs", "")),
        ("https://bkt.storage.googleapis.com", None, EndpointIdentity("gcs", "")),
    ],
)
def test_an_endpoint_is_identified_by_what_it_reaches_not_its_spelling(
    url: str, bucket: str | None, identity: EndpointIdentity
) -> None:
    assert endpoint_identity(url, bucket) == identity


@pytest.mark.parametrize(
    ("a", "b", "a_addresses", "b_addresses", "same"),
    [
        ("http://localhost:9000", "http://127.0.0.1:9000", None, None, True),  # one identity: no lookup needed
        ("https://s3.amazonaws.com", "https://s3.us-west-2.amazonaws.com", None, None, True),
        ("https://s3.amazonaws.com", "https://s3.cn-north-1.amazonaws.com.cn", None, None, False),
        ("https://a.blob.core.windows.net", "https://b.blob.core.windows.net", None, None, False),
        ("https://s3.amazonaws.com", "https://storage.googleapis.com", None, None, False),
        ("http://localhost:9000", "http://localhost:9001", {"loopback:9000"}, {"loopback:9001"}, False),
        ("http://minio:9000", "http://10.0.0.5:9000", {"10.0.0.5:9000"}, {"10.0.0.5:9000"}, True),
        ("http://minio:9000", "http://other:9000", {"10.0.0.5:9000"}, {"10.0.0.6:9000"}, False),
        ("http://minio:9000", "http://nowhere:9000", {"10.0.0.5:9000"}, None, None),  # undecided: refused
        ("http://minio:9000", "http://other:9000", None, None, None),
    ],
)
def test_two_endpoints_are_one_store_by_identity_or_by_address(
    a: str, b: str, a_addresses: set[str] | None, b_addresses: set[str] | None, same: bool | None
) -> None:
    found = same_store(
        endpoint_identity(a),
        endpoint_identity(b),
        None if a_addresses is None else frozenset(a_addresses),
        None if b_addresses is None else frozenset(b_addresses),
    )
    assert found is same


def _client_error(code: str, status: int) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


def _azure_error(code: str, status: int) -> Exception:
    from azure.core.exceptions import HttpResponseError

    error = HttpResponseError(message="m")
    error.error_code, error.status_code = code, status
    return error


@pytest.mark.parametrize(
    ("make", "final"),
    [
        (lambda: _client_error("NoSuchBucket", 404), "the bucket does not exist"),
        (lambda: _client_error("SignatureDoesNotMatch", 403), "the secret key is refused"),
        (lambda: _client_error("InvalidAccessKeyId", 403), "the access key is unknown"),
        (lambda: _client_error("AccessDenied", 403), "access is denied"),
        (lambda: _client_error("SomethingNew", 403), "access is denied"),
        (lambda: _client_error("SlowDown", 503), None),
        (lambda: _client_error("InternalError", 500), None),
        (lambda: _client_error("404", 404), None),  # an object gone between a listing and a HEAD: may pass
        (lambda: __import__("botocore.exceptions").exceptions.NoCredentialsError(), "no credentials were found"),
        (lambda: __import__("botocore.exceptions").exceptions.EndpointConnectionError(endpoint_url="u"), None),
        (lambda: __import__("botocore.exceptions").exceptions.ReadTimeoutError(endpoint_url="u"), None),
        (lambda: _azure_error("AuthenticationFailed", 403), "the credentials are refused"),
        (lambda: _azure_error("ContainerNotFound", 404), "the container does not exist"),
        (lambda: _azure_error("ServerBusy", 503), None),
        (lambda: __import__("google.api_core.exceptions").api_core.exceptions.Forbidden("m"), "access is denied"),
        (
            lambda: __import__("google.api_core.exceptions").api_core.exceptions.NotFound("The bucket does not exist"),
            "the bucket does not exist",
        ),
        (lambda: __import__("google.api_core.exceptions").api_core.exceptions.ServiceUnavailable("m"), None),
        (lambda: TimeoutError("timed out"), None),
        (lambda: ConnectionResetError(), None),
    ],
)
def test_store_errors_no_retry_changes_are_final_and_the_others_retried(make: object, final: str | None) -> None:
    from airflow_checkpoint_sync.object_stores import final_store_error

    assert final_store_error(make()) == final  # type: ignore[operator]
