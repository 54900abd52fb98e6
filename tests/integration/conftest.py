"""The sandbox fixture most integration tests share (test files with other needs define their own ``feldera``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from airflow_support import feldera_connection
from feldera_setup import Feldera

from airflow_checkpoint_sync.testing import FelderaSandbox, MotoS3Server

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def feldera(
    airflow_db: str, moto_s3: MotoS3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Feldera]:
    """A fresh sandbox (no API key) behind ``feldera_default``, with moto and a new bucket."""
    with FelderaSandbox() as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(sandbox.url))
        yield Feldera(sandbox, moto_s3, s3_bucket)
