"""Training fixtures: the demo dataset, a teacher run written by a scripted backend,
student runs with constructed critiques. Data comes through the project's importer,
run processor and actions."""

from __future__ import annotations

import pytest

from annotations.actions import import_file
from annotations.demo import write_demo_processbench
from annotations.models import Step
from inference.actions import create_run, endpoint_for
from inference.models import Critique, GenerationRun
from inference.runner import process_run
from tests.inference.test_runner import SECTIONS, ScriptedBackend

TRAIN_FAST = {
    # Learnable on CPU in a few steps: near-identical completions, lr 1e-3, tiny batches.
    "learning_rate": 1e-3,
    "effective_batch_size": 4,
    "per_device_batch_size": 2,
    "warmup_ratio": 0.0,
    "max_steps": 6,
    "logging_steps": 1,
    "eval_steps": 3,
    "save_steps": 3,
    "bf16": False,
    "gradient_checkpointing": False,
}


def critique_text(verdict: str) -> str:
    return SECTIONS.format(calc="checked") + f"Verification: Is the step correct (Yes/No)? {verdict}"


@pytest.fixture
def demo_dataset(db, tmp_path):
    # Tests with a real worker or live server also request transactional_db, which then wins.
    return import_file(
        write_demo_processbench(tmp_path / "demo.json"), dataset_name="demo", fmt="processbench"
    ).dataset


def teacher_run(dataset, *, endpoint_name: str = "scripted-teacher", template=None) -> GenerationRun:
    """Two samples per labelled step: sample 0 says Yes, sample 1 says No, so every
    labelled step has exactly one critique that agrees with its label."""
    endpoint = endpoint_for(endpoint_name, backend="transformers")
    run = create_run(
        dataset=dataset,
        endpoint=endpoint,
        template=template,
        queue=False,
        n_samples=2,
        step_filter={"up_to_first_error": True},
    )
    process_run(run.id, backend=ScriptedBackend(answer=lambda p, i: "Yes" if i == 0 else "No"))
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.SUCCEEDED
    return run


@pytest.fixture
def seed_run(demo_dataset):
    return teacher_run(demo_dataset)


def student_run_with(
    dataset, verdicts_by_step: dict[Step, list[str]], *, endpoint=None, template=None
) -> GenerationRun:
    """A finished student sampling run whose critiques are exactly the given verdicts."""
    from inference.runner import matches_label

    endpoint = endpoint or endpoint_for("scripted-student", backend="transformers", role="student")
    run = create_run(
        dataset=dataset,
        endpoint=endpoint,
        template=template,
        kind=GenerationRun.Kind.STUDENT_SAMPLE,
        queue=False,
        n_samples=max(len(v) for v in verdicts_by_step.values()),
    )
    rows = []
    for step, verdicts in verdicts_by_step.items():
        for i, v in enumerate(verdicts):
            verdict = {"Yes": "yes", "No": "no"}.get(v, "unparseable")
            rows.append(
                Critique(
                    run=run,
                    step=step,
                    sample_index=i,
                    text=critique_text(v),
                    verdict=verdict,
                    strict=verdict != "unparseable",
                    matches_label=matches_label(verdict, step.label),
                )
            )
    Critique.objects.bulk_create(rows)
    GenerationRun.objects.filter(id=run.id).update(status=GenerationRun.Status.SUCCEEDED)
    run.refresh_from_db()
    return run
