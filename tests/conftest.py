"""Test-wide settings: nothing may reach a cloud metadata endpoint, and Airflow runs on a throwaway sqlite DB."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("NO_GCE_CHECK", "True")

# Before anything imports airflow: a private AIRFLOW_HOME whose sqlite DB the `airflow_db` fixture migrates.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="acs-airflow-home-")
sys.path.insert(0, os.path.dirname(__file__))
from airflow_support import airflow_env  # noqa: E402

os.environ.update(airflow_env(_AIRFLOW_HOME))


# The end-to-end suite starts a real Airflow deployment of its own: `make e2e` runs it, on its own.
collect_ignore = [] if os.environ.get("ACS_E2E") else ["e2e"]


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """A migrated sqlite metadata DB for dag.test(), created once per session."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, env=os.environ, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return _AIRFLOW_HOME


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)
