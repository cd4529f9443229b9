"""The quickstart's pipeline stages, run through the real workers.

Each stage queues a run on its queue, waits for it with a progress line, and
prints its summary: the teacher pass, SFT, student sampling, DPO, the evaluation,
the model's lineage, then a call to the scoring API.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import BaseCommand

from annotations.demo import DEMO_ROWS
from annotations.demo_critiques import write_demo_critiques
from annotations.models import Dataset
from inference.actions import create_run, endpoint_for
from inference.core import local_server
from inference.core.generation import STUDENT
from inference.core.tiny_model import build_tiny_model
from inference.critique_import import import_critiques
from inference.models import ApiToken, GenerationRun, ModelEndpoint
from inference.scorers import create_api_token
from lineage.graph import version_lineage
from lineage.report import lineage_lines
from review.audit import audit_run
from rprm_web.cli import Progress
from training import actions
from training.data import PairBuild, build_preference_pairs_for
from training.models import ModelVersion, TrainingRun


def _steps(run: Any) -> tuple[int, int]:
    """(done, total) of a generation run, in steps."""
    return getattr(run, "steps_done", 0), getattr(run, "steps_total", 0)


def _wait(
    command: BaseCommand,
    model: type[Any],
    pk: int,
    label: str,
    progress: Callable[[Any], tuple[int, int]] = _steps,
    timeout_s: float = 1800,
) -> Any:
    """The run once finished, with a progress line meanwhile; SystemExit past `timeout_s`."""
    started = time.monotonic()
    with Progress(f"  {label}", unit="steps", stream=sys.stdout) as bar:
        while time.monotonic() - started < timeout_s:
            obj = model.objects.get(pk=pk)
            bar.update(*progress(obj), obj.status)
            if obj.is_finished:
                return obj
            time.sleep(1)
    raise SystemExit(f"{label} did not finish within {timeout_s:.0f} s; see var/logs/gpu-worker.log")


def tiny_model_dir() -> Path:
    path = Path(settings.MODELS_DIR) / "tiny-qwen2"
    if not (path / "config.json").exists():
        build_tiny_model(path)
    return path


def teacher_pass(command: BaseCommand, dataset: Dataset) -> GenerationRun:
    existing = GenerationRun.objects.filter(
        dataset=dataset, kind=GenerationRun.Kind.TEACHER_SEED, endpoint__name="tiny-teacher"
    ).first()
    if existing and existing.status == GenerationRun.Status.SUCCEEDED:
        return existing
    endpoint = endpoint_for("tiny-teacher", backend="transformers")
    if endpoint.path_or_url != str(tiny_model_dir()):
        endpoint.path_or_url = str(tiny_model_dir())
        endpoint.save(update_fields=["path_or_url"])
    # A random tiny model writes noise: few tokens suffice to exercise the pipeline.
    run = existing or create_run(
        dataset=dataset,
        endpoint=endpoint,
        n_samples=2,
        max_new_tokens=48,
        temperature=0.8,
        batch_size=6,
        seed=0,
        step_filter={"up_to_first_error": True},
    )
    run = _wait(command, GenerationRun, run.pk, f"teacher run #{run.pk}")
    s = run.summary
    command.stdout.write(
        f"  teacher run #{run.pk} {run.status}: {s.get('critiques', 0)} critiques, strict parse rate "
        f"{s.get('parse_rate')}, agreement {s.get('agreement')} (a random tiny model: expect noise)"
    )
    return run


def demo_teacher(command: BaseCommand, dataset: Dataset) -> GenerationRun:
    path = write_demo_critiques(Path(settings.VAR_DIR) / "demo" / "demo_critiques.jsonl")
    run, _ = import_critiques(path, dataset=dataset, model_name="demo-teacher (hand-written)")
    audit_run(run.id)  # small: compute the review signals here so the queue is ready at once
    s = run.summary
    command.stdout.write(
        f"  hand-written demo teacher: {s['critiques']} critiques, agreement {s['agreement']}, "
        f"{s['sft_eligible']} SFT-eligible"
    )
    return run


def _wait_training(command: BaseCommand, run: TrainingRun) -> TrainingRun:
    label = f"{run.kind.upper()} run #{run.pk}"
    return _wait(command, TrainingRun, run.pk, label, progress=lambda r: (r.step, r.max_steps))


def _launch_training(
    command: BaseCommand, kind: str, base: ModelVersion, selection: dict[str, Any], **hp: Any
) -> TrainingRun:
    """The demo's `kind` run (reused once it succeeded), launched and waited for."""
    existing = TrainingRun.objects.filter(
        kind=kind, status=TrainingRun.Status.SUCCEEDED, name=f"demo-{kind}"
    ).first()
    if existing:
        return existing
    hyper = {
        "effective_batch_size": 4,
        "per_device_batch_size": 4,
        "logging_steps": 5,
        "gradient_checkpointing": False,
        **hp,
    }
    return _wait_training(command, actions.launch_training(kind, base, selection, hyper, name=f"demo-{kind}"))


