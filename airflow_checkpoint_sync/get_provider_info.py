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
        "hooks": [
            {"integration-name": "Feldera", "python-modules": ["airflow_checkpoint_sync.hooks.feldera"]},
        ],
        "operators": [
            {
                "integration-name": "Feldera",
                "python-modules": [
                    "airflow_checkpoint_sync.operators.checkpoint",
                    "airflow_checkpoint_sync.operators.configure",
                    "airflow_checkpoint_sync.operators.drill",
                    "airflow_checkpoint_sync.operators.replicate",
                    "airflow_checkpoint_sync.operators.restore",
                    "airflow_checkpoint_sync.operators.standby",
                    "airflow_checkpoint_sync.operators.verify",
                ],
            },
        ],
        "sensors": [
            {
                "integration-name": "Feldera",
                "python-modules": [
                    "airflow_checkpoint_sync.sensors.checkpoint",
                    "airflow_checkpoint_sync.sensors.freshness",
                ],
            },
        ],
        "triggers": [
            {
                "integration-name": "Feldera",
                "python-modules": [
                    "airflow_checkpoint_sync.triggers.checkpoint",
                    "airflow_checkpoint_sync.triggers.freshness",
                    "airflow_checkpoint_sync.triggers.pipeline",
                    "airflow_checkpoint_sync.triggers.remote_checkpoints",
                ],
            },
        ],
        "extra-links": ["airflow_checkpoint_sync.links.FelderaPipelineLink"],
        "config": {
            "feldera": {
                "description": "Settings of the Feldera checkpoint-sync provider.\n",
                "options": {
                    "preload_in_dag_processor": {
                        "description": "Import the provider's operator, sensor and asset-watcher modules once in "
                        "the DAG processor, before it forks a parser per DAG file, instead of in every parse "
                        "(airflow_checkpoint_sync.dag_processor_preload).\n",
                        "version_added": None,
                        "type": "boolean",
                        "example": "False",
                        "default": "True",
                    },
                },
            },
        },
        "asset-uris": [
            {
                "schemes": ["feldera"],
                "handler": "airflow_checkpoint_sync.assets.sanitize_uri",
                "factory": "airflow_checkpoint_sync.assets.create_asset",
            },
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_checkpoint_sync.hooks.feldera.FelderaHook",
                "connection-type": "feldera",
                "hook-name": "Feldera",
                "ui-field-behaviour": {
                    "hidden-fields": ["login", "schema", "port"],
                    "relabeling": {"host": "Feldera API URL", "password": "API key"},
                    "placeholders": {
                        "host": "https://feldera.example.com",
                        "password": "apikey:...",
                        "extra": '{"verify": true, "timeout": 30}',
                    },
                },
                "conn-fields": {
                    "verify": {
                        "label": "Verify TLS",
                        "description": "true, false, or the path of a CA bundle that signed the server's certificate",
                        # One string: a union with boolean makes the form show a multi-line JSON box.
                        "schema": {"type": ["string", "null"], "default": "true"},
                    },
                    "timeout": {
                        "label": "Request timeout (seconds)",
                        "schema": {"type": ["number", "null"], "minimum": 0, "default": 30},
                    },
                    "tenant": {
                        "label": "Tenant",
                        "description": "sent as the Feldera-Tenant header (multi-tenant Feldera)",
                        "schema": {"type": ["string", "null"]},
                    },
                    "console_url": {
                        "label": "Web console URL",
                        "description": "for the 'Feldera pipeline' link; defaults to the API URL",
                        "schema": {"type": ["string", "null"], "format": "url"},
                    },
                },
            }
        ],
    }
