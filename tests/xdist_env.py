"""Per-worker services under pytest-xdist, set before Django reads its settings (loaded by
`-p tests.xdist_env` in pytest's addopts, so it runs before pytest-django's setup).

pytest-django already gives each xdist worker its own test database. The suite also
flushes its Redis database and the embedded default keeps its broker folders and uploads
under RPRM_VAR_DIR, so each worker gets a Redis database and a var folder of its own."""

from __future__ import annotations

import os
import re
from pathlib import Path

_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw"):
    _index = int(_worker[2:])
    _url = os.environ.get("REDIS_URL", "")
    _db = re.search(r"/(\d+)$", _url)
    if _db:
        os.environ["REDIS_URL"] = f"{_url[: _db.start()]}/{(int(_db.group(1)) - _index) % 16}"
    _base = Path(os.environ.get("RPRM_VAR_DIR") or Path(__file__).resolve().parent.parent / "var")
    os.environ["RPRM_VAR_DIR"] = str(_base / f"xdist-{_worker}")
