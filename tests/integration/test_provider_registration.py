"""The provider as Airflow's CLI sees it: registered, with its hook, link, trigger and connection type."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from airflow_checkpoint_sync import __version__
from airflow_checkpoint_sync.get_provider_info import get_provider_info
from airflow_checkpoint_sync.hooks.connection import settings_from_connection


def airflow(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args], capture_output=True, text=True, env=os.environ, timeout=180
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def airflow_json(*args: str) -> Any:
    """The JSON an ``-o json`` command prints (Airflow may log lines to stdout before it)."""
    out = airflow(*args, "-o", "json")
    return json.loads(out[min(i for i in (out.find("["), out.find("{")) if i >= 0) :])


def test_cli_lists_the_provider_and_its_parts(airflow_db: str) -> None:
    providers = airflow_json("providers", "list")
    ours = next(p for p in providers if p["package_name"] == "airflow-checkpoint-sync")
    assert ours["version"] == __version__
    hooks = airflow_json("providers", "hooks")
    feldera = next(h for h in hooks if h["connection_type"] == "feldera")
    assert feldera["class"] == "airflow_checkpoint_sync.hooks.feldera.FelderaHook"
    assert feldera["conn_id_attribute_name"] == "feldera_conn_id"
    assert "airflow_checkpoint_sync.links.FelderaPipelineLink" in airflow("providers", "links")
    assert "airflow_checkpoint_sync.triggers.checkpoint" in airflow("providers", "triggers")


def test_cli_adds_a_feldera_connection(airflow_db: str) -> None:
    airflow(
        "connections",
        "add",
        "feldera_cli_test",
        "--conn-type",
        "feldera",
        "--conn-host",
        "https://feldera.example",
        "--conn-password",
        "apikey:cli-secret-value",
        "--conn-extra",
        '{"verify": false, "timeout": 12}',
    )
    stored = airflow_json("connections", "get", "feldera_cli_test")[0]
    assert (stored["conn_type"], stored["host"]) == ("feldera", "https://feldera.example")
    # The CLI's JSON output turns extras into strings; the hook reads either spelling.
    settings = settings_from_connection(
        "feldera_cli_test", host=stored["host"], port=None, schema=None, password="x", extra=stored["extra_dejson"]
    )
    assert (settings.verify, settings.timeout) == (False, 12.0)


def test_provider_info_declares_the_connection_form() -> None:
    info = get_provider_info()
    (connection,) = info["connection-types"]
    assert connection["connection-type"] == "feldera"
    assert set(connection["conn-fields"]) == {"verify", "timeout", "tenant", "console_url"}
    assert connection["ui-field-behaviour"]["relabeling"]["password"] == "API key"
