"""manage.py build_pairs and manage.py train (launching; --execute is in test_multiprocess)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from annotations.models import Step
from training.models import PreferencePair, TrainingRun

from .conftest import student_run_with


def test_it_builds_pairs_from_the_command_line(demo_dataset):
    steps = Step.objects.filter(solution__dataset=demo_dataset, label="incorrect").order_by("id")[:2]
    run = student_run_with(demo_dataset, {steps[0]: ["No", "Yes", "Yes"], steps[1]: ["No", "No", "Yes"]})
    out = StringIO()
    call_command("build_pairs", str(run.id), "--min-agree-fraction", "0.3333", "--no-balance", stdout=out)
    assert (
        out.getvalue().startswith("2 pairs over 1 steps (2 new)")
        and "1 dropped by the filter" in out.getvalue()
    )
    assert PreferencePair.objects.filter(run=run).count() == 2
    with pytest.raises(CommandError, match="no generation run"):
        call_command("build_pairs", "99999")


def test_it_launches_runs_from_the_command_line(seed_run, settings, tmp_path):
    settings.MODELS_DIR = tmp_path / "models"
    out = StringIO()
    call_command(
        "train",
        "sft",
        "--base",
        "some/base",
        "--runs",
        str(seed_run.id),
        "--max-steps",
        "6",
        "--set",
        "eval_steps=3",
        "--hold",
        stdout=out,
    )
    run = TrainingRun.objects.get()
    assert f"--execute {run.uuid}" in out.getvalue() and run.status == "queued"
    assert run.hyperparameters == {"max_steps": 6, "eval_steps": 3}
    with pytest.raises(CommandError, match="unknown hyperparameters"):
        call_command("train", "sft", "--base", "m", "--set", "lr=1", "--hold")
    with pytest.raises(CommandError, match="--student-run"):
        call_command("train", "dpo", "--base", "m")
