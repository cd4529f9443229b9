"""The training task's bookkeeping, in process: claiming, the progress sink, failure."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from rprm_web import runs
from training import actions
from training.models import TrainingMetric, TrainingRun
from training.tasks import RowSink, recover_interrupted_runs, train


def claim(run_id: int, worker: str) -> TrainingRun | None:
    return runs.claim(TrainingRun, run_id, worker)


@pytest.fixture
def run(seed_run, settings, tmp_path):
    settings.MODELS_DIR = tmp_path / "models"
    return actions.launch_training("sft", "some/base", {"runs": [seed_run.id]}, queue=False)


def test_it_claims_a_queued_run_once(run):
    claimed = claim(run.id, "gpu@a")
    assert claimed.status == "running" and claimed.worker == "gpu@a" and claimed.started_at
    assert claim(run.id, "gpu@b") is None  # held by a live worker
    assert claim(run.id, "gpu@a") is not None  # the same name after a restart


def test_it_takes_over_an_abandoned_run_and_settles_a_cancel_left_behind(run, seed_run):
    TrainingRun.objects.filter(id=run.id).update(
        status="running", worker="gpu@dead", heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    assert claim(run.id, "gpu@b").worker == "gpu@b"
    other = actions.launch_training("sft", "some/base", {"runs": [seed_run.id]}, queue=False)
    TrainingRun.objects.filter(id=other.id).update(
        status="running",
        worker="gpu@dead",
        cancel_requested=True,
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    assert claim(other.id, "gpu@b") is None
    other.refresh_from_db()
    assert other.status == "cancelled" and other.finished_at


def test_it_requeues_the_runs_a_restarted_worker_held(run, monkeypatch):
    from training import tasks

    sent = []
    monkeypatch.setattr(tasks.run_training, "delay", lambda run_id: sent.append(run_id))
    TrainingRun.objects.filter(id=run.id).update(status="running", worker="gpu@test")
    assert recover_interrupted_runs("gpu@test") == [run.id] == sent
    assert recover_interrupted_runs("gpu@other") == []


def test_the_sink_merges_logs_throttles_writes_and_reads_cancel(run, django_assert_max_num_queries):
    run = claim(run.id, "gpu@a")
    sink = RowSink(run, flush_every=3600, poll_every=0)
    sink.flush()  # starts the throttle window
    with django_assert_max_num_queries(0):
        sink.on_log(1, 6, {"loss": 2.5, "learning_rate": 1e-3, "grad_norm": float("nan"), "epoch": 0.5})
        sink.on_log(2, 6, {"loss": 2.0})
    assert not TrainingMetric.objects.filter(run=run).exists()
    sink.on_log(2, 6, {"eval_loss": 2.2, "eval_runtime": 0.1})  # an evaluation writes at once
    rows = {m.step: m for m in TrainingMetric.objects.filter(run=run)}
    assert rows[1].loss == 2.5 and rows[1].grad_norm is None and rows[1].learning_rate == 1e-3
    assert rows[2].loss == 2.0 and rows[2].eval_loss == 2.2 and rows[2].extra == {"eval_runtime": 0.1}
    run.refresh_from_db()
    assert (run.step, run.max_steps) == (2, 6) and "step 2/6 loss=2" in run.log_tail
    assert run.chart_data()["loss"] == [{"x": 1, "y": 2.5}, {"x": 2, "y": 2.0}]
    assert run.chart_data()["eval_loss"] == [{"x": 2, "y": 2.2}]
    assert not sink.should_stop()
    actions.request_cancel(run)  # running: the flag is what the sink reads
    assert sink.should_stop()
    sink.on_checkpoint(f"{run.output_dir}/checkpoint-2")
    run.refresh_from_db()
    assert run.last_checkpoint.endswith("checkpoint-2") and "cancel requested" in run.log_tail


def test_it_records_a_failure_with_a_public_line_and_the_traceback_for_staff(run, tmp_path):
    TrainingRun.objects.filter(id=run.id).update(base_model=str(tmp_path / "no-such-model"))
    result = train(run.id, worker="gpu@test")
    assert result.status == "failed" and result.finished_at
    assert "\n" not in result.error and len(result.error) <= runs.MAX_PUBLIC_CHARS
    assert "Traceback (most recent call last)" not in result.error
    assert "Traceback (most recent call last)" in result.error_detail and "no-such-model" in result.error_detail
    assert result.data_counts["train"] > 0  # the data was built before the model failed to load
    assert "failed:" in result.log_tail


def test_it_fails_clearly_when_the_selection_has_no_rows(demo_dataset, settings, tmp_path):
    settings.MODELS_DIR = tmp_path / "models"
    run = actions.launch_training("sft", "some/base", {"datasets": [demo_dataset.id]}, queue=False)
    result = train(run.id, worker="gpu@test")
    assert result.status == "failed" and "TrainingDataError: no training rows" in result.error
