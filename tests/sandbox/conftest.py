"""Fixtures for the sandbox's own tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sandbox_api import Api

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_checkpoint_sync.testing import FelderaSandbox


@pytest.fixture
def api(feldera_sandbox: FelderaSandbox) -> Iterator[Api]:
    driver = Api(feldera_sandbox)
    yield driver
    driver.http.close()
