"""Importing the provider's task classes, as DAG parsing does, loads no cloud SDK."""

from __future__ import annotations

import subprocess
import sys

CLOUD_SDK_PREFIXES = ("boto3", "botocore", "aiobotocore", "google", "azure", "moto")


def test_importing_operators_and_sensor_loads_no_cloud_sdk() -> None:
    # Measured against what airflow.sdk alone loads (it already imports the empty `google` namespace package).
    code = (
        "import sys\n"
        "import airflow.sdk\n"
        "baseline = set(sys.modules)\n"
        "import airflow_checkpoint_sync.operators.checkpoint, airflow_checkpoint_sync.sensors.checkpoint\n"
        "print('\\n'.join(sorted(set(sys.modules) - baseline)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    added = result.stdout.split()
    assert "airflow_checkpoint_sync.operators.checkpoint" in added
    assert [m for m in added if m.split(".")[0] in CLOUD_SDK_PREFIXES] == []
    assert "airflow_checkpoint_sync.hooks.feldera" not in added  # the hook (httpx) loads at run time only
