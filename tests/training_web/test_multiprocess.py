"""Multi-process training as on a multi-GPU box (`accelerate launch` / torchrun running
`manage.py train --execute`), here with two CPU processes over gloo: every rank builds
the same data, only the main one claims the run and writes to it."""

from __future__ import annotations

import subprocess

import pytest
from django.conf import settings as django_settings

from training import actions
from training.models import ModelVersion

from .conftest import TRAIN_FAST

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_two_processes_train_one_run_and_only_the_main_one_writes(
    seed_run, tiny_model_dir, worker_env, settings, tmp_path
):
    settings.MODELS_DIR = tmp_path / "models"
    run = actions.launch_training(
        "sft",
        str(tiny_model_dir),
        {"runs": [seed_run.id], "val_fraction": 0.3},
        {**TRAIN_FAST, "per_device_batch_size": 1},
        queue=False,
    )
    # ACCELERATE_USE_CPU: DDP over gloo (on GPUs the launcher's NCCL setup needs nothing).
    env = {**worker_env, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
    done = subprocess.run(
        [
            f"{django_settings.BASE_DIR}/.venv/bin/torchrun",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29533",
            "manage.py",
            "train",
            "--execute",
            str(run.uuid),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=django_settings.BASE_DIR,
    )
    run.refresh_from_db()
    assert done.returncode == 0 and run.status == "succeeded", done.stderr[-3000:] + run.error
    assert run.result["batch"] == {
        "effective": 4,
        "per_device": 1,
        "gradient_accumulation": 2,
        "world_size": 2,
    }
    assert "(2 processes)" in run.log_tail and run.log_tail.count("claimed by") == 1
    assert list(run.metrics.values_list("step", flat=True)) == [1, 2, 3, 4, 5, 6]
    assert ModelVersion.objects.filter(training_run=run).count() == 1
