"""One import path per public name: every name the docs and examples import is reachable at its documented path,
and that path is its home (its ``__module__``), not a re-export. The package was never released, so no name has an
old path to keep."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED = re.compile(r"^\.\. auto(?:class|function|exception)::\s+(airflow_checkpoint_sync[\w.]+)\.(\w+)\s*$", re.M)
IMPORTED = re.compile(r"^\s*from (airflow_checkpoint_sync[\w.]*) import ([\w, ]+)$", re.M)


def _named() -> list[tuple[str, str]]:
    names: set[tuple[str, str]] = set()
    for page in (ROOT / "docs").rglob("*.rst"):
        if "_build" not in page.parts:
            names.update(DOCUMENTED.findall(page.read_text()))
    for source in [*(ROOT / "example_dags").glob("*.py"), ROOT / "README.md"]:
        for module, imported in IMPORTED.findall(source.read_text()):
            names.update((module, name.strip()) for name in imported.split(",") if name.strip())
    return sorted(names)


NAMED = _named()


def test_the_docs_and_examples_name_the_operators() -> None:
    assert ("airflow_checkpoint_sync.operators.standby", "ActivateStandbyOperator") in NAMED
    assert len(NAMED) > 20


@pytest.mark.parametrize(("module", "name"), NAMED, ids=[f"{m}.{n}" for m, n in NAMED])
def test_a_documented_path_is_the_home_of_its_name(module: str, name: str) -> None:
    value = getattr(importlib.import_module(module), name)
    home = getattr(value, "__module__", module)
    # The sandbox's package re-exports its public classes on purpose: ``testing`` is its documented entry point.
    if module != "airflow_checkpoint_sync.testing":
        assert home == module, f"{module}.{name} is a re-export of {home}.{name}: name its home instead"
