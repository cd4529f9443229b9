"""Import benchmark: ProcessBench (JSON, Parquet, JSONL.zst) and PRM800K files into a scratch Postgres database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rprm .venv/bin/python bench/bench_import.py
    ... bench/bench_import.py --solutions 10000      # quick run

Generates (in a temporary folder) one file per format with --solutions solutions of
~10 steps each (100K solutions ≈ 1M steps by default), plus a file a tenth that size,
creates the database `rprm_bench` next to the one in DATABASE_URL, migrates it, and
imports every file in a fresh child process, which reports wall time and its own peak
RSS (getrusage). Peak RSS at the two sizes shows whether memory is flat in file size.
Prints a table, then one JSON object as the last line. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from scratch import scratch_name

ROOT = Path(__file__).resolve().parent.parent
WORDS = (
    "we compute the sum of both sides then divide by two so that x equals seven and the area "
    "is half the base times height which gives us twelve square units hence the answer follows"
).split()


# -- data generation ---------------------------------------------------------------
def _sentence(rng: random.Random, n: int = 18) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)) + f" ${rng.randint(1, 999)} + {rng.randint(1, 99)}$."


def write_processbench(path: Path, n: int, seed: int = 1) -> int:
    """A JSON array like ProcessBench; ~8 solutions per problem. Returns the number of steps."""
    rng = random.Random(seed)
    problems = [_sentence(rng, 30) + f" (problem {i})" for i in range(max(1, n // 8))]
    steps_total = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write("[\n")
        for i in range(n):
            steps = [_sentence(rng) for _ in range(rng.randint(6, 14))]
            steps_total += len(steps)
            label = -1 if rng.random() < 0.5 else rng.randrange(len(steps))
            row = {
                "id": f"bench-{i}",
                "generator": rng.choice(["Qwen2-7B-Instruct", "Llama-3.1-8B-Instruct"]),
                "problem": problems[i % len(problems)],
                "steps": steps,
                "final_answer_correct": label == -1,
                "label": label,
            }
            f.write(("  " if i == 0 else ",\n  ") + json.dumps(row))
        f.write("\n]\n")
    return steps_total


def write_prm800k(path: Path, n: int, seed: int = 2) -> int:
    """PRM800K-layout JSON Lines (phase 2 style, with phase 1 alternatives and human steps)."""
    rng = random.Random(seed)
    problems = [_sentence(rng, 30) + f" (problem {i})" for i in range(max(1, n // 8))]
    steps_total = 0
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            n_steps = rng.randint(6, 14)
            steps_total += n_steps
            found_error = rng.random() < 0.5
            label_steps = []
            for s in range(n_steps):
                last = s == n_steps - 1
                completions = [{"text": _sentence(rng), "rating": rng.choice([1, 1, 1, 0]), "flagged": None}]
                if rng.random() < 0.25:  # labelled alternatives
                    completions += [
                        {"text": _sentence(rng), "rating": rng.choice([-1, 0, 1]), "flagged": False}
                        for _ in range(rng.randint(1, 3))
                    ]
                step = {"completions": completions, "human_completion": None, "chosen_completion": 0}
                if last and found_error:
                    completions[0]["rating"] = -1
                    step["chosen_completion"] = None
                elif rng.random() < 0.02:
                    step["human_completion"] = {"text": _sentence(rng), "rating": None, "flagged": False}
                    step["chosen_completion"] = None
                label_steps.append(step)
            row = {
                "labeler": f"labeler-{rng.randrange(50)}",
                "timestamp": f"2023-01-{1 + i % 28:02d}T00:00:00.{i:06d}",
                "generation": 1 + i % 10,
                "is_quality_control_question": False,
                "is_initial_screening_question": False,
                "question": {
                    "problem": problems[i % len(problems)],
                    "ground_truth_solution": "It is 7.",
                    "ground_truth_answer": "7",
                    "pre_generated_steps": None,
                    "pre_generated_answer": None,
                    "pre_generated_verifier_score": None,
                },
                "label": {
                    "steps": label_steps,
                    "total_time": rng.randint(10_000, 500_000),
                    "finish_reason": "found_error" if found_error else "solution",
                },
            }
            f.write(json.dumps(row) + "\n")
    return steps_total


def write_processbench_parquet(path: Path, n: int, seed: int = 1) -> int:
    """The same rows as write_processbench, as Parquet (how ProcessBench is published)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = path.with_suffix(".json")
    steps = write_processbench(tmp, n, seed)
    rows = json.loads(tmp.read_text(encoding="utf-8"))
    tmp.unlink()
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=10_000)
    return steps


