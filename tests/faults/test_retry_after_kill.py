"""Retry after a kill (the loop issue's done-when): a real Celery evaluation worker is
killed (SIGKILL) once half the solutions are scored; the operator cancels the stuck run
(its worker is dead, so it settles at once) and retries it with `manage.py retry_run`; a
fresh worker resumes it from its stored scores and the run ends with exactly one run's
worth of critiques: every scored step has K samples, and the step counter, which each
committed batch adds to, equals the steps stored (a solution scored twice would count
twice). Postgres + Redis, the tiny model on CPU."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from django.conf import settings

from tests.conftest import wait_for
from tests.faults.test_worker_kills import stack_for  # noqa: F401 - the fixture

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

FACTS = """
import json, django
django.setup()
from evaluation.models import EvaluationRun, SolutionScore
run = EvaluationRun.objects.get(id={id})
rows = list(SolutionScore.objects.filter(run=run))
print("RESULT " + json.dumps({{
    "status": run.status, "error": run.error, "attempts": run.attempts, "n_samples": run.n_samples,
    "solutions_done": run.solutions_done, "solutions_total": run.solutions_total, "steps_done": run.steps_done,
    "scores": len(rows), "distinct": len({{r.solution_id for r in rows}}),
    "steps_stored": sum(len(r.step_scores) for r in rows),
    "samples": sum(len(s) for r in rows for s in r.samples),
    "short": sum(1 for r in rows for s in r.samples if len(s) != run.n_samples),
}}))
"""
CANCEL = """
import django
django.setup()
from evaluation.models import EvaluationRun
from rprm_web import runs
print("RESULT", runs.request_cancel(EvaluationRun, {id}))
"""


def _python(stack, code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, env=stack.env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return line[7:]


def _facts(stack, run_id: int) -> dict:
    import json

    return json.loads(_python(stack, FACTS.format(id=run_id)))


def test_a_killed_evaluation_is_retried_and_generates_nothing_twice(stack_for, tiny_model_dir):  # noqa: F811
    stack = stack_for("pg")
    job = stack.driver("setup", "evaluation", str(tiny_model_dir))  # 8 solutions, one per batch, K=2
    first = stack.worker("gpu", "gpu@retry-1")
    try:
        half = wait_for(
            lambda: (r := stack.row(job["table"], job["id"], ["solutions_done", "solutions_total"]))
            and r["solutions_total"] and r["solutions_done"] * 2 >= r["solutions_total"] and r,
            timeout=300, every=0.05, what="half the solutions scored",
        )  # fmt: skip
        first.kill()
    finally:
        first.stop()
    time.sleep(1)  # a commit sent just before the kill still lands
    killed = _facts(stack, job["id"])
    assert killed["status"] == "running" and 0 < killed["solutions_done"] < killed["solutions_total"], killed
    print(f"killed at {killed['solutions_done']} of {killed['solutions_total']} solutions (saw {half})")

    # The operator: Cancel settles the stuck run (its heartbeat is stale: RUN_STALE_AFTER_S=4).
    time.sleep(5)
    assert _python(stack, CANCEL.format(id=job["id"])) == "cancelled"
    retry = subprocess.run([sys.executable, "manage.py", "retry_run", "evaluation", str(job["id"])],
                           cwd=settings.BASE_DIR, env=stack.env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert retry.returncode == 0 and "queued again" in retry.stdout, retry.stderr[-2000:]
    assert stack.row(job["table"], job["id"], [])["status"] == "queued"

    second = stack.worker("gpu", "gpu@retry-2")
    try:
        wait_for(lambda: stack.row(job["table"], job["id"], [])["status"] not in ("queued", "running"),
                 timeout=400, every=0.5, what="the retried run to finish")  # fmt: skip
    finally:
        second.stop()
    done = _facts(stack, job["id"])
    assert done["status"] == "succeeded", done["error"][-2000:]
    assert done["scores"] == done["distinct"] == done["solutions_done"] == done["solutions_total"] == 8
    # One run's worth: K samples for every stored step, and no step counted twice.
    assert done["short"] == 0 and done["samples"] == done["n_samples"] * done["steps_stored"]
    assert done["steps_done"] == done["steps_stored"], done
    assert done["attempts"] == 2  # the killed claim and the retried one
