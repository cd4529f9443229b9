"""An evaluation through the real gpu worker (Celery, Redis, Postgres) on the tiny model."""

from __future__ import annotations

import pytest

from evaluation.models import EvaluationRun, SolutionScore
from evaluation.tasks import process_evaluation_run
from evaluation.workflow import create_evaluation
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TASK = "evaluation.tasks.process_evaluation_run"


def test_it_runs_an_evaluation_on_the_gpu_worker(transactional_db, start_worker, pb_datasets, tiny_endpoint):
    worker = start_worker("gpu", name="gpu-eval@test")
    run = create_evaluation(benchmark="processbench", datasets=pb_datasets, endpoint=tiny_endpoint, n_samples=2,
                            solution_limit=4, batch_size=2, seed=1)  # fmt: skip
    wait_for(lambda: EvaluationRun.objects.get(id=run.id).is_finished, timeout=240, what="the evaluation")
    run.refresh_from_db()
    assert run.status == EvaluationRun.Status.SUCCEEDED, run.error
    assert run.worker == "gpu-eval@test" and run.solutions_done == 4 and run.steps_done > 0
    assert SolutionScore.objects.filter(run=run).count() == 4
    assert [p["k"] for p in run.results["k_scaling"]] == [1, 2]
    # Delivered again (a late ack after a crash): the finished run is not claimed, nothing is added.
    finished_at = run.finished_at
    process_evaluation_run.delay(run.id)
    wait_for(lambda: worker.log_text().count(f"Task {TASK}[") >= 4, timeout=60, what="the second delivery")
    run.refresh_from_db()
    assert SolutionScore.objects.filter(run=run).count() == 4 and run.finished_at == finished_at
