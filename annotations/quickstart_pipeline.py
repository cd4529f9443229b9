"""The quickstart's pipeline stages, run through the real workers.

Each stage queues a run on its queue, waits for it with a progress line, and
prints its summary; later stages (training, evaluation) are added here.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from django.conf import settings


def _wait(command, model, pk: int, label: str, timeout_s: float = 1800):
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        obj = model.objects.get(pk=pk)
        done, total = getattr(obj, "steps_done", 0), getattr(obj, "steps_total", 0)
        sys.stdout.write(f"\r  {label}: {obj.status} {done}/{total}   ")
        sys.stdout.flush()
        if obj.is_finished:
            sys.stdout.write("\n")
            return obj
        time.sleep(1)
    raise SystemExit(f"{label} did not finish within {timeout_s:.0f} s; see var/logs/gpu-worker.log")


def tiny_model_dir() -> Path:
    from inference.core.tiny_model import build_tiny_model

    path = Path(settings.MODELS_DIR) / "tiny-qwen2"
    if not (path / "config.json").exists():
        build_tiny_model(path)
    return path


def teacher_pass(command, dataset):
    from inference.actions import create_run, endpoint_for
    from inference.models import GenerationRun

    existing = GenerationRun.objects.filter(dataset=dataset, kind=GenerationRun.Kind.TEACHER_SEED,
                                            endpoint__name="tiny-teacher").first()
    if existing and existing.status == GenerationRun.Status.SUCCEEDED:
        return existing
    endpoint = endpoint_for("tiny-teacher", backend="transformers")
    if endpoint.path_or_url != str(tiny_model_dir()):
        endpoint.path_or_url = str(tiny_model_dir())
        endpoint.save(update_fields=["path_or_url"])
    # A random tiny model writes noise: few tokens suffice to exercise the pipeline.
    run = existing or create_run(dataset=dataset, endpoint=endpoint, n_samples=2, max_new_tokens=48,
                                 temperature=0.8, batch_size=6, seed=0,
                                 step_filter={"up_to_first_error": True})
    run = _wait(command, GenerationRun, run.pk, f"teacher run #{run.pk}")
    s = run.summary
    command.stdout.write(
        f"  teacher run #{run.pk} {run.status}: {s.get('critiques', 0)} critiques, strict parse rate "
        f"{s.get('parse_rate')}, agreement {s.get('agreement')} (a random tiny model: expect noise)"
    )
    return run


def demo_teacher(command, dataset):
    from annotations.demo_critiques import write_demo_critiques
    from inference.critique_import import import_critiques

    path = write_demo_critiques(Path(settings.VAR_DIR) / "demo" / "demo_critiques.jsonl")
    run, _ = import_critiques(path, dataset=dataset, model_name="demo-teacher (hand-written)")
    from annotations.audit import audit_run

    audit_run(run.id)  # small: compute the review signals here so the queue is ready at once
    s = run.summary
    command.stdout.write(f"  hand-written demo teacher: {s['critiques']} critiques, agreement {s['agreement']}, "
                         f"{s['sft_eligible']} SFT-eligible")
    return run


def run_pipeline(command, dataset) -> None:
    command.stdout.write(f"• Demo dataset: {dataset.n_solutions} solutions, {dataset.n_steps} steps")
    command.stdout.write("• Teacher pass (tiny random Qwen2 on the gpu worker)")
    teacher_pass(command, dataset)
    command.stdout.write("• Recorded critiques (a hand-written demo teacher, for the review queue)")
    demo_teacher(command, dataset)
