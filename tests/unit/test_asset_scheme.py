"""The provider's ``feldera://`` asset URI scheme, through Airflow's own Asset sanitizing."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from airflow_checkpoint_sync.assets import create_asset, sanitize_uri


def test_airflow_sanitizes_feldera_assets_with_the_providers_handler() -> None:
    from airflow.sdk import Asset

    asset = Asset("FELDERA://Feldera.Example.COM:8080//prod/checkpoints/")
    assert asset.uri == "feldera://feldera.example.com:8080/prod/checkpoints"
    with pytest.raises(ValueError, match="first path segment of a feldera:// asset URI is the pipeline name"):
        Asset("feldera://feldera.example.com/not a name/checkpoints")
    with pytest.raises(ValueError, match="names the Feldera host"):
        Asset("feldera:///prod")


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("feldera://host", "pipeline name"),
        ("feldera://host/-prod", "pipeline name"),
        ("feldera://host/prod?x=1", "no query or fragment"),
        ("feldera:///prod/checkpoints", "names the Feldera host"),
    ],
)
def test_the_handler_refuses_what_names_no_pipeline_on_no_host(uri: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        sanitize_uri(urlsplit(uri))


def test_the_factory_makes_the_sanitized_asset() -> None:
    asset = create_asset(host="Feldera.example.com", pipeline="prod", what="failovers", extra={"team": "dr"})
    assert asset.uri == "feldera://feldera.example.com/prod/failovers"
    assert asset.extra == {"team": "dr"}


def test_the_scheme_is_registered_in_the_provider_info() -> None:
    from airflow_checkpoint_sync.get_provider_info import get_provider_info

    (entry,) = get_provider_info()["asset-uris"]
    assert entry == {
        "schemes": ["feldera"],
        "handler": "airflow_checkpoint_sync.assets.sanitize_uri",
        "factory": "airflow_checkpoint_sync.assets.create_asset",
    }
