# Koppel: every target creates or updates .venv first. Quiet when nothing changed.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.koppel-installed
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: demo test test-all lint format bench ui clean venv

# `make test` leaves out the system tests (marker `system`: real Prefect servers and workers, minutes each) to
# stay under 10 minutes on a 2-core machine; CI (CI=true) and `make test-all` run them too.
SYSTEM_FILTER := $(if $(filter true 1,$(CI)),,-m "not system")
# Two pytest processes (pytest-xdist), one file each at a time: every file keeps its module fixtures and each
# process its own Prefect harness, PostgreSQL cluster and sandboxes. Files go out in collection order, the
# system tests' files first (tests/conftest.py). PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
PARALLEL := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder)

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing Koppel and its pinned dependencies into $(VENV) (first run takes about a minute)..."
	@$(PIP) install --quiet -c constraints.txt -e ".[dev]" 2>&1 | { grep -v "^WARNING: Location" || true; }
	@touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/python -m koppel.demo $(DEMO_ARGS)

test: $(STAMP)
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check --quiet .
	@$(BIN)/mypy
	@$(BIN)/python -m pytest -q $(PARALLEL) $(SYSTEM_FILTER) $(PYTEST_ARGS)

test-all: $(STAMP)
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check --quiet .
	@$(BIN)/mypy
	@$(BIN)/python -m pytest -q $(PARALLEL) $(PYTEST_ARGS)

lint: $(STAMP)
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy

format: $(STAMP)
	@$(BIN)/ruff format .
	@$(BIN)/ruff check --fix .

# A local Prefect server (SQLite) + the sandbox + a worker, with every deployment of prefect.yaml; Ctrl-C stops it.
ui: $(STAMP)
	@$(BIN)/python -m koppel.ui $(UI_ARGS)

bench: $(STAMP)
	@$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .koppel
