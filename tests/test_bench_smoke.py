"""Every benchmark script runs at its smoke size (seconds, no timing asserted), so a schema or API
change that breaks a bench fails the suite instead of the next person who measures.

Each runs as its own process, as a person runs it, with `--smoke`; the Postgres ones make their
scratch database beside DATABASE_URL's (`<name>_bench_*_smoke`) and drop it. What is checked: the
exit status and that the last line printed is the bench's JSON object with its figures.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
# Scripts are what runs as __main__; scratch.py is the Postgres benches' shared helper module.
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if 'if __name__ == "__main__":' in p.read_text())
NEEDS_POSTGRES = {"bench_review.py", "bench_dashboards.py", "bench_import.py"}
NEEDS_ML = {
    "bench_generation.py",
    "bench_generation_gpu.py",
    "bench_scoring.py",
    "bench_score_api.py",
    "bench_training.py",
}
# The key each bench's JSON exists for (the figure or ratio its README section reports).
FIGURE = {
    "bench_review.py": "review_page",
    "bench_dashboards.py": "views",
    "bench_import.py": "runs",
    "bench_generation.py": "speedup",
    "bench_generation_gpu.py": "speedup",
    "bench_scoring.py": "paths",
    "bench_score_api.py": "small_alone",
    "bench_training.py": "ratio",
}


def test_it_knows_every_bench_script() -> None:
    assert SCRIPTS, BENCH
    assert set(SCRIPTS) == set(FIGURE), "a new bench needs its smoke case here (FIGURE, NEEDS_*)"


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_it_runs_the_bench_at_its_smoke_size(script: str) -> None:
    url = os.environ.get("DATABASE_URL", "")
    if script in NEEDS_POSTGRES and not url.startswith("postgres"):
        pytest.skip("this bench needs Postgres (DATABASE_URL): run `make test`")
    if script in NEEDS_ML and importlib.util.find_spec("torch") is None:
        pytest.skip("needs the ml extra (torch, transformers)")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke"],
        cwd=BENCH.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:] + proc.stdout[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    figures = json.loads(last)
    assert FIGURE[script] in figures, last[:500]
