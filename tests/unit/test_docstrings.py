"""Every public operator and sensor documents every parameter (the docs are built from these docstrings)."""

from __future__ import annotations

import inspect

import pytest

from airflow_checkpoint_sync.operators.checkpoint import SyncCheckpointOperator
from airflow_checkpoint_sync.operators.configure import ConfigureCheckpointSyncOperator
from airflow_checkpoint_sync.operators.replicate import ReplicateCheckpointsOperator
from airflow_checkpoint_sync.operators.restore import RestoreCheckpointOperator
from airflow_checkpoint_sync.operators.standby import ActivateStandbyOperator, FailoverReadinessOperator
from airflow_checkpoint_sync.rules.sync_config import SyncConfig
from airflow_checkpoint_sync.sensors.checkpoint import CheckpointStatusSensor
from airflow_checkpoint_sync.sensors.freshness import CheckpointFreshnessSensor
from airflow_checkpoint_sync.triggers.checkpoint import CheckpointSyncTrigger
from airflow_checkpoint_sync.triggers.freshness import CheckpointFreshnessTrigger
from airflow_checkpoint_sync.triggers.pipeline import PipelineStatusTrigger
from airflow_checkpoint_sync.triggers.remote_checkpoints import RemoteCheckpointTrigger

PUBLIC = [
    SyncCheckpointOperator,
    CheckpointStatusSensor,
    CheckpointFreshnessSensor,
    ConfigureCheckpointSyncOperator,
    RestoreCheckpointOperator,
    ActivateStandbyOperator,
    FailoverReadinessOperator,
    ReplicateCheckpointsOperator,
    SyncConfig,
    CheckpointSyncTrigger,
    CheckpointFreshnessTrigger,
    PipelineStatusTrigger,
    RemoteCheckpointTrigger,
]
OURS = "airflow_checkpoint_sync"


def own_parameters(cls: type) -> set[str]:
    """Keyword parameters that this provider's classes (not Airflow's) add, along the MRO."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith(OURS) or "__init__" not in vars(klass):
            continue
        for name, param in inspect.signature(klass.__init__).parameters.items():
            if name != "self" and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                names.add(name)
    return names


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda c: c.__name__)
def test_every_parameter_is_documented(cls: type) -> None:
    documented = "".join(k.__doc__ or "" for k in cls.__mro__ if k.__module__.startswith(OURS))
    missing = sorted(p for p in own_parameters(cls) if f":param {p}:" not in documented)
    assert missing == [], f"{cls.__name__} does not document {missing}"
    assert cls.__doc__ and cls.__doc__.strip()
