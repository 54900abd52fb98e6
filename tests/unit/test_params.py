"""Every kind of parameter, one table each: what is accepted (and how it is normalised), and what is refused with
a message that names the parameter, the value and what would be accepted."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from airflow_checkpoint_sync.exceptions import FelderaConfigError, FelderaParameterError
from airflow_checkpoint_sync.rules import params

UUID7 = "0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b"

ACCEPTED: list[tuple[Any, tuple[Any, ...], Any]] = [
    (params.pipeline_name, ("prod",), "prod"),
    (params.pipeline_name, ("a",), "a"),
    (params.pipeline_name, ("prod-1_b",), "prod-1_b"),
    (params.checkpoint_reference, ("latest",), "latest"),
    (params.checkpoint_reference, (UUID7,), UUID7),
    (params.positive_seconds, (5, "timeout"), 5.0),
    (params.positive_seconds, (0.5, "timeout"), 0.5),
    (params.positive_seconds, (dt.timedelta(minutes=2), "timeout"), 120.0),
    (params.optional_positive_seconds, (None, "max_checkpoint_age"), None),
    (params.count, (0, "min_count"), 0),
    (params.count, (32, "max_concurrency", 1, 32), 32),
    (params.optional_count, (None, "min_count"), None),
    (params.flag, (False, "repair"), False),
    (params.choice, ("paused", "initial", ("running", "paused")), "paused"),
    (params.wait_settings, (dt.timedelta(seconds=2), 60), (2.0, 60.0)),
    (params.max_concurrency, (8,), 8),
]

REFUSED: list[tuple[Any, tuple[Any, ...], str]] = [
    (params.pipeline_name, ("-prod",), "pipeline_name='-prod' is not valid: a Feldera pipeline name"),
    (params.pipeline_name, ("prod ", "primary_pipeline_name"), "primary_pipeline_name='prod ' is not valid"),
    (params.pipeline_name, (None,), "pipeline_name=None is not valid"),
    (params.pipeline_name, ("",), "pipeline_name='' is not valid"),
    (params.checkpoint_reference, ("newest",), "checkpoint='newest' is not valid: 'latest' or a checkpoint uuid"),
    (params.checkpoint_reference, (UUID7.upper(),), "is not valid: 'latest' or a checkpoint uuid"),
    (params.checkpoint_reference, ("0192f3c4-5d6e-4f80-9a1b-2c3d4e5f6a7b",), "a UUIDv7"),  # a v4
    (params.positive_seconds, (0, "timeout"), "timeout=0 is not valid: a positive number of seconds"),
    (params.positive_seconds, (-1, "poll_interval"), "poll_interval=-1 is not valid"),
    (params.positive_seconds, (True, "timeout"), "timeout=True is not valid"),
    (params.positive_seconds, ("60", "timeout"), "timeout='60' is not valid"),
    (params.positive_seconds, (float("nan"), "timeout"), "timeout=nan is not valid"),
    (params.positive_seconds, (float("inf"), "timeout"), "timeout=inf is not valid"),
    (params.positive_seconds, (dt.timedelta(0), "timeout"), "is not valid: a positive number of seconds"),
    (params.count, (-1, "min_count"), "min_count=-1 is not valid: a whole number, 0 or more"),
    (params.count, (1.5, "min_count"), "min_count=1.5 is not valid"),
    (params.count, (False, "min_count"), "min_count=False is not valid"),
    (params.max_concurrency, (0,), "max_concurrency=0 is not valid: a whole number from 1 to 32"),
    (params.max_concurrency, (33,), "max_concurrency=33 is not valid: a whole number from 1 to 32"),
    (params.flag, ("false", "repair"), "repair='false' is not valid: True or False"),
    (params.flag, (None, "repair"), "repair=None is not valid: True or False"),
    (params.choice, ("standby", "initial", ("running", "paused")), "initial='standby' is not valid: 'running' or"),
    (params.wait_settings, (1, 0), "timeout=0 is not valid"),
    (params.wait_settings, (None, 1), "poll_interval=None is not valid"),
]


@pytest.mark.parametrize(("check", "args", "expected"), ACCEPTED, ids=lambda v: getattr(v, "__name__", None))
def test_an_accepted_value_comes_back_normalised(check: Any, args: tuple[Any, ...], expected: Any) -> None:
    assert check(*args) == expected


@pytest.mark.parametrize(("check", "args", "message"), REFUSED, ids=lambda v: getattr(v, "__name__", None))
def test_a_refused_value_names_the_parameter_the_value_and_what_is_accepted(
    check: Any, args: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(FelderaParameterError, match=None) as raised:
        check(*args)
    assert message in str(raised.value)
    # One type for every bad parameter: a ValueError when a DAG is parsed, FINAL in a task.
    assert isinstance(raised.value, FelderaConfigError) and isinstance(raised.value, ValueError)


def test_a_secret_value_is_never_shown() -> None:
    error = FelderaParameterError("secret_key", "s3cr3t-value", "a non-empty string", secret=True)
    assert "s3cr3t-value" not in str(error) and "secret_key=*** is not valid" in str(error)
