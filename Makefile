# The README's two commands are `make quickstart` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/rprm
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: setup quickstart test test-fast typecheck lint bench services browser-deps lock check-base

# One virtual environment, created once and reused, installed from the lock
# (constraints.txt) so every machine gets the tested versions. The lock pins the
# CPU build torch==2.13.0+cpu, so nothing can pull a multi-GB CUDA torch; off this
# machine, give pip the CPU wheel index: make TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) torch
	$(PIP) install -q -c constraints.txt -e ".[ml,dev]"
	touch $@

# Regenerate the lock after changing pyproject.toml (the exact command the lock
# header records). The installed versions are preferred, so it only moves what must.
WHEELS_DIR ?= /opt/wheels
lock:
	$(VENV)/bin/uv --version >/dev/null 2>&1 || $(PIP) install -q uv
	$(VENV)/bin/uv pip compile pyproject.toml constraints.in --extra ml --extra dev \
		--python-version 3.11 --find-links $(WHEELS_DIR) --no-emit-find-links -o constraints.txt
	! grep -Eq '^(nvidia-|triton==)' constraints.txt || { echo "lock pulls CUDA packages" >&2; exit 1; }

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

# The type check, then the whole suite against real Postgres, Redis, Celery workers and chromium, in
# PYTEST_WORKERS xdist processes (each its own test database, Redis db and var folder;
# the fault suite's kills stay in one process: --dist loadgroup).
PYTEST_WORKERS ?= 2
test: setup typecheck services browser-deps
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The base install alone (no ml extra, no torch) must serve the main pages.
check-base:
	./scripts/check_base_install.sh

# mypy with django-stubs over every app (pyproject's [tool.mypy]: strict on the ML cores).
# The stubs' plugin loads the settings: an in-memory SQLite URL keeps it off any server.
typecheck: setup
	DATABASE_URL=sqlite:///:memory: $(VENV)/bin/mypy

# The inner loop: no browser, no real workers, nothing slow.
test-fast: setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m "not browser and not integration and not slow" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: setup services
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) bench/bench_import.py
