"""Small helpers shared by the tests (not part of the provider)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_checkpoint_sync.testing import MotoS3Server

T = TypeVar("T")

PROGRAM = """
CREATE TABLE orders (id INT NOT NULL PRIMARY KEY, amount DOUBLE);
CREATE MATERIALIZED VIEW order_count AS SELECT COUNT(*) AS n FROM orders;
"""


def sync_config(s3: MotoS3Server, bucket: str, prefix: str, **extra: Any) -> dict[str, Any]:
    """A Feldera sync block for ``bucket/prefix`` on the moto server, with its keys."""
    return {
        "bucket": f"{bucket}/{prefix}",
        "endpoint": s3.url,
        "region": "us-east-1",
        "provider": "Other",
        "access_key": s3.access_key,
        "secret_key": s3.secret_key,
        **extra,
    }


def file_storage(sync: dict[str, Any] | None) -> dict[str, Any]:
    """A runtime_config ``storage`` value: the file backend, with ``sync`` when given."""
    config = {"sync": sync} if sync is not None else {}
    return {"backend": {"name": "file", "config": config}}


def wait_until(read: Callable[[], T], done: Callable[[T], bool], timeout: float = 20.0, every: float = 0.05) -> T:
    """Poll ``read`` until ``done`` holds for its value; fail with the last value seen after ``timeout``."""
    deadline = time.monotonic() + timeout
    value = read()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s; last value: {value!r}")
        time.sleep(every)
        value = read()
    return value
