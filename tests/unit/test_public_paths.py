"""Import paths that the docs and examples named before classes moved keep working (re-exports)."""

from __future__ import annotations

import importlib

import pytest

PATHS = [
    ("airflow_checkpoint_sync.hooks.buckets", "bucket_credentials", "hooks.bucket_credentials"),
    ("airflow_checkpoint_sync.hooks.buckets", "BucketCredentialsError", "hooks.bucket_credentials"),
    ("airflow_checkpoint_sync.hooks.feldera_api", "RetryPolicy", "hooks.feldera_api"),
    ("airflow_checkpoint_sync.hooks.feldera_api", "FelderaApiError", "exceptions"),
    ("airflow_checkpoint_sync.hooks.feldera_api", "FelderaConnectionError", "exceptions"),
    ("airflow_checkpoint_sync.hooks.feldera", "FelderaConnectionConfigError", "exceptions"),
]


@pytest.mark.parametrize(("module", "name", "home"), PATHS, ids=[f"{m}.{n}" for m, n, _ in PATHS])
def test_an_old_path_reaches_the_class_in_its_new_home(module: str, name: str, home: str) -> None:
    old = getattr(importlib.import_module(module), name)
    assert old.__module__ == f"airflow_checkpoint_sync.{home}"