def _student_run(command: BaseCommand, dataset: Dataset, sft_model: ModelVersion) -> GenerationRun:
    """The SFT model's student sampling run (reused once it succeeded)."""
    student = None
    if sft_model.student_endpoint_id:
        student = GenerationRun.objects.filter(
            kind=GenerationRun.Kind.STUDENT_SAMPLE,
            endpoint=sft_model.student_endpoint,
            status=GenerationRun.Status.SUCCEEDED,
        ).first()
    if student is None:
        student = actions.sample_student(
            sft_model,
            dataset,
            n_samples=STUDENT.n_samples,
            max_new_tokens=320,
            temperature=0.7,
            batch_size=8,
            seed=0,
        )
        student = _wait(command, GenerationRun, student.pk, f"student sampling run #{student.pk}")
    return student


def _preference_pairs(command: BaseCommand, student: GenerationRun) -> tuple[PairBuild, dict[str, Any]]:
    """(the pairs build, the DPO data selection) of a student run, unbalanced when the 1:1
    balance would keep none."""
    build = build_preference_pairs_for(student)
    selection: dict[str, Any] = {"student_run": student.id, "val_fraction": 0.0}
    command.stdout.write(
        f"  student run #{student.pk}: strict parse rate {student.summary.get('parse_rate')}, "
        f"{len(build.pairs)} preference pairs (the authors' filter, chosen Yes/No balanced 1:1)"
    )
    if not build.pairs and build.stats.get("dropped_for_balance"):
        # A tiny random model's pairs are one-sided: the 1:1 balance keeps none. Show DPO anyway.
        build = build_preference_pairs_for(student, balance=False)
        selection["balance"] = False
        command.stdout.write(
            f"  the pairs are all chosen-{'Yes' if build.stats.get('chosen_yes') else 'No'}: "
            f"training the demo DPO on {len(build.pairs)} unbalanced pairs"
        )
    return build, selection


def train_sft_and_dpo(
    command: BaseCommand, dataset: Dataset, teacher_run: GenerationRun
) -> ModelVersion | None:
    """A short SFT on the kept critiques, student sampling, preference pairs, a short DPO.

    The tiny model memorises the handful of demo critiques (high learning rate, many
    steps), enough to write verdict lines, so student sampling yields real pairs.
    """
    base = actions.register_base_model(str(tiny_model_dir()), name="tiny-qwen2 (random)")
    sft = _launch_training(
        command,
        "sft",
        base,
        {"runs": [teacher_run.id], "val_fraction": 0.0},
        learning_rate=5e-3,
        max_steps=250,
        warmup_ratio=0.0,
    )
    if sft.status != TrainingRun.Status.SUCCEEDED:
        command.stdout.write(
            f"  SFT run #{sft.pk} {sft.status}: {sft.error.splitlines()[0] if sft.error else ''}"
        )
        return None
    sft_model = sft.output_version
    command.stdout.write(f"  SFT run #{sft.pk}: registered {sft_model.name}")
    student = _student_run(command, dataset, sft_model)
    build, selection = _preference_pairs(command, student)
    if not build.pairs:
        command.stdout.write(
            "  no preference pairs (every parsed sample agreed, or none parsed): DPO skipped"
        )
        return sft_model
    dpo = _launch_training(
        command, "dpo", sft_model, selection, learning_rate=5e-4, max_steps=20, warmup_ratio=0.0
    )
    if dpo.status != TrainingRun.Status.SUCCEEDED:
        command.stdout.write(f"  DPO run #{dpo.pk} {dpo.status}")
        return sft_model
    command.stdout.write(f"  DPO run #{dpo.pk}: registered {dpo.output_version.name}")
    return dpo.output_version


def evaluate(command: BaseCommand, dataset: Dataset, version: ModelVersion) -> None:
    endpoint = actions.register_endpoint(version, "scorer")
    call_command(
        "evaluate",
        "--benchmark",
        "processbench",
        "--dataset",
        dataset.name,
        "--model",
        endpoint.name,
        "--samples",
        "2",
        "--max-new-tokens",
        "320",
        "--seed",
        "0",
        "--name",
        f"{version.name} (quickstart)",
        stdout=command.stdout,
    )


