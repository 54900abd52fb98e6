"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_checkpoint_sync import __version__


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow's ProvidersManager; ``package-name`` is the distribution name."""
    return {
        "package-name": "airflow-checkpoint-sync",
        "name": "Feldera checkpoint sync",
        "description": "Feldera checkpoint sync for Apache Airflow: sync, restore, standby and failover as tasks.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Feldera",
                "external-doc-url": "https://docs.feldera.com/pipelines/checkpoint-sync",
                "tags": ["software"],
            }
        ],
    }
