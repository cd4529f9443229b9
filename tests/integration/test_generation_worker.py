"""Teacher runs through the real gpu worker on Postgres, including a worker kill."""

from __future__ import annotations

import pytest

from annotations.actions import import_file
from annotations.demo import write_demo_processbench
from inference.actions import create_run, endpoint_for
from inference.models import Critique, GenerationRun
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def demo(transactional_db, tmp_path):
    return import_file(write_demo_processbench(tmp_path / "demo.json"), dataset_name="demo", fmt="processbench").dataset


def _run(demo, tiny_model_dir, **params):
    endpoint = endpoint_for(str(tiny_model_dir), backend="transformers")
    return create_run(dataset=demo, endpoint=endpoint, n_samples=2, max_new_tokens=24, temperature=1.0,
                      batch_size=1, seed=7, **params)


def test_it_completes_a_run_and_resumes_after_a_worker_kill(demo, tiny_model_dir, start_worker):
    worker = start_worker("gpu", name="gpu@test")
    run = _run(demo, tiny_model_dir)
    assert run.steps_total == 36
    # Kill -9 mid-run: the message was not acked, the run row says RUNNING.
    wait_for(lambda: GenerationRun.objects.get(id=run.id).steps_done >= 4, timeout=120, what="progress")
    worker.kill()
    killed = GenerationRun.objects.get(id=run.id)
    assert killed.status == GenerationRun.Status.RUNNING and killed.steps_done < 36
    before = Critique.objects.filter(run=run).count()
    assert before >= 8
    # Same worker name restarts: it re-queues the run it held and resumes.
    start_worker("gpu", name="gpu@test")
    wait_for(lambda: GenerationRun.objects.get(id=run.id).is_finished, timeout=240, what="the resumed run")
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.SUCCEEDED, run.error
    critiques = Critique.objects.filter(run=run)
    assert critiques.count() == 72 == run.critiques_done
    assert critiques.values("step_id", "sample_index").distinct().count() == 72
    assert run.steps_done == 36 and run.summary["critiques"] == 72
    assert all(c.p_yes is None or 0 <= c.p_yes <= 1 for c in critiques)


def test_it_cancels_a_running_run_between_batches(demo, tiny_model_dir, start_worker):
    from inference.actions import request_cancel

    start_worker("gpu", name="gpu@cancel")
    run = _run(demo, tiny_model_dir)
    wait_for(lambda: GenerationRun.objects.get(id=run.id).steps_done >= 2, timeout=120, what="progress")
    assert request_cancel(run)
    wait_for(lambda: GenerationRun.objects.get(id=run.id).is_finished, timeout=120, what="cancellation")
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.CANCELLED
    assert run.steps_done < 36
