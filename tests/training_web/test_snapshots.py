"""Snapshots are the training input: a run records its export snapshot (id, row counts,
rows hash), a retrain from it sees byte-identical rows, and the default SFT pool is the
teacher's (student samples join only when asked for by run)."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
import torch
from django.core.management import CommandError, call_command

from inference.models import GenerationRun
from training import actions, tasks
from training.core import runner
from training.data import preview_sft
from training.export import create_export_job, run_export_job
from training.models import ExportJob, ModelVersion, TrainingRun
from training.pools import eligible_critiques
from training.tasks import train

from .conftest import TRAIN_FAST, student_run_with, teacher_run


@pytest.fixture(autouse=True)
def _models_dir(settings, tmp_path):
    settings.MODELS_DIR = tmp_path / "models"
    settings.MEDIA_ROOT = tmp_path / "media"


def snapshot_of(user, **filters) -> ExportJob:
    job = create_export_job(user, {"kinds": ["sft"], "val_fraction": 0.3, **filters}, queue=False)
    run_export_job(job.id)
    job.refresh_from_db()
    assert job.status == ExportJob.Status.SUCCEEDED, job.error
    return job


@pytest.fixture
def received(monkeypatch):
    """The sha256 of the rows each SFT run hands the trainer (TRL rows, in order)."""
    hashes: list[str] = []
    real = runner.run_sft

    def recording(config, train, val, **kwargs):
        rows = [e.to_row() for e in train] + [None] + [e.to_row() for e in val]
        hashes.append(hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest())
        return real(config, train, val, **kwargs)

    monkeypatch.setattr(tasks, "run_sft", recording)  # the name the task calls
    return hashes


@pytest.mark.slow
def test_it_retrains_from_a_snapshot_on_byte_identical_rows(
    seed_run, demo_dataset, admin, tiny_model_dir, received
):
    torch.set_num_threads(1)
    job = snapshot_of(admin)
    hyper = {**TRAIN_FAST, "max_steps": 2, "eval_steps": 2, "save_steps": 2}
    first = actions.launch_training(
        "sft", str(tiny_model_dir), {}, hyper, admin, name="snap-a", queue=False, snapshot=job
    )
    first = train(first.id, worker="gpu@test")
    assert first.status == "succeeded", first.error
    # New teacher critiques after the snapshot change the live pool, not the snapshot.
    teacher_run(demo_dataset, endpoint_name="another-teacher")
    second = actions.launch_training(
        "sft", str(tiny_model_dir), {}, hyper, admin, name="snap-b", queue=False, snapshot=job
    )
    second = train(second.id, worker="gpu@test")
    assert second.status == "succeeded", second.error

    assert len(received) == 2 and received[0] == received[1]
    counts = {"sft_train": job.manifest["counts"]["sft_train"], "sft_val": job.manifest["counts"]["sft_val"]}
    for run in (first, second):
        assert run.snapshot_id == job.id and run.snapshot_sha256 == job.content_sha256 != ""
        assert run.snapshot_rows == counts and run.data_counts["train"] == counts["sft_train"] > 0
        version = ModelVersion.objects.get(training_run=run)
        assert (version.snapshot_id, version.snapshot_sha256, version.snapshot_rows) == (
            job.id,
            job.content_sha256,
            counts,
        )
        assert version.template == seed_run.template


def test_it_takes_a_snapshot_at_launch_and_records_it(seed_run, admin, tmp_path):
    run = actions.launch_training(
        "sft",
        str(tmp_path / "no-such-model"),
        {"runs": [seed_run.id], "val_fraction": 0.3},
        {},
        admin,
        queue=False,
        take_snapshot=True,
    )
    assert run.snapshot.status == ExportJob.Status.QUEUED
    assert run.snapshot.filters["runs"] == [seed_run.id] and run.snapshot.filters["kinds"] == ["sft"]
    result = train(run.id, worker="gpu@test")  # the model does not load: the data was read first
    assert result.status == "failed" and "no-such-model" in result.error
    job = ExportJob.objects.get(id=run.snapshot_id)
    assert job.status == ExportJob.Status.SUCCEEDED and len(job.content_sha256) == 64
    assert result.snapshot_sha256 == job.content_sha256
    assert result.snapshot_rows["sft_train"] == result.data_counts["train"] > 0


def test_it_refuses_a_snapshot_whose_rows_changed_on_disk(seed_run, admin, tmp_path):
    job = snapshot_of(admin)
    path = job.folder() / "sft_train.jsonl"
    path.write_text(path.read_text().replace("Yes", "No", 1))
    run = actions.launch_training("sft", str(tmp_path / "m"), {}, {}, admin, queue=False, snapshot=job)
    assert run.template == seed_run.template  # the snapshot's, known at launch
    result = train(run.id, worker="gpu@test")
    assert result.status == "failed" and "changed on disk" in result.error and not result.snapshot_sha256


def test_it_refuses_a_snapshot_without_rows_of_the_kind(seed_run, admin, tmp_path):
    job = snapshot_of(admin)
    with pytest.raises(ValueError, match="no DPO rows"):
        actions.launch_training("dpo", str(tmp_path / "m"), {}, {}, admin, queue=False, snapshot=job)
    queued = create_export_job(admin, {"kinds": ["sft"]}, queue=False)
    with pytest.raises(ValueError, match="queued"):
        actions.launch_training("sft", str(tmp_path / "m"), {}, {}, admin, queue=False, snapshot=queued)


def test_the_default_sft_pool_is_the_teachers(seed_run, demo_dataset, admin):
    steps = {
        c.step: ["Yes" if c.step.label == "correct" else "No"]
        for c in seed_run.critiques.select_related("step")
    }
    student = student_run_with(demo_dataset, steps)
    teacher_ids = set(eligible_critiques().values_list("run_id", flat=True))
    assert teacher_ids == {seed_run.id}
    asked = eligible_critiques(runs=GenerationRun.objects.filter(id=student.id))
    assert set(asked.values_list("run_id", flat=True)) == {student.id}
    job = snapshot_of(admin)
    assert {r["id"] for r in job.manifest["source_runs"]} == {seed_run.id}
    preview = preview_sft({})
    assert preview["pool"]["agreeing"] == seed_run.critiques.filter(matches_label=True).count()
    run = actions.launch_training("sft", "some/base", {}, {}, admin, queue=False, take_snapshot=True)
    assert TrainingRun.objects.get(id=run.id).snapshot.filters["runs"] == []


def test_the_train_command_takes_a_snapshot(seed_run, admin, tmp_path):
    job = snapshot_of(admin)
    out = io.StringIO()
    call_command("train", "sft", "--base", "some/base", "--snapshot", str(job.uuid), "--hold", stdout=out)
    run = TrainingRun.objects.get()
    assert run.snapshot_id == job.id
    call_command("train", "sft", "--base", "some/base", "--runs", str(seed_run.id), "--take-snapshot", "--hold",
                 stdout=out)  # fmt: skip
    assert TrainingRun.objects.latest("id").snapshot.filters["runs"] == [seed_run.id]
    with pytest.raises(CommandError, match="no export snapshot"):
        call_command("train", "sft", "--base", "some/base", "--snapshot", "nope", "--hold", stdout=out)
