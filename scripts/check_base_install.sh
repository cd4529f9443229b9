#!/usr/bin/env bash
# Install the base dependencies alone (no `ml` extra, no torch) into a fresh venv
# and serve the main pages from it. Quick: pip's cache is reused and the venv is
# kept between runs, rebuilt only when pyproject.toml or constraints.txt change.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${BASE_VENV:-var/basevenv}"
stamp="$venv/.installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install -q -c constraints.txt -e .
  touch "$stamp"
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# A scratch SQLite database and broker folder; nothing from the caller's env leaks in.
env -u DATABASE_URL -u REDIS_URL RPRM_VAR_DIR="$tmp" DEBUG=0 SECRET_KEY=base-smoke-not-secret \
  "$venv/bin/python" scripts/base_smoke.py
