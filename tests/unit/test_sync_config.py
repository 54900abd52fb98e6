"""SyncConfig's bounds and the merge rule (with a property test over random runtime configs)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_checkpoint_sync.exceptions import SyncConfigError
from airflow_checkpoint_sync.rules.sync_config import SyncConfig, current_sync, merge_sync_config

UUID7 = "01a216d5-781d-7000-ac06-4bdf123181e6"


def test_minimal_config_serialises_only_what_was_set() -> None:
    assert SyncConfig(bucket="b/prefix").to_dict() == {"bucket": "b/prefix"}
    full = SyncConfig(
        bucket="b/p",
        endpoint="http://127.0.0.1:9000",
        region="eu-west-1",
        provider="Minio",
        access_key="AK",
        secret_key="SK",
        start_from_checkpoint=UUID7,
        fail_if_no_checkpoint=True,
        pull_interval=5,
        push_interval=300,
        retention_min_count=3,
        retention_min_age=7,
        read_bucket="other/p",
        transfers=4,
        checkers=8,
        ignore_checksum=True,
        multi_thread_streams=2,
        multi_thread_cutoff="1G",
        upload_concurrency=5,
        optimize_download_resources=False,
        flags=["--s3-server-side-encryption", "aws:kms"][:1],
    )
    assert full.to_dict()["flags"] == ["--s3-server-side-encryption"]
    assert full.redacted()["secret_key"] == "***" and full.redacted()["access_key"] == "***"
    assert "SK" not in repr(full)
    assert SyncConfig.from_dict(full.to_dict()) == full


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"bucket": ""}, "bucket", "required"),
        ({"bucket": "s3://b/p"}, "bucket", "without a URL scheme"),
        ({"bucket": "/b"}, "bucket", "bucket name"),
        ({"bucket": "b p"}, "bucket", "bucket name"),
        ({"read_bucket": "b/p/"}, "read_bucket", "different location"),
        ({"read_bucket": "s3://x"}, "read_bucket", "without a URL scheme"),
        ({"endpoint": "127.0.0.1:9000"}, "endpoint", "http:// or https://"),
        ({"region": " "}, "region", "non-empty"),
        ({"provider": ""}, "provider", "non-empty"),
        ({"access_key": "AK"}, "secret_key", "both"),
        ({"secret_key": "SK"}, "access_key", "both"),
        ({"start_from_checkpoint": "newest"}, "start_from_checkpoint", "'latest' or a checkpoint uuid"),
        ({"start_from_checkpoint": UUID7.upper()}, "start_from_checkpoint", "lower-case"),
        ({"standby": True}, "standby", "initial='standby'"),
        ({"fail_if_no_checkpoint": "yes"}, "fail_if_no_checkpoint", "true or false"),
        ({"pull_interval": 0}, "pull_interval", "from 1 to"),
        ({"pull_interval": 2.5}, "pull_interval", "whole number"),
        ({"push_interval": True}, "push_interval", "whole number"),
        ({"push_interval": 0}, "push_interval", "from 1 to"),
        ({"retention_min_count": -1}, "retention_min_count", "from 0 to 4294967295"),
        ({"retention_min_age": 2**32}, "retention_min_age", "days"),
        ({"transfers": 0}, "transfers", "from 1 to 255"),
        ({"checkers": 256}, "checkers", "from 1 to 255"),
        ({"multi_thread_streams": 300}, "multi_thread_streams", "255"),
        ({"upload_concurrency": 0}, "upload_concurrency", "255"),
        ({"multi_thread_cutoff": "100MB"}, "multi_thread_cutoff", "suffix k, M, G or T"),
        ({"multi_thread_cutoff": 100}, "multi_thread_cutoff", "a size"),
        ({"flags": "--fast-list"}, "flags", "list of rclone flags"),
        ({"flags": ["fast-list"]}, "flags", "starting with '--'"),
        ({"ignore_checksum": 1}, "ignore_checksum", "true or false"),
    ],
)
def test_each_field_is_bounded_and_the_message_names_it(changes: dict[str, Any], field: str, fragment: str) -> None:
    values = {"bucket": "b/p", **changes}
    with pytest.raises(SyncConfigError) as bad:
        SyncConfig(**values)
    assert bad.value.field == field
    assert str(bad.value).startswith(f"{field}=") and fragment in str(bad.value)


def test_secrets_never_appear_in_errors() -> None:
    with pytest.raises(SyncConfigError) as bad:
        SyncConfig(bucket="b", secret_key="very-secret-value")
    assert "very-secret-value" not in str(bad.value)


def test_limits_are_inclusive() -> None:
    SyncConfig(
        bucket="b",
        pull_interval=1,
        retention_min_count=0,
        retention_min_age=0,
        transfers=1,
        checkers=255,
        start_from_checkpoint="latest",
        multi_thread_cutoff="0.5k",
    )


def test_from_dict_refuses_unknown_keys() -> None:
    with pytest.raises(SyncConfigError, match="not a Feldera sync setting"):
        SyncConfig.from_dict({"bucket": "b", "buckets": "typo"})
    with pytest.raises(SyncConfigError, match="bucket"):
        SyncConfig.from_dict({"endpoint": "http://x"})


def test_merge_replaces_only_the_sync_block() -> None:
    original = {
        "workers": 4,
        "fault_tolerance": {"model": "at_least_once", "checkpoint_interval_secs": 120},
        "storage": {
            "backend": {"name": "file", "config": {"async_threads": True, "sync": {"bucket": "old"}}},
            "cache_mib": 512,
            "future_field": [1, 2],
        },
        "from_a_newer_feldera": {"x": None},
    }
    snapshot = copy.deepcopy(original)
    merged = merge_sync_config(original, SyncConfig(bucket="new/p", push_interval=60))
    assert original == snapshot  # input untouched
    assert merged.changed
    assert current_sync(merged.runtime_config) == {"bucket": "new/p", "push_interval": 60}
    expected = copy.deepcopy(original)
    expected["storage"]["backend"]["config"]["sync"] = {"bucket": "new/p", "push_interval": 60}
    assert merged.runtime_config == expected
    assert merged.warnings and "shorter than the fault-tolerance checkpoint interval (120s)" in merged.warnings[0]
    again = merge_sync_config(merged.runtime_config, SyncConfig(bucket="new/p", push_interval=60))
    assert not again.changed and again.runtime_config == merged.runtime_config


def test_merge_turns_default_storage_into_file_and_refuses_object() -> None:
    merged = merge_sync_config(
        {"storage": {"backend": {"name": "default"}, "compression": "snappy"}}, SyncConfig(bucket="b")
    )
    assert merged.runtime_config["storage"] == {
        "backend": {"name": "file", "config": {"sync": {"bucket": "b"}}},
        "compression": "snappy",
    }
    assert merge_sync_config({"storage": None}, SyncConfig(bucket="b")).runtime_config["storage"] == {
        "backend": {"name": "file", "config": {"sync": {"bucket": "b"}}}
    }
    assert merge_sync_config({}, SyncConfig(bucket="b")).runtime_config["storage"]["backend"]["name"] == "file"
    with pytest.raises(SyncConfigError, match="'object' backend has no sync"):
        merge_sync_config(
            {"storage": {"backend": {"name": "object", "config": {"url": "s3://x"}}}}, SyncConfig(bucket="b")
        )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=12,
)
backends = st.one_of(
    st.just({"name": "default"}),
    st.fixed_dictionaries(
        {
            "name": st.just("file"),
            "config": st.dictionaries(st.sampled_from(["async_threads", "ioop_delay", "new"]), json_values, max_size=3),
        }
    ),
)
runtime_configs = st.fixed_dictionaries(
    {
        "storage": st.fixed_dictionaries(
            {"backend": backends},
            optional={"cache_mib": json_values, "compression": json_values, "unknown_storage_key": json_values},
        )
    },
    optional={
        "workers": json_values,
        "fault_tolerance": json_values,
        "resources": json_values,
        "newer_field": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(
    runtime_configs,
    st.sampled_from([SyncConfig(bucket="b/p"), SyncConfig(bucket="x", push_interval=5, read_bucket="y")]),
)
def test_random_runtime_configs_keep_every_field_but_the_sync_block(config: dict[str, Any], sync: SyncConfig) -> None:
    before = json.dumps(config, sort_keys=True)
    merged = merge_sync_config(config, sync).runtime_config
    assert json.dumps(config, sort_keys=True) == before
    assert current_sync(merged) == sync.to_dict()
    # Remove what the merge was allowed to change; everything else must be identical byte for byte.
    stripped = copy.deepcopy(merged)
    backend = stripped["storage"]["backend"]
    del backend["config"]["sync"]
    original = copy.deepcopy(config)
    if original["storage"]["backend"]["name"] == "default":
        original["storage"]["backend"] = {"name": "file", "config": {}}
    else:
        original["storage"]["backend"]["config"].pop("sync", None)
    assert json.dumps(stripped, sort_keys=True) == json.dumps(original, sort_keys=True)


def test_configs_are_compared_by_meaning_as_feldera_returns_them_normalized() -> None:
    from airflow_checkpoint_sync.rules.sync_config import EFFECTIVE_DEFAULTS

    written = SyncConfig.from_dict({"bucket": "b/p/", "retention_min_count": 3})
    # What Feldera returns for it: every field, the optional ones null, the rest their defaults.
    normalized = {name: None for name in EFFECTIVE_DEFAULTS} | {
        "bucket": "b/p",
        "retention_min_count": 3,
        "retention_min_age": 30,
        "pull_interval": 10,
        "fail_if_no_checkpoint": False,
        "standby": False,
        "optimize_download_resources": True,
    }
    runtime = {"workers": 4, "storage": {"backend": {"name": "file", "config": {"sync": normalized}}}}
    assert merge_sync_config(runtime, written).changed is False
    same = SyncConfig.from_dict({"bucket": "b/p", "retention_min_count": 3, "transfers": 20})  # 20 is the default
    assert merge_sync_config(runtime, same).changed is False
    assert merge_sync_config(runtime, SyncConfig.from_dict({"bucket": "b/p", "retention_min_count": 4})).changed
    assert merge_sync_config(runtime, SyncConfig.from_dict({"bucket": "b/q", "retention_min_count": 3})).changed
