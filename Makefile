# The README's commands. Every target bootstraps uv and the locked .venv itself, so a bare machine with
# Python 3.11 needs nothing else.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
VENV := $(CURDIR)/.venv
RUN := $(VENV)/bin
export AWS_EC2_METADATA_DISABLED := true
export NO_GCE_CHECK := True
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: help debian-tools rclone install test lint typecheck pytest docs e2e bench bench-replicate bench-fleet reliability sandbox demo clean

help:
	@echo "make test      install from uv.lock, then ruff, mypy, the test suite, the real-deployment suite and the docs"
	@echo "make e2e       the example DAGs, faults and the UI on real Airflow deployments (LocalExecutor and"
	@echo "               CeleryExecutor); WRITE=1 saves the UI screenshots for the docs (docs/_static/ui)"
	@echo "make docs      build the documentation (warnings are errors) into docs/_build/html"
	@echo "make bench-replicate  the worker's peak memory replicating a 1 GB object, and the operator against"
	@echo "               rclone copy on a 2,000-object sync location (SIZE_MB= to change; installs Debian's rclone)"
	@echo "make bench-fleet  a deferrable sync mapped over $(FLEET) pipelines on a real Airflow deployment (FLEET= to"
	@echo "               change): outcomes, requests per pipeline, the triggerer's peak memory, wall time against one"
	@echo "make reliability  the seeded fault matrix, $(RUNS) runs (RUNS=, SEED= to change), and its table;"
	@echo "                  WRITE=1 saves the table for the docs (docs/reliability_table.rst)"
	@echo "make bench     the benchmarks (figures, never pass/fail); WRITE=1 saves benchmarks/results.md"
	@echo "make sandbox   serve the Feldera sandbox on http://127.0.0.1:8080 (Ctrl-C stops it)"
	@echo "make demo      the example DAGs end to end on a local Airflow, the Feldera sandbox and a local S3 server"

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet "uv>=0.5"

$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --locked --all-extras --all-groups
	@touch $@

# Azurite (the Azure Blob emulator the replication tests use) from its committed lock; Node 20 is on the machine.
AZURITE := $(CURDIR)/tests/azurite/node_modules/.bin/azurite-blob
$(AZURITE): tests/azurite/package.json tests/azurite/package-lock.json
	cd tests/azurite && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian's packages the real-deployment suite and the docs need: Redis (the CeleryExecutor's broker), Chromium (the
# UI tests drive it with Playwright; Playwright's own browser download is not reachable) and graphviz (the docs'
# flow diagram). Installed only where missing; apt needs root (or sudo).
DEBIAN_TOOLS := redis-server:redis-server chromium:chromium dot:graphviz
DEBIAN_MISSING = $(foreach t,$(DEBIAN_TOOLS),$(if $(shell command -v $(firstword $(subst :, ,$(t))) 2>/dev/null),,$(lastword $(subst :, ,$(t)))))
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
debian-tools:
	@missing="$(strip $(DEBIAN_MISSING))"; if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing \
		|| { $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends $$missing; }; \
	fi

install: $(VENV)/.synced $(AZURITE) debian-tools

lint: install
	$(RUN)/ruff check airflow_checkpoint_sync tests demo example_dags benchmarks docs/recipes
	$(RUN)/ruff format --check airflow_checkpoint_sync tests demo example_dags benchmarks docs/recipes

typecheck: install
	$(RUN)/mypy

# Test processes (pytest-xdist). Most of a test's time is spent waiting on servers, triggers and subprocesses, so two
# share this machine's two cores well (the suite took 30 min in one process, 18 in two). Every process has its own
# AIRFLOW_HOME, sqlite DB and servers on free ports.
JOBS ?= 2
pytest: install
	$(RUN)/pytest -q -n $(JOBS) --durations=15

docs: install
	$(RUN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@echo "docs built: docs/_build/html/index.html"

test: lint typecheck pytest e2e docs

bench: install
	cd benchmarks && $(RUN)/python run_all.py $(if $(WRITE),--write,)

# rclone (Debian's) is the reference the replication benchmark compares the operator with; only it needs rclone.
rclone:
	@command -v rclone >/dev/null || { $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends rclone || { $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends rclone; }; }

bench-replicate: install rclone
	cd benchmarks && SIZE_MB=$(or $(SIZE_MB),1024) $(RUN)/python bench_replicate.py $(if $(WRITE),--write,)
	cd benchmarks && SIZE_MB=$(or $(SIZE_MB),1024) $(RUN)/python bench_replicate_rclone.py $(if $(WRITE),--write,)

FLEET ?= 100
bench-fleet: install
	cd benchmarks && FLEET=$(FLEET) $(RUN)/python bench_fleet.py $(if $(WRITE),--write,)

RUNS ?= 220
SEED ?= 0
reliability: install
	RELIABILITY_RUNS=$(RUNS) RELIABILITY_SEED=$(SEED) $(if $(WRITE),RELIABILITY_WRITE=1) \
		$(RUN)/pytest -q -p no:cacheprovider tests/reliability

e2e: install
	ACS_E2E=1 $(if $(WRITE),E2E_WRITE_SCREENSHOTS=1) $(RUN)/pytest -q -p no:cacheprovider tests/e2e

sandbox: install
	$(RUN)/python -m airflow_checkpoint_sync.testing serve --port $(or $(PORT),8080)

demo: install
	$(RUN)/python demo/run_demo.py

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache tests/azurite/node_modules
