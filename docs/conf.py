"""Sphinx configuration for the airflow-checkpoint-sync documentation."""

from __future__ import annotations

import os
import sys
import tempfile

# autodoc imports the provider, which imports Airflow: give Airflow a throwaway home, not ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="acs-docs-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
sys.path.insert(0, os.path.abspath(".."))

from airflow_checkpoint_sync import __version__

project = "airflow-checkpoint-sync"
author = "airflow-checkpoint-sync developers"
release = version = __version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode", "sphinx.ext.graphviz"]
# The flow diagram is drawn from its text by Debian's graphviz at each build (make install installs it), as SVG.
graphviz_output_format = "svg"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": False, "show-inheritance": True}
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
exclude_patterns = ["_build", "reliability_table.rst"]  # included by reliability.rst
html_theme = "alabaster"
html_title = f"airflow-checkpoint-sync {release}"
html_static_path: list[str] = []