def write_processbench_zst(path: Path, n: int, seed: int = 1) -> int:
    """The same rows as write_processbench, as zstd-compressed JSON Lines."""
    import zstandard

    tmp = path.with_suffix("")
    steps = write_processbench(tmp, n, seed)
    rows = json.loads(tmp.read_text(encoding="utf-8"))
    tmp.unlink()
    with open(path, "wb") as raw, zstandard.ZstdCompressor(level=3).stream_writer(raw) as out:
        for row in rows:
            out.write((json.dumps(row) + "\n").encode())
    return steps


# -- the child: one import, measured from inside -----------------------------------------
def _peak_rss_kb() -> int:
    """This process's peak RSS. VmHWM starts afresh at exec; getrusage's ru_maxrss can carry
    the parent's peak at fork time (the parent holds a whole file while converting it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(path: str, fmt: str, name: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rprm_web.settings")
    import django

    django.setup()
    from django.db import connection

    from annotations.actions import import_file

    rss_before = _peak_rss_kb()
    backend = _backend_cpu(connection)
    t0, c0 = time.perf_counter(), time.process_time()
    result = import_file(path, dataset_name=name, fmt=fmt)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss_peak = _peak_rss_kb()
    print(json.dumps({
        "seconds": seconds,
        "cpu_s": cpu,
        "backend_cpu_s": _backend_cpu(connection) - backend,
        "solutions": result.n_solutions,
        "steps": result.n_steps,
        "problems": result.n_problems,
        "rss_before_mb": rss_before / 1024,
        "rss_peak_mb": rss_peak / 1024,
    }))  # fmt: skip


def _backend_cpu(connection) -> float:
    """CPU seconds of this connection's Postgres backend so far (same machine: /proc)."""
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # Postgres on another machine: not measured
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The same rows the importer wrote for `src`, as a raw COPY would write them: exported first
# (ids shifted past the tables' maximum, fresh uuids, the new dataset), then timed.
EXPORT = {
    "annotations_problem": (
        "id, dataset_id, source_id, question, reference_answer, metadata",
        "SELECT id + {op}, {ds}, source_id, question, reference_answer, metadata FROM annotations_problem "
        "WHERE dataset_id = {src} ORDER BY id",
    ),
    "annotations_solution": (
        "id, uuid, dataset_id, problem_id, source_id, generator, final_answer_correct, first_error_index, "
        "n_steps, error_type_id, metadata",
        "SELECT id + {os}, gen_random_uuid(), {ds}, problem_id + {op}, source_id, generator, "
        "final_answer_correct, first_error_index, n_steps, error_type_id, metadata FROM annotations_solution "
        "WHERE dataset_id = {src} ORDER BY id",
    ),
    "annotations_step": (
        "solution_id, index, text, label, source_rating, alternatives",
        "SELECT st.solution_id + {os}, st.index, st.text, st.label, st.source_rating, st.alternatives "
        "FROM annotations_step st JOIN annotations_solution s ON s.id = st.solution_id "
        "WHERE s.dataset_id = {src} ORDER BY st.id",
    ),
}


