"""Load the provider's task classes into Airflow's DAG processor once, before it forks a parser per DAG file.

Airflow's DAG processor parses each file in a child forked from one long-lived parent, and pre-imports into that
parent only the ``airflow.*`` modules a file names (``[dag_processor] parsing_pre_import_modules``). Anything else
a DAG file imports, this provider included, would be imported again by every parse, every file, every
``min_file_process_interval``. So the distribution registers this module under Airflow's ``airflow.policy`` entry
point, which every Airflow process loads while Airflow starts (``settings.load_policy_plugins``): in the DAG
processor, and only there, it imports the modules DAG files use, and the parsers inherit them from the fork.

It defines no cluster policy. Elsewhere it does nothing and costs an entry point's import. A failure to import is
logged and never stops Airflow. ``[feldera] preload_in_dag_processor = False`` (or
``AIRFLOW__FELDERA__PRELOAD_IN_DAG_PROCESSOR=False``) turns it off.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

#: Modules a DAG file builds objects from, besides the operators and sensors the provider info lists: the asset
#: watcher's trigger is constructed in the DAG file itself (``AssetWatcher(trigger=...)``).
WATCHER_MODULES = ("airflow_checkpoint_sync.triggers.remote_checkpoints",)


def dag_file_modules() -> list[str]:
    """The provider's modules that DAG files import: operators, sensors (from the provider info) and the watcher."""
    from airflow_checkpoint_sync.get_provider_info import get_provider_info

    info = get_provider_info()
    listed = [module for kind in ("operators", "sensors") for entry in info[kind] for module in entry["python-modules"]]
    return [*listed, *WATCHER_MODULES]


def is_dag_processor(argv: list[str]) -> bool:
    """Whether this process is ``airflow dag-processor`` (also how ``airflow standalone`` starts it)."""
    return argv[1:2] == ["dag-processor"]


def enabled() -> bool:
    """``[feldera] preload_in_dag_processor``, True unless set otherwise."""
    from airflow.configuration import conf

    return conf.getboolean("feldera", "preload_in_dag_processor", fallback=True)


def preload(modules: Iterable[str] | None = None) -> list[str]:
    """Import ``modules`` (by default :func:`dag_file_modules`); return those that failed (each logged, none
    raised)."""
    import importlib
    import logging

    failed = []
    for module in dag_file_modules() if modules is None else modules:
        try:
            importlib.import_module(module)
        except Exception:
            # Airflow is still starting: a provider must never be the reason its DAG processor does not.
            logging.getLogger(__name__).warning("Could not preload %s; DAG files import it when parsed", module)
            failed.append(module)
    return failed


if is_dag_processor(sys.argv) and enabled():
    preload()
