"""The contributors' page lists the package as ``ls`` shows it: every module and folder, and nothing that is gone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "airflow_checkpoint_sync"
PAGE = (ROOT / "docs" / "contributing.rst").read_text()
#: Folders whose modules the page names one by one (the others, object_stores/ and testing/, as a whole).
DETAILED = ("rules", "hooks", "triggers", "operators", "sensors")


def _layout() -> str:
    return PAGE.split("The layout", 1)[1].split("Where a new decision goes", 1)[0]


def _on_disk() -> set[str]:
    entries = {f"{p.name}/" if p.is_dir() else p.name for p in PACKAGE.iterdir() if not p.name.startswith(("_", "."))}
    entries |= {p.name for p in PACKAGE.glob("__init__.py")}
    entries.discard("py.typed")
    for folder in DETAILED:
        entries |= {f"{folder}/{p.name}" for p in (PACKAGE / folder).glob("*.py") if p.name != "__init__.py"}
    return {e for e in entries if not e.startswith("__pycache__")}


def _on_page() -> set[str]:
    named: set[str] = set()
    folder = ""
    for line in _layout().splitlines():
        indent = len(line) - len(line.lstrip())
        words = line.split()
        if not words or words[0].endswith("airflow_checkpoint_sync/"):
            continue
        if indent == 5:  # the package's own entries
            folder = words[0][:-1] if words[0].endswith("/") else ""
            named.add(words[0])
        elif indent == 7 and folder:
            names = [w for w in words if re.fullmatch(r"\w+\.py", w)]
            named.update(f"{folder}/{name}" for name in names)
    return named


def test_the_page_names_every_module_and_folder_there_is() -> None:
    assert _on_disk() - _on_page() == set(), "add these to docs/contributing.rst"


def test_the_page_names_nothing_that_is_gone() -> None:
    assert _on_page() - _on_disk() == set(), "remove these from docs/contributing.rst"