def copy_child(src_name: str, name: str) -> None:
    """One transaction of three raw COPYs (problems, solutions, steps) into the same tables."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rprm_web.settings")
    import django

    django.setup()
    from django.db import connection, transaction

    from annotations.models import Dataset

    src = Dataset.objects.get(name=src_name)
    ds = Dataset.objects.create(name=name, source_format=src.source_format)
    data = {}
    with connection.cursor() as cur:
        cur.execute("SELECT max(id) FROM annotations_problem")
        op = cur.fetchone()[0]
        cur.execute("SELECT max(id) FROM annotations_solution")
        os_ = cur.fetchone()[0]
        raw = connection.connection.cursor()
        for table, (_, select) in EXPORT.items():
            sql = select.format(op=op, os=os_, ds=ds.id, src=src.id)
            with raw.copy(f"COPY ({sql}) TO STDOUT") as copy:
                data[table] = b"".join(bytes(block) for block in copy)
    backend = _backend_cpu(connection)
    t0, c0 = time.perf_counter(), time.process_time()
    with transaction.atomic():
        for table, (columns, _) in EXPORT.items():
            with raw.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                buf = memoryview(data[table])
                for i in range(0, len(buf), 1 << 20):
                    copy.write(buf[i : i + (1 << 20)])
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    backend = _backend_cpu(connection) - backend
    with connection.cursor() as cur:  # the importer takes its next ids from these sequences
        for table in ("annotations_problem", "annotations_solution"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
    print(json.dumps({"seconds": seconds, "cpu_s": cpu, "backend_cpu_s": backend}))


def versus_copy(tmp: Path, n: int, env: dict, rounds: int = 2) -> dict:
    """The importer against a raw COPY of the rows it wrote, side by side in one run, in the
    order import, copy, copy, import (so neither side always meets the larger tables)."""
    # One file per import (same size, another seed): importing a file again is a no-op.
    paths = [tmp / f"vs_copy_{n}_{r}.json" for r in range(rounds)]
    steps = [write_processbench(path, n, seed=3 + r) for r, path in enumerate(paths)]

    def child_run(args: list[str]) -> dict:
        proc = subprocess.run(
            [sys.executable, __file__, *args], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if proc.returncode:
            sys.exit(f"{args[0]} failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    imports, copies = [], []
    for r in range(rounds):
        if r % 2 == 0:
            imports.append(child_run(["--child", str(paths[r]), "processbench", f"vs-import-{r}"]))
            copies.append(child_run(["--copy-child", f"vs-import-{r}", f"vs-copy-{r}"]))
        else:
            copies.append(child_run(["--copy-child", f"vs-import-{r - 1}", f"vs-copy-{r}"]))
            imports.append(child_run(["--child", str(paths[r]), "processbench", f"vs-import-{r}"]))
    for path in paths:
        path.unlink()

    def total(runs: list[dict], key: str) -> float:
        return sum(x[key] for x in runs)

    cpu_import = total(imports, "cpu_s") + total(imports, "backend_cpu_s")
    cpu_copy = total(copies, "cpu_s") + total(copies, "backend_cpu_s")
    return {
        "solutions": n,
        "steps": steps[0],
        "rounds": rounds,
        "import_s": [round(x["seconds"], 2) for x in imports],
        "copy_s": [round(x["seconds"], 2) for x in copies],
        "import_cpu_s": [round(x["cpu_s"], 2) for x in imports],
        "import_backend_cpu_s": [round(x["backend_cpu_s"], 2) for x in imports],
        "copy_cpu_s": [round(x["cpu_s"], 2) for x in copies],
        "copy_backend_cpu_s": [round(x["backend_cpu_s"], 2) for x in copies],
        "ratio_wall": round(total(imports, "seconds") / total(copies, "seconds"), 3),
        "ratio_backend_cpu": round(
            total(imports, "backend_cpu_s") / max(total(copies, "backend_cpu_s"), 1e-9), 3
        ),
        "ratio_cpu": round(cpu_import / max(cpu_copy, 1e-9), 3),
        "target_ratio": 1.25,
    }


# -- the driver -------------------------------------------------------------------------
def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def _psql(admin_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(admin_url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(sql)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--solutions", type=int, default=100_000, help="solutions per large file (~10 steps each)"
    )
    ap.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rprm")
    )
    ap.add_argument(
        "--db-name", help="scratch database, created and dropped (default: <DATABASE_URL's>_bench_import)"
    )
    ap.add_argument("--formats", default="processbench,processbench-parquet,processbench-zst,prm800k")
    ap.add_argument("--child", nargs=3, metavar=("PATH", "FORMAT", "NAME"), help=argparse.SUPPRESS)
    ap.add_argument("--copy-child", nargs=2, metavar=("SOURCE", "NAME"), help=argparse.SUPPRESS)
    ap.add_argument(
        "--vs-copy",
        type=int,
        default=50_000,
        metavar="N",
        help="solutions (~10 steps each) for the import vs raw COPY comparison (0: skip)",
    )
    ap.add_argument("--only-vs-copy", action="store_true", help="skip the per-format runs")
    ap.add_argument("--smoke", action="store_true", help="seconds: 200 solutions per file (tests)")
    args = ap.parse_args()
    if args.smoke:
        args.solutions, args.vs_copy = 200, 200
    args.db_name = args.db_name or scratch_name("bench_import", smoke=args.smoke)
    if args.child:
        child(*args.child)
        return
    if args.copy_child:
        copy_child(*args.copy_child)
        return

    if not args.database_url.startswith(("postgres://", "postgresql://")):
        sys.exit("bench_import needs Postgres: set DATABASE_URL=postgres://...")
    bench_url = _with_db(args.database_url, args.db_name)
    admin_url = _with_db(args.database_url, "postgres")
    writers = {  # name: (writer, extension, format the importer detects)
        "processbench": (write_processbench, "json", "processbench"),
        "processbench-parquet": (write_processbench_parquet, "parquet", "processbench"),
        "processbench-zst": (write_processbench_zst, "jsonl.zst", "processbench"),
        "prm800k": (write_prm800k, "jsonl", "prm800k"),
    }
    sizes = [max(1, args.solutions // 10), args.solutions]
    env = {**os.environ, "DATABASE_URL": bench_url, "PYTHONUNBUFFERED": "1"}
    runs = []
    formats = [] if args.only_vs_copy else args.formats.split(",")
    vs_copy = None
    _psql(admin_url, f'DROP DATABASE IF EXISTS "{args.db_name}"')
    _psql(admin_url, f'CREATE DATABASE "{args.db_name}"')
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        with tempfile.TemporaryDirectory(prefix="rprm-bench-") as tmp:
            for fmt in formats:
                write, ext, import_fmt = writers[fmt]
                for n in sizes:
                    path = Path(tmp) / f"{fmt}_{n}.{ext}"
                    t0 = time.perf_counter()
                    steps = write(path, n)
                    gen_s = time.perf_counter() - t0
                    proc = subprocess.run(
                        [sys.executable, __file__, "--child", str(path), import_fmt, f"bench-{fmt}-{n}"],
                        cwd=ROOT, env=env, capture_output=True, text=True,
                    )  # fmt: skip
                    if proc.returncode:
                        sys.exit(f"import of {path.name} failed:\n{proc.stderr[-3000:]}")
                    m = json.loads(proc.stdout.strip().splitlines()[-1])
                    run = {
                        "format": fmt,
                        "solutions": m["solutions"],
                        "steps": m["steps"],
                        "problems": m["problems"],
                        "file_mb": round(path.stat().st_size / 2**20, 1),
                        "seconds": round(m["seconds"], 2),
                        "solutions_per_s": round(m["solutions"] / m["seconds"]),
                        "steps_per_s": round(m["steps"] / m["seconds"]),
                        "rss_before_import_mb": round(m["rss_before_mb"], 1),
                        "peak_rss_mb": round(m["rss_peak_mb"], 1),
                        "generate_s": round(gen_s, 1),
                    }
                    assert steps == m["steps"], (steps, m["steps"])
                    runs.append(run)
                    path.unlink()
                    print(
                        f"{fmt:20s} {run['solutions']:>8,} solutions {run['steps']:>10,} steps "
                        f"{run['file_mb']:>7.1f} MB  {run['seconds']:>6.2f} s  {run['steps_per_s']:>9,} steps/s  "
                        f"peak RSS {run['peak_rss_mb']:.0f} MB (before import {run['rss_before_import_mb']:.0f} MB)",
                        flush=True,
                    )
            if args.vs_copy:
                load = os.getloadavg()[0]
                vs_copy = versus_copy(Path(tmp), args.vs_copy, env)
                vs_copy["loadavg_1m"] = [round(load, 2), round(os.getloadavg()[0], 2)]
                print(
                    f"import vs raw COPY, {vs_copy['steps']:,} steps: import {vs_copy['import_s']} s, "
                    f"COPY {vs_copy['copy_s']} s: {vs_copy['ratio_wall']}x wall, "
                    f"{vs_copy['ratio_backend_cpu']}x Postgres CPU, {vs_copy['ratio_cpu']}x all CPU",
                    flush=True,
                )
    finally:
        _psql(admin_url, f'DROP DATABASE IF EXISTS "{args.db_name}"')
    flat = {
        fmt: {
            "small_file_mb": small["file_mb"],
            "large_file_mb": large["file_mb"],
            "small_peak_rss_mb": small["peak_rss_mb"],
            "large_peak_rss_mb": large["peak_rss_mb"],
        }
        for fmt in formats
        for small, large in [[r for r in runs if r["format"] == fmt]]
    }
    print(json.dumps({"cpus": os.cpu_count(), "runs": runs, "memory_vs_file_size": flat, "vs_copy": vs_copy}))


if __name__ == "__main__":
    main()
