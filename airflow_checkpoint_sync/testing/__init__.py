"""The Feldera sandbox: a faithful double of Feldera's pipeline-manager API (enterprise checkpoint sync included).

Use it to test DAGs without a Feldera Enterprise cluster::

    from airflow_checkpoint_sync.testing import FelderaSandbox, MotoS3Server

    with MotoS3Server() as s3, FelderaSandbox(api_key="apikey:...") as feldera:
        ...  # point a `feldera` connection at feldera.url and a bucket at s3.url

The pytest plugin (installed with the package) offers the same as fixtures: ``feldera_sandbox`` and ``moto_s3``.
:class:`HostileFeldera` (fixture ``hostile_feldera``) answers as a broken server or a proxy would instead.

This package imports nothing from the rest of the provider: it is an independent model of Feldera, so a
misunderstanding in the provider cannot be mirrored here and pass unnoticed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .control import SandboxControl
    from .emulators import AzuriteServer, GcsEmulatorServer
    from .hostile import HostileFeldera
    from .moto_server import MotoS3Server
    from .server import FelderaSandbox
    from .settings import Timings, production_timings

__all__ = [
    "AzuriteServer",
    "FelderaSandbox",
    "GcsEmulatorServer",
    "HostileFeldera",
    "MotoS3Server",
    "SandboxControl",
    "Timings",
    "production_timings",
]

_EXPORTS = {
    "AzuriteServer": "emulators",
    "GcsEmulatorServer": "emulators",
    "FelderaSandbox": "server",
    "HostileFeldera": "hostile",
    "MotoS3Server": "moto_server",
    "SandboxControl": "control",
    "Timings": "settings",
    "production_timings": "settings",
}


def __getattr__(name: str) -> Any:
    # Lazy: the pytest plugin imports this package in every test session, and uvicorn, FastAPI and boto3 are only
    # worth loading when a sandbox is actually used.
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(name)
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
