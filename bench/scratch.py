"""Shared by the Postgres benchmarks: a scratch database beside DATABASE_URL's, and percentiles."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent


def url_for(db: str) -> str:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rprm")
    parts = urlsplit(base)
    if not parts.scheme.startswith("postgres"):
        sys.exit("this benchmark needs Postgres: set DATABASE_URL=postgres://...")
    return urlunsplit(parts._replace(path=f"/{db}"))


def scratch_name(suffix: str, *, smoke: bool = False) -> str:
    """`<DATABASE_URL's database>_<suffix>` (rprm -> rprm_bench_review), so each engineer's or test
    run's scratch database sits beside its own; a smoke run gets its own name and never drops a
    kept full-size one."""
    base = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rprm")).path.strip("/")
    return f"{base or 'rprm'}_{suffix}" + ("_smoke" if smoke else "")


def admin_sql(sql: str) -> None:
    import psycopg

    with psycopg.connect(url_for("postgres"), autocommit=True) as conn:
        conn.execute(sql)


def open_scratch_db(db: str, *, reuse: bool, log) -> str:
    """Create and migrate `db` (unless reusing a kept one), point Django at it and set it up."""
    url = url_for(db)
    if not reuse:
        admin_sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin_sql(f"CREATE DATABASE {db}")
        env = {**os.environ, "DATABASE_URL": url}
        env.pop("REDIS_URL", None)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        log(f"migrated {db} in {time.perf_counter() - t0:.1f} s")
    os.environ["DATABASE_URL"] = url
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rprm_web.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    return url


def drop_scratch_db(db: str) -> None:
    from django.db import connections

    connections.close_all()
    admin_sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def percentiles(samples: list[tuple[float, float]], digits: int = 2) -> dict:
    """p50/p95 of wall time and of this process's CPU time (the part other load cannot inflate
    much: on a shared machine wall time also counts waiting for a core)."""

    sys.path.insert(0, str(ROOT))
    from inference.core.stats import percentile

    def q(values: list[float], pct: int) -> float:
        return round(percentile(values, pct / 100) * 1000, 2)

    wall, cpu = [w for w, _ in samples], [c for _, c in samples]
    return {
        "n": len(samples),
        "p50_ms": q(wall, 50),
        "p95_ms": q(wall, 95),
        "max_ms": round(max(wall) * 1000, digits),
        "cpu_p50_ms": q(cpu, 50),
        "cpu_p95_ms": q(cpu, 95),
    }
