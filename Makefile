# The README's two commands are `make quickstart` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/rprm
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: setup quickstart test test-fast lint bench services browser-deps

# One virtual environment, created once and reused. CPU torch goes in first so
# nothing below can pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[ml,dev]"
	touch $@

static/vendor/.stamp: package.json
	./scripts/vendor_static.sh

setup: $(VENV)/.installed static/vendor/.stamp

# Main job on the embedded default (SQLite + filesystem broker): demo data,
# tiny model, teacher pass, then web + workers until Ctrl-C.
quickstart: setup
	$(PY) manage.py quickstart --serve

services:
	./scripts/services.sh

browser-deps:
	./scripts/browser_deps.sh

# The whole suite against real Postgres, Redis, Celery workers and chromium.
test: setup services browser-deps
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not browser and not integration and not slow" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: setup services
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) bench/bench_import.py
