"""How Feldera failures become Airflow task failures: final ones are not retried, transient ones are."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

if TYPE_CHECKING:
    from airflow_checkpoint_sync.hooks.feldera_api import FelderaApiError


#: Feldera's pipeline name rule (NameDoesNotMatchPattern).
PIPELINE_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_]*)?[A-Za-z0-9]$")


def task_failure(error: FelderaApiError, action: str, pipeline_name: str) -> AirflowException:
    """The Airflow exception for ``error`` while doing ``action`` on ``pipeline_name``.

    Wrong key, unknown pipeline, community edition and rejected requests are final (``AirflowFailException``): a
    retry would fail the same way. Connection trouble and server-side hiccups are plain ``AirflowException``, so
    the task's own retries apply.
    """
    from airflow_checkpoint_sync.hooks.feldera_api import FelderaConnectionError

    prefix = f"Feldera: {action} on pipeline '{pipeline_name}' failed"
    if isinstance(error, FelderaConnectionError):
        if error.tls:
            return AirflowFailException(
                f"{prefix}: {error.message}. Set the connection's 'verify' extra to the CA bundle of the server."
            )
        return AirflowException(f"{prefix}: {error}")
    if error.status == 401:
        return AirflowFailException(f"{prefix}: the API key was rejected (HTTP 401). Check the connection's password.")
    if error.status == 403:
        return AirflowFailException(f"{prefix}: the API key may not do this (HTTP 403); it needs the write role.")
    if error.error_code == "UnknownPipelineName":
        return AirflowFailException(f"{prefix}: there is no pipeline named '{pipeline_name}'.")
    if error.status == 501 or error.error_code == "EnterpriseFeature":
        return AirflowFailException(
            f"{prefix}: this is Feldera's community edition; checkpoint sync, standby and activation need "
            f"Feldera Enterprise ({error.message})"
        )
    if error.status is not None and 400 <= error.status < 500 and error.status not in (408, 429):
        return AirflowFailException(f"{prefix}: {error}")
    return AirflowException(f"{prefix}: {error}")


def check_pipeline_name(value: object, parameter: str = "pipeline_name") -> str:
    """The pipeline name, or a final failure that names the parameter and Feldera's rule."""
    if not isinstance(value, str) or not PIPELINE_NAME.match(value):
        raise AirflowFailException(
            f"{parameter}={value!r} is not a Feldera pipeline name: use letters, digits, '-' and '_', starting and "
            "ending with a letter or digit"
        )
    return value


def check_positive_seconds(value: object, parameter: str) -> float:
    """Seconds from a number or a timedelta, or a final failure that names the parameter."""
    seconds = value.total_seconds() if isinstance(value, dt.timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise AirflowFailException(f"{parameter}={value!r} is not valid: expected a positive number of seconds")
    return float(seconds)


def wait_settings(poll_interval: Any, timeout: Any) -> tuple[Any, Any]:
    """``poll_interval`` and ``timeout`` as given, once both are valid: checked when the DAG is parsed, where its
    author sees the error first (they are not templated, so nothing later can fix them)."""
    check_positive_seconds(poll_interval, "poll_interval")
    check_positive_seconds(timeout, "timeout")
    return poll_interval, timeout
