"""Contract fixtures: a sandbox that records response bodies, checked against Feldera's OpenAPI document."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from openapi_contract import API_KEY, assert_conforms, checked_sandbox

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_checkpoint_sync.testing import FelderaSandbox


@pytest.fixture
def sandbox() -> Iterator[FelderaSandbox]:
    """An authenticated enterprise sandbox; every response it sent must match the OpenAPI document."""
    with checked_sandbox(api_key=API_KEY) as sandbox:
        yield sandbox
        assert_conforms(sandbox)
