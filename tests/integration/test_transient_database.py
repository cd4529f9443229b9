"""A lost database connection (pg_terminate_backend, as a failover or a restarted pooler
does) inside a running job, on Postgres with a real Celery worker: the lifecycle reconnects,
checks its lease and resumes from what is stored, so the job ends succeeded with exactly the
expected rows, in one claim (a retry is not a crash)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from django.db import connection

from annotations.actions import create_import_job, import_file
from annotations.demo import DEMO_ROWS, write_demo_processbench
from annotations.models import Dataset, ImportJob, Solution, Step
from inference.actions import create_run, endpoint_for
from inference.models import Critique, GenerationRun
from rprm_web import runs
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def terminate_other_connections() -> int:
    """Every other session on the test database: the worker's job, heartbeat and sweep connections."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return sum(1 for (ok,) in cur.fetchall() if ok)


@pytest.fixture
def fast_retries(worker_env):
    worker_env["RUN_TRANSIENT_BACKOFF_S"] = "0.5"
    return worker_env


def test_it_resumes_a_generation_run_after_its_connection_is_terminated(transactional_db, tmp_path,
                                                                       tiny_model_dir, fast_retries,
                                                                       start_worker):  # fmt: skip
    demo = import_file(write_demo_processbench(tmp_path / "demo.json"), dataset_name="demo",
                       fmt="processbench").dataset  # fmt: skip
    worker = start_worker("gpu", name="gpu@transient")
    run = create_run(dataset=demo, endpoint=endpoint_for(str(tiny_model_dir), backend="transformers"), n_samples=2,
                     max_new_tokens=24, temperature=1.0, batch_size=1, seed=7)  # fmt: skip
    wait_for(lambda: GenerationRun.objects.get(id=run.id).steps_done >= 4, timeout=180, what="progress")
    at = GenerationRun.objects.get(id=run.id).steps_done
    assert terminate_other_connections() >= 1
    t0 = time.monotonic()
    wait_for(lambda: GenerationRun.objects.get(id=run.id).steps_done > at + 1, timeout=120, what="resumed progress")
    resumed_s = time.monotonic() - t0
    wait_for(lambda: GenerationRun.objects.get(id=run.id).is_finished, timeout=300, what="the run to end")
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.SUCCEEDED, run.error
    critiques = Critique.objects.filter(run=run)
    assert critiques.count() == 72 == run.critiques_done == run.steps_total * run.n_samples
    assert critiques.values("step_id", "sample_index").distinct().count() == 72  # no duplicates
    assert run.steps_done == 36 and run.summary["critiques"] == 72
    assert run.attempts == 1 and run.worker == "gpu@transient"
    assert "database error" in worker.log_text() and "retry 1 of" in worker.log_text()
    print(f"[transient] generation: connection terminated at step {at}/36, progress again after {resumed_s:.1f} s")


def _processbench(path: Path, n: int) -> Path:
    rows = []
    for i in range(n):
        rid, problem, steps, label, final_ok = DEMO_ROWS[i % len(DEMO_ROWS)]
        rows.append({"id": f"t-{i}", "generator": "g", "problem": f"{problem} [{i}]", "steps": steps,
                     "final_answer_correct": final_ok, "label": label})  # fmt: skip
    path.write_text(json.dumps(rows))
    return path


def test_it_retries_an_import_whose_connection_is_terminated(transactional_db, tmp_path, fast_retries,
                                                            start_worker):  # fmt: skip
    n = 20_000
    worker = start_worker("default", name="default@transient")
    job = create_import_job(_processbench(tmp_path / "big.json", n), "transient-import", "processbench")
    runs.enqueue(ImportJob, job.id, on_commit=False)
    wait_for(lambda: ImportJob.objects.get(id=job.id).bytes_done > 0, timeout=120, every=0.05, what="import progress")
    assert ImportJob.objects.get(id=job.id).status == ImportJob.Status.RUNNING
    assert terminate_other_connections() >= 1
    t0 = time.monotonic()
    wait_for(lambda: ImportJob.objects.get(id=job.id).is_finished, timeout=300, what="the import to end")
    took = time.monotonic() - t0
    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    dataset = Dataset.objects.get(name="transient-import")
    solutions = Solution.objects.filter(dataset=dataset)
    assert solutions.count() == n == dataset.n_solutions
    assert solutions.values("source_id").distinct().count() == n  # no duplicates
    expected_steps = sum(len(DEMO_ROWS[i % len(DEMO_ROWS)][2]) for i in range(n))
    assert Step.objects.filter(solution__dataset=dataset).count() == expected_steps
    assert job.attempts == 1 and "retry 1 of" in worker.log_text()
    print(f"[transient] import of {n} solutions: retried and succeeded {took:.1f} s after the termination")
