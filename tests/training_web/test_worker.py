"""Real training through a real Celery gpu worker on Postgres + Redis, on the tiny model.

SFT from teacher critiques (loss down, model registered, reloads and scores a step),
then DPO from a student sampling run's pairs with the SFT model as the reference;
cancellation, failure with a traceback, and a worker killed mid-training resuming
from its last checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from inference.runner import process_run, step_contexts
from tests.conftest import wait_for
from tests.inference.test_runner import ScriptedBackend
from training import actions
from training.models import ModelVersion, PreferencePair, TrainingRun

from .conftest import TRAIN_FAST, critique_text

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _setup(settings, tmp_path):
    torch.set_num_threads(1)  # 2 shared cores: the worker trains, this process only checks
    settings.MODELS_DIR = tmp_path / "models"


def finished(run: TrainingRun, timeout: float = 300) -> TrainingRun:
    wait_for(
        lambda: TrainingRun.objects.get(id=run.id).is_finished, timeout=timeout, what=f"training run {run.id}"
    )
    run.refresh_from_db()
    return run


def losses(run: TrainingRun, field: str = "loss") -> list[float]:
    return list(
        run.metrics.exclude(**{f"{field}__isnull": True}).order_by("step").values_list(field, flat=True)
    )


def test_it_trains_sft_then_dpo_and_registers_both(seed_run, demo_dataset, tiny_model_dir, start_worker):
    start_worker("gpu", name="gpu@train")
    sft = actions.launch_training(
        "sft", str(tiny_model_dir), {"runs": [seed_run.id], "val_fraction": 0.3}, TRAIN_FAST, name="tiny-sft"
    )
    sft = finished(sft)
    assert sft.status == "succeeded", sft.error
    loss = losses(sft)
    assert len(loss) == 6 and loss[-1] < loss[0], loss  # recorded on the row, and going down
    assert list(sft.metrics.exclude(eval_loss=None).values_list("step", flat=True)) == [3, 6]
    assert (sft.step, sft.max_steps) == (6, 6) and sft.tokens_per_second > 0 and sft.worker == "gpu@train"
    assert sft.data_counts["train"] > 0 and sft.data_counts["train_yes"] == sft.data_counts["train_no"]

    version = ModelVersion.objects.get(training_run=sft)
    assert (version.name, version.kind, version.template) == ("tiny-sft", "sft", seed_run.template)
    assert version.base_model == str(tiny_model_dir) and version.parent is None
    assert Path(version.path, "model.safetensors").is_file()
    assert version.data_manifest["counts"]["train"] == sft.data_counts["train"]

    # The checkpoint reloads through the inference backend and scores a step.
    from inference.core.backends.transformers_backend import TransformersBackend

    backend = TransformersBackend(version.path, device="cpu", dtype="float32")
    step_id = seed_run.critiques.first().step_id
    question, previous, now, _step = step_contexts([step_id])[step_id]
    prompt = version.template.to_core().render_prompt(question, previous, now, tokenizer=backend.tokenizer)
    (p_yes,) = backend.score_texts([prompt], [critique_text("Yes")])
    assert 0.0 <= p_yes <= 1.0
    backend.close()

    # Student sampling with the SFT model (its endpoint and template); the critiques come
    # from a scripted backend so that every labelled step has both sides.
    student = actions.sample_student(version, demo_dataset, 3, queue=False)
    process_run(student.id, backend=ScriptedBackend(answer=lambda p, i: "No" if i == 1 else "Yes"))
    student.refresh_from_db()
    assert student.kind == "student_sample" and student.endpoint.path_or_url == version.path

    dpo = actions.launch_training(
        "dpo",
        version,
        # The scripted student says No only on sample 1: one-sided pairs, which the 1:1 chosen Yes/No balance would empty.
        {"student_run": student.id, "val_fraction": 0.3, "balance": False},
        {**TRAIN_FAST, "learning_rate": 1e-4},
    )
    dpo = finished(dpo)
    assert dpo.status == "succeeded", dpo.error
    pairs = PreferencePair.objects.filter(run=student)
    assert dpo.data_counts["pairs"] == pairs.count() > 0
    assert all(
        p.chosen.matches_label and not p.rejected.matches_label
        for p in pairs.select_related("chosen", "rejected")
    )
    assert len(losses(dpo)) == 6 and losses(dpo, "eval_loss")
    dpo_version = ModelVersion.objects.get(training_run=dpo)
    assert dpo_version.kind == "dpo" and dpo_version.parent == version
    assert dpo_version.base_model == str(tiny_model_dir) and dpo_version.template == student.template
    assert dpo_version.data_manifest["reference"] == version.path  # the frozen SFT model
    assert [v.name for v in dpo_version.lineage()] == [dpo_version.name, "tiny-sft"]


def test_it_cancels_cooperatively_and_records_failures(seed_run, tiny_model_dir, start_worker):
    start_worker("gpu", name="gpu@cancel")
    # A length cap below the data would cut the verdict lines: the core refuses, the run fails.
    failing = actions.launch_training(
        "sft", str(tiny_model_dir), {"runs": [seed_run.id]}, {**TRAIN_FAST, "max_length": 64}
    )
    long = actions.launch_training(
        "sft",
        str(tiny_model_dir),
        {"runs": [seed_run.id], "val_fraction": 0},
        {**TRAIN_FAST, "max_steps": 500, "save_steps": 1000},
    )
    failing = finished(failing)
    assert failing.status == "failed"
    # Reviewers read one line; the traceback is the staff-only detail (runs.split_error).
    assert failing.error.startswith("TruncationError") and "\n" not in failing.error
    assert "Traceback (most recent call last)" in failing.error_detail
    assert not ModelVersion.objects.filter(training_run=failing).exists()

    wait_for(lambda: TrainingRun.objects.get(id=long.id).step >= 2, timeout=180, what="training progress")
    assert actions.request_cancel(long)
    long = finished(long, timeout=120)
    assert long.status == "cancelled" and 2 <= long.step < 500
    assert not ModelVersion.objects.filter(training_run=long).exists()
    assert "cancel requested" in long.log_tail


def test_a_killed_worker_resumes_from_the_last_checkpoint(seed_run, tiny_model_dir, start_worker):
    worker = start_worker("gpu", name="gpu@resume")
    run = actions.launch_training(
        "sft",
        str(tiny_model_dir),
        {"runs": [seed_run.id], "val_fraction": 0.3},
        {**TRAIN_FAST, "max_steps": 40, "eval_steps": 4, "save_steps": 4},
    )
    wait_for(lambda: TrainingRun.objects.get(id=run.id).last_checkpoint, timeout=180, what="a checkpoint")
    worker.kill()  # SIGKILL: nothing is recorded, the message is not acked
    run.refresh_from_db()
    assert run.status == "running" and run.step < 40
    start_worker("gpu", name="gpu@resume")  # same name: re-queues what it held
    run = finished(run)
    assert run.status == "succeeded", run.error
    assert run.result["resumed_from"] and "checkpoint-" in run.result["resumed_from"]
    assert run.result["start_step"] > 0 and (run.step, run.max_steps) == (40, 40)
    assert list(run.metrics.order_by("step").values_list("step", flat=True)) == list(range(1, 41))
    assert ModelVersion.objects.filter(training_run=run).count() == 1
