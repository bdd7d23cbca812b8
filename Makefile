# Parley: `make run` serves on http://127.0.0.1:8000, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
export HOST ?= 127.0.0.1
export PORT ?= 8000
export TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
export TEST_CACHE_URL ?= redis://127.0.0.1:6379/15

.PHONY: run demo test test-sqlite test-postgres lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.runtime-installed
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

## run: migrate, collect static files and serve with gunicorn (gthread) on $(HOST):$(PORT)
run: $(VENV)/.runtime-installed
	$(BIN)/python manage.py collectstatic --noinput -v 0
	PATH="$(abspath $(BIN)):$$PATH" exec scripts/entrypoint.sh

## demo: a local OpenAI-compatible mock model at http://127.0.0.1:9999/v1 (no API key needed)
demo: $(VENV)/.runtime-installed
	$(BIN)/python manage.py mock_llm --host 127.0.0.1 --port 9999 --delay-ms 30

## test: lint, migrations check, the suite on SQLite, then again on PostgreSQL + Redis
test: lint test-sqlite test-postgres

test-sqlite: $(VENV)/.dev-installed
	$(BIN)/python -m pytest

test-postgres: $(VENV)/.dev-installed
	PYTHON=$(BIN)/python scripts/test-postgres.sh

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache

## bench: run every benchmark script in bench/ (results are kept in docs/performance.md)
.PHONY: bench
bench: $(VENV)/.runtime-installed
	@set -e; for script in bench/*.py; do \
	  case "$$(basename $$script)" in common.py|corpus.py|_*|test_*) continue;; esac; \
	  echo "== $$script"; $(BIN)/python "$$script" --write; done
