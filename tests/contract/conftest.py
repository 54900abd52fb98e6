"""Contract fixtures: a sandbox that records response bodies, checked against Feldera's OpenAPI document."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from openapi_contract import API_KEY, assert_conforms, checked_sandbox

from airflow_checkpoint_sync.testing.settings import PROFILES

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_checkpoint_sync.testing import FelderaSandbox


@pytest.fixture(params=sorted(PROFILES))
def sandbox(request: pytest.FixtureRequest) -> Iterator[FelderaSandbox]:
    """An authenticated enterprise sandbox, once per version profile; every response it sent must match the OpenAPI
    document, and Feldera's official client must work unchanged against each."""
    with checked_sandbox(api_key=API_KEY, profile=request.param) as sandbox:
        yield sandbox
        assert_conforms(sandbox)