def run_pipeline(command: BaseCommand, dataset: Dataset) -> None:
    command.stdout.write(f"• Demo dataset: {dataset.n_solutions} solutions, {dataset.n_steps} steps")
    command.stdout.write("• Teacher pass (tiny random Qwen2 on the gpu worker)")
    teacher_pass(command, dataset)
    command.stdout.write("• Recorded critiques (a hand-written demo teacher, for the review queue)")
    recorded = demo_teacher(command, dataset)
    command.stdout.write("• SFT, student sampling, preference pairs, DPO (gpu worker)")
    version = train_sft_and_dpo(command, dataset, recorded)
    if version is not None:
        command.stdout.write(f"• Evaluation of {version.name} on the demo data (ProcessBench metrics)")
        evaluate(command, dataset, version)
        command.stdout.write(f"• Lineage of {version.name} (the page: /lineage/models/{version.uuid}/)")
        version.refresh_from_db()
        for line in lineage_lines(version_lineage(version)):
            command.stdout.write(line)
    command.stdout.write(
        "• The released R-PRM-7B-DPO with its own prompt: `manage.py import_template GenPRM-evaluate-new3.json` "
        "(NJUNLP/R-PRM src/prompts/GenPRM/), serve kevinpro/R-PRM-7B-DPO (`vllm serve`), then "
        f"`manage.py evaluate --benchmark processbench --dataset {dataset.name} --model http://HOST:8000/v1 "
        '--template GenPRM-evaluate-new3` (README: "The released R-PRM-7B-DPO checkpoint")'
    )


# ----- the scoring API's model server ---------------------------------------------------

SCORING_ENDPOINT = "tiny-served"


def start_scoring_server(port: int, log_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str, str]:
    """A local `transformers serve` of the tiny model, registered as the scoring API's
    endpoint (the web process never loads a model). Returns (process, url, served name)."""
    served = local_server.prepare_served_copy(
        tiny_model_dir(), Path(settings.MODELS_DIR) / "tiny-qwen2-served"
    )
    proc = local_server.start_transformers_serve(served, port, log_dir / "scoring-server.log", env=env)
    return proc, f"http://127.0.0.1:{port}", str(served)


def register_scoring_endpoint(url: str, served_name: str) -> ModelEndpoint:
    fields = {
        "role": ModelEndpoint.Role.SCORER, "backend": ModelEndpoint.Backend.OPENAI, "path_or_url": url,
        "served_model_name": served_name, "default_sampling": {"max_new_tokens": 48},
        # transformers serve runs one call at a time: more in flight would only queue there.
        "options": {"p_yes_via": "systemone", "max_concurrency": 1, "timeout_s": 120,
                    # chat messages are rendered with the served model's own tokenizer (no model loaded)
                    "tokenizer_path": served_name},
    }  # fmt: skip
    endpoint, _ = ModelEndpoint.objects.update_or_create(name=SCORING_ENDPOINT, defaults=fields)
    return endpoint


def try_scoring_api(
    command: BaseCommand, base_url: str, url: str, proc: subprocess.Popen, log_dir: Path
) -> None:
    """Wait for the model server, then score the demo's first solution through the API as curl would."""
    local_server.wait_ready(url, proc, log_dir / "scoring-server.log", timeout_s=180)
    admin = User.objects.get(username="admin")
    ApiToken.objects.filter(user=admin, name="quickstart", revoked_at__isnull=True).delete()
    raw = create_api_token(admin, "quickstart")[1]
    _, question, steps, _, _ = DEMO_ROWS[0]
    body = {"question": question, "steps": steps[:2], "K": 2, "max_new_tokens": 24}
    request = urllib.request.Request(
        f"{base_url}api/v1/score", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {raw}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            data = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise SystemExit(
            f"the scoring API answered {exc.code}: {exc.read()[:500]!r}; see var/logs/"
        ) from None
    rewards = ", ".join(f"{r:.3f}" if r is not None else "None" for r in data["rewards"])
    command.stdout.write(
        f"  POST /api/v1/score ({SCORING_ENDPOINT}): step rewards {rewards} in {data['seconds']} s"
    )
    command.stdout.write(
        f"  try it: curl -s {base_url}api/v1/score -H 'Authorization: Bearer {raw}' "
        '-H \'Content-Type: application/json\' -d \'{"question": "What is 2 + 3?", '
        '"steps": ["2 + 3 = 5."], "K": 2, "max_new_tokens": 24}\''
    )
