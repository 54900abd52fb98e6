"""Every kind of parameter the provider accepts, checked once: pipeline names, checkpoint references, seconds,
counts and flags.

Pure: each check returns the value it accepts (normalised: seconds as a float) or raises
:class:`~airflow_checkpoint_sync.exceptions.FelderaParameterError`, which names the parameter, the value and what
would be accepted. When a DAG is parsed that is a ``ValueError`` its author sees as an import error; in a task the
task layer's translator turns it into a final failure. The same check serves both, so a value is never accepted
at parse time and refused at run time, or the other way round.
"""

from __future__ import annotations

import datetime as dt
import math
import re

from airflow_checkpoint_sync.exceptions import FelderaParameterError
from airflow_checkpoint_sync.rules.status import is_checkpoint_uuid, is_uuid

#: Feldera's pipeline name rule (NameDoesNotMatchPattern).
PIPELINE_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_]*)?[A-Za-z0-9]$")
PIPELINE_NAME_FORM = "a Feldera pipeline name: letters, digits, '-' and '_', starting and ending with a letter or digit"
#: The newest synced checkpoint, as Feldera's ``start_from_checkpoint`` spells it.
LATEST = "latest"
#: What a checkpoint uuid is, in words.
CHECKPOINT_UUID_FORM = "a checkpoint uuid (a UUIDv7 in lower case, as Feldera makes them)"
#: What a checkpoint reference may be, in words.
CHECKPOINT_REFERENCE = f"'latest' or {CHECKPOINT_UUID_FORM}"


def pipeline_name(value: object, parameter: str = "pipeline_name") -> str:
    """``value`` if it is a name Feldera accepts for a pipeline."""
    if not isinstance(value, str) or not PIPELINE_NAME.match(value):
        raise FelderaParameterError(
            parameter,
            value,
            "a Feldera pipeline name: letters, digits, '-' and '_', starting and ending with a letter or digit",
        )
    return value


def conn_id(value: object, parameter: str) -> str:
    """``value`` if it can be the id of an Airflow connection (a non-empty string)."""
    if not isinstance(value, str) or not value.strip():
        raise FelderaParameterError(parameter, value, "the id of an Airflow connection")
    return value


def checkpoint_uuid(value: object, parameter: str = "checkpoint_uuid") -> str:
    """``value`` if it is a checkpoint uuid (a UUIDv7, lower case)."""
    if not isinstance(value, str) or not is_checkpoint_uuid(value):
        raise FelderaParameterError(parameter, value, CHECKPOINT_UUID_FORM)
    return value


def optional_uuid(value: object, parameter: str) -> str | None:
    """None (also an XCom template that rendered nothing: ``''`` or ``'None'``), or a uuid in lower case."""
    if value in (None, "", "None"):
        return None
    if not isinstance(value, str) or not is_uuid(value):
        raise FelderaParameterError(parameter, value, "None or a uuid (lower case)")
    return value


def checkpoint_reference(value: object, parameter: str = "checkpoint") -> str:
    """``value`` if it is ``'latest'`` or a checkpoint uuid."""
    if not isinstance(value, str) or not (value == LATEST or is_checkpoint_uuid(value)):
        raise FelderaParameterError(parameter, value, CHECKPOINT_REFERENCE)
    return value


def positive_seconds(value: object, parameter: str) -> float:
    """Seconds from a positive number or timedelta."""
    seconds = value.total_seconds() if isinstance(value, dt.timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds < math.inf:
        raise FelderaParameterError(parameter, value, "a positive number of seconds, or a timedelta")
    return float(seconds)


def optional_positive_seconds(value: object, parameter: str) -> float | None:
    """None, or seconds from a positive number or timedelta."""
    return None if value is None else positive_seconds(value, parameter)


def count(value: object, parameter: str, low: int = 0, high: int | None = None) -> int:
    """``value`` if it is a whole number from ``low`` (to ``high``, when given)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        accepted = f"a whole number from {low} to {high}" if high is not None else f"a whole number, {low} or more"
        raise FelderaParameterError(parameter, value, accepted)
    return value


def optional_count(value: object, parameter: str, low: int = 0, high: int | None = None) -> int | None:
    """None, or a whole number from ``low`` (to ``high``)."""
    return None if value is None else count(value, parameter, low, high)


def flag(value: object, parameter: str) -> bool:
    """``value`` if it is True or False (a string such as ``"false"`` is refused: it would count as true)."""
    if not isinstance(value, bool):
        raise FelderaParameterError(parameter, value, "True or False")
    return value


def choice(value: object, parameter: str, accepted: tuple[str, ...]) -> str:
    """``value`` if it is one of ``accepted``."""
    if not isinstance(value, str) or value not in accepted:
        options = [repr(option) for option in accepted]
        words = options[0] if len(options) == 1 else f"{', '.join(options[:-1])} or {options[-1]}"
        raise FelderaParameterError(parameter, value, words)
    return value


def wait_settings(poll_interval: object, timeout: object) -> tuple[float, float]:
    """``poll_interval`` and ``timeout`` in seconds, both checked."""
    return positive_seconds(poll_interval, "poll_interval"), positive_seconds(timeout, "timeout")


#: The most objects or files a task handles at once: the S3 client's connection pool is sized for it.
MAX_CONCURRENCY = 32


def max_concurrency(value: object) -> int:
    """``max_concurrency`` (objects or files handled at the same time): a whole number from 1 to 32."""
    return count(value, "max_concurrency", 1, MAX_CONCURRENCY)
