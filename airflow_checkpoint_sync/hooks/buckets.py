"""Moved to :mod:`airflow_checkpoint_sync.hooks.bucket_credentials` (it maps connections; it is not a hook)."""

from airflow_checkpoint_sync.hooks.bucket_credentials import (
    BucketCredentials,
    BucketCredentialsError,
    bucket_credentials,
)

__all__ = ["BucketCredentials", "BucketCredentialsError", "bucket_credentials"]
