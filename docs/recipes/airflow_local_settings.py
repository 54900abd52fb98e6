"""airflow_local_settings.py: import the Feldera provider's task classes once per Airflow process.

Airflow imports this file when any of its processes starts. The DAG processor forks one child per DAG file to parse
from a parent that has run it, so the provider's operator modules are then loaded once, not on every parse: the same
treatment Airflow gives the ``airflow.*`` modules a DAG file imports (``[dag_processor] parsing_pre_import_modules``).
"""


def _preimport_feldera_provider() -> None:
    import importlib

    for module in (
        "airflow_checkpoint_sync.operators.checkpoint",
        "airflow_checkpoint_sync.operators.configure",
        "airflow_checkpoint_sync.operators.drill",
        "airflow_checkpoint_sync.operators.replicate",
        "airflow_checkpoint_sync.operators.restore",
        "airflow_checkpoint_sync.operators.standby",
        "airflow_checkpoint_sync.operators.verify",
        "airflow_checkpoint_sync.sensors.checkpoint",
        "airflow_checkpoint_sync.sensors.freshness",
        # The asset watcher's trigger, built in the DAG file itself (AssetWatcher(trigger=...)).
        "airflow_checkpoint_sync.triggers.remote_checkpoints",
    ):
        importlib.import_module(module)


_preimport_feldera_provider()
# Airflow copies this file's public names into airflow.settings: leave none behind.
del _preimport_feldera_provider
