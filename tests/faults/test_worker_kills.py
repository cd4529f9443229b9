"""Fault injection: kill -9 a real Celery worker mid-job, start a fresh one, and check
that every job ends succeeded exactly once (row counts of an uninterrupted reference, no
duplicates) or failed with a reason, and that nothing is left queued or running.

Both stacks: Postgres + Redis (`pg`, needs DATABASE_URL and REDIS_URL as in `make test`)
and the embedded default, SQLite + the filesystem broker (`sqlite`, a temporary
RPRM_VAR_DIR). The kill point is random, seeded (FAULTS_SEED, printed), and always after
the job has started (status running and, where the row counts progress, progress > 0).
After the kill the fresh worker has the same name (it re-queues its own runs when ready)
or another one (it takes the run over once the heartbeat is stale; RUN_STALE_AFTER_S is
4 s here). FAULTS_REPEAT=n runs each case n times with successive seeds.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import Worker, wait_for

# One xdist group: the kills run one after another (their timing assumes a free core).
pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("faults")]

SEED = int(os.environ.get("FAULTS_SEED", "0")) or random.SystemRandom().randrange(1, 10**6)
REPEAT = int(os.environ.get("FAULTS_REPEAT", "1"))
QUEUE = {
    "import": "default",
    "export": "default",
    "generation": "gpu",
    "evaluation": "gpu",
    "training": "gpu",
}
# Restart with the same worker name or another one: cheap kinds try both on both stacks,
# the model-loading ones one each, crossed between the stacks.
CASES = [
    *[(stack, kind, mode) for stack in ("pg", "sqlite") for kind in ("import", "export") for mode in ("same", "other")],
    ("pg", "generation", "other"), ("sqlite", "generation", "same"),
    ("pg", "evaluation", "same"), ("sqlite", "evaluation", "other"),
    ("pg", "training", "same"), ("sqlite", "training", "other"),
]  # fmt: skip


class Stack:
    """One backend: the env for workers and the driver, and raw SQL to watch a row."""

    def __init__(self, name: str, env: dict, tmp: Path):
        self.name, self.env, self.tmp = name, env, tmp

    def driver(self, *args: str) -> dict:
        proc = subprocess.run([sys.executable, "-m", "tests.faults.scenario", *args], cwd=settings.BASE_DIR,
                              env=self.env, capture_output=True, text=True, timeout=300)  # fmt: skip
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        assert line, f"driver {args} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        return json.loads(line[7:])

    def row(self, table: str, run_id: int, fields: list[str]) -> dict:
        cols = ", ".join(["status", *fields])
        if self.name == "sqlite":
            import sqlite3

            con = sqlite3.connect(Path(self.env["RPRM_VAR_DIR"]) / "db.sqlite3", timeout=10)
            try:
                values = con.execute(f"SELECT {cols} FROM {table} WHERE id = ?", [run_id]).fetchone()
            finally:
                con.close()
        else:
            from django.db import connection

            with connection.cursor() as cur:
                cur.execute(f"SELECT {cols} FROM {table} WHERE id = %s", [run_id])
                values = cur.fetchone()
        return dict(zip(["status", *fields], values, strict=True))

    def worker(self, queue: str, name: str) -> Worker:
        return Worker(queue, name, self.env, self.tmp / f"{name}.log").start()


@pytest.fixture
def stack_for(transactional_db, tmp_path):
    def make(name: str) -> Stack:
        base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env = {**base, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TORCH_CPU_THREADS": "1",
               "RUN_STALE_AFTER_S": "4", "RUN_HEARTBEAT_EVERY_S": "1", "RPRM_VAR_DIR": str(tmp_path / "var"),
               "DJANGO_SETTINGS_MODULE": "rprm_web.settings"}  # fmt: skip
        if name == "pg":
            if not settings.USING_POSTGRES or not settings.REDIS_URL:
                pytest.skip("needs Postgres (DATABASE_URL) and Redis (REDIS_URL): run `make test`")
            import redis
            from django.db import connection

            redis.Redis.from_url(settings.REDIS_URL).flushdb()
            db = connection.settings_dict
            env["DATABASE_URL"] = (
                f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
            )
            env["REDIS_URL"] = settings.REDIS_URL
        else:
            # The embedded default: no DATABASE_URL / REDIS_URL.
            subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=settings.BASE_DIR, env=env,
                           check=True, timeout=300)  # fmt: skip
        return Stack(name, env, tmp_path)

    return make


def _kill_mid_job(stack: Stack, job: dict, worker: Worker, rng: random.Random) -> dict:
    """Wait until the job runs and has progressed a random amount, then kill -9."""
    done_f, total_f = job["progress"]
    fields = [done_f, total_f]

    def started():
        row = stack.row(job["table"], job["id"], fields)
        assert row["status"] in ("queued", "running"), f"finished before the kill: {row}"
        return row if row["status"] == "running" else None

    wait_for(started, timeout=240, every=0.1, what="the job to start")
    target = None
    if QUEUE[job["kind"]] == "gpu":
        # Model-loading jobs count units: kill after a random number of them (at least one).
        def progressed():
            row = stack.row(job["table"], job["id"], fields)
            assert row["status"] == "running", f"finished before the kill: {row}"
            nonlocal target
            if target is None and row[total_f]:
                target = rng.randint(1, max(1, int(row[total_f]) * 2 // 3))
            return target is not None and (row[done_f] or 0) >= target

        wait_for(progressed, timeout=300, every=0.1, what="progress")
    else:
        # Imports and exports are one short transaction: a random moment after the claim.
        time.sleep(rng.uniform(0.0, 0.4))
    worker.kill()
    # A COMMIT the worker sent just before dying still lands: read the row once it has.
    time.sleep(1)
    row = stack.row(job["table"], job["id"], fields)
    assert row["status"] in ("running", "succeeded"), f"the kill left {row}"
    print(
        f"[faults seed {SEED}] {stack.name} {job['kind']}: killed at {done_f}={row[done_f]} of {row[total_f]} "
        f"(target {target})" + ("" if row["status"] == "running" else ": the kill landed on the final commit")
    )  # fmt: skip
    return row


def _finished(stack: Stack, job: dict, timeout: float) -> dict:
    return wait_for(
        lambda: (r := stack.row(job["table"], job["id"], [])) and r["status"] not in ("queued", "running") and r,
        timeout=timeout, every=0.5, what=f"{job['kind']} to finish after the kill",
    )  # fmt: skip


@pytest.mark.parametrize("repeat", range(REPEAT))
@pytest.mark.parametrize(("stack_name", "kind", "restart"), CASES)
def test_a_killed_worker_loses_and_duplicates_nothing(
    stack_name, kind, restart, repeat, stack_for, tiny_model_dir
):
    rng = random.Random(f"{SEED}:{repeat}:{stack_name}:{kind}:{restart}")
    stack = stack_for(stack_name)
    queue = QUEUE[kind]
    job = {**stack.driver("setup", kind, str(tiny_model_dir)), "kind": kind}
    first = stack.worker(queue, f"{queue}@faults")
    try:
        killed = _kill_mid_job(stack, job, first, rng)
        if kind == "export" and killed["status"] == "running":  # its files: only in the hidden partial
            assert not Path(job["folder"]).exists()
        second = stack.worker(queue, f"{queue}@faults" if restart == "same" else f"{queue}@faults-2")
        try:
            _finished(stack, job, timeout=400)
            facts = stack.driver("check", kind, str(job["id"]))
        finally:
            second.stop()
    finally:
        first.stop()
    # Succeeded exactly once: claimed twice (the killed claim and the resumed one), by the new
    # worker; or once, by the killed one, when the kill landed on its final commit.
    assert facts["status"] == "succeeded", facts["error"][-2000:]
    interrupted = killed["status"] == "running"
    assert (facts["attempts"], facts["worker"]) == ((2, second.name) if interrupted else (1, first.name)), (
        facts
    )
    assert facts["active_elsewhere"] == [], facts
    if kind == "import":
        assert facts["datasets"] == 1 and facts["duplicates"] == 0
        assert (facts["solutions"], facts["steps"]) == (facts["expected_solutions"], facts["expected_steps"])
    elif kind == "export":
        assert facts["files"] == facts["expected_files"] and sum(facts["files"].values()) > 0
        assert facts["rows"] == facts["expected_rows"] and facts["manifest"] and facts["manifest_file"]
        assert facts["partial_folders"] == []  # the killed attempt's half folder is gone
    elif kind == "generation":
        assert facts["critiques"] == facts["critiques_done"] == facts["expected"] > 0
        assert facts["steps_done"] == facts["steps_total"] and facts["duplicates"] == 0
    elif kind == "evaluation":
        assert facts["scores"] == facts["solutions_done"] == facts["expected"] == 8
        assert facts["duplicates"] == 0 and facts["results"]
    elif kind == "training":
        assert facts["metric_steps"] == facts["expected_steps"] and facts["versions"] == 1
        if killed["step"] > 2:  # a checkpoint every 2 steps: it resumed from one, not from scratch
            assert facts["resumed_from"], "training did not resume from its checkpoint"


@pytest.mark.parametrize("stack_name", ["pg", "sqlite"])
def test_a_job_that_kills_its_worker_twice_fails_and_is_not_run_again(stack_name, stack_for, tiny_model_dir):
    """A poisoned job (here: the test hook RPRM_FAULT_KILL_ON_CLAIM, a SIGKILL right after
    the claim, like the 2 GiB line that segfaulted psycopg) ends failed with the reason."""
    stack = stack_for(stack_name)
    job = {**stack.driver("setup", "import", str(tiny_model_dir)), "kind": "import"}
    poisoned = {**stack.env, "RPRM_FAULT_KILL_ON_CLAIM": "ImportJob"}
    for attempt in (1, 2):
        w = Worker("default", "default@faults", poisoned, stack.tmp / f"poisoned-{attempt}.log")
        w.wait_ready = lambda timeout=60: None  # it may die before it logs "ready."
        w.start()
        wait_for(lambda w=w: w.proc.poll() is not None, timeout=120, what=f"crash {attempt}")
        assert (
            w.proc.returncode == -9
            and stack.row(job["table"], job["id"], ["attempts"])["attempts"] == attempt
        )
    # Third start (still poisoned): the resumed task sees two deaths and fails the job.
    last = Worker("default", "default@faults", poisoned, stack.tmp / "poisoned-3.log").start()
    try:
        row = _finished(stack, job, timeout=120)
        time.sleep(6)  # longer than the stale timeout: nothing claims it again
        assert last.proc.poll() is None, "the worker died a third time"
    finally:
        last.stop()
    facts = stack.driver("check", "import", str(job["id"]))
    assert row["status"] == facts["status"] == "failed"
    assert "died 2 times" in facts["error"] and facts["attempts"] == 2
    assert facts["datasets"] == 0 and facts["solutions"] == 0 and facts["active_elsewhere"] == []


@pytest.mark.parametrize(("stack_name", "kind"), [("pg", "generation"), ("sqlite", "generation")])
def test_a_cancel_on_a_dead_workers_run_is_settled(stack_name, kind, stack_for, tiny_model_dir):
    rng = random.Random(f"{SEED}:cancel:{stack_name}:{kind}")
    stack = stack_for(stack_name)
    queue = QUEUE[kind]
    job = {**stack.driver("setup", kind, str(tiny_model_dir)), "kind": kind}
    first = stack.worker(queue, f"{queue}@faults")
    try:
        killed = _kill_mid_job(stack, job, first, rng)
    finally:
        first.stop()
    assert killed["status"] == "running", killed
    time.sleep(5)  # past RUN_STALE_AFTER_S: the heartbeat says the worker is dead
    answer = stack.driver("cancel", kind, str(job["id"]))
    assert answer["asked"] and answer["status"] == "cancelled" and answer["finished_at"], answer
    # The same worker name restarts: nothing of the cancelled run is resumed.
    again = stack.worker(queue, f"{queue}@faults")
    try:
        time.sleep(8)
        facts = stack.driver("check", kind, str(job["id"]))
    finally:
        again.stop()
    assert facts["status"] == "cancelled" and facts["attempts"] == 1 and facts["active_elsewhere"] == []
    assert facts["steps_done"] == killed["steps_done"] and facts["duplicates"] == 0
