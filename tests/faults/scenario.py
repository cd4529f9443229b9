"""The fault suite's driver: runs in a subprocess with the environment of the backend
under test (Postgres + Redis, or SQLite + the filesystem broker), so the same code
sets up and checks a job on either database.

    python -m tests.faults.scenario setup KIND TINY_MODEL_DIR   -> JSON {model, id, table, ...}
    python -m tests.faults.scenario check KIND ID                -> JSON facts for the test to assert
    python -m tests.faults.scenario cancel KIND ID               -> JSON {asked, status}

Each job is small (the tiny model, a few steps) and its expected row counts come from
an uninterrupted reference: the input written here (import), a second export run in
this process (export), or the run's own totals (generation, evaluation, training).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rprm_web.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.db.models import Count  # noqa: E402

from annotations.actions import create_import_job, import_file  # noqa: E402
from annotations.demo import DEMO_ROWS  # noqa: E402
from rprm_web import runs  # noqa: E402

IMPORT_SOLUTIONS = 8000  # a couple of seconds of importing, so a kill lands inside it
TRAIN = {"learning_rate": 1e-3, "effective_batch_size": 4, "per_device_batch_size": 2, "warmup_ratio": 0.0,
         "max_steps": 10, "logging_steps": 1, "eval_steps": 2, "save_steps": 2, "bf16": False,
         "gradient_checkpointing": False}  # fmt: skip


def _var() -> Path:
    return Path(settings.VAR_DIR)


def _processbench(path: Path, n: int, prefix: str) -> Path:
    rows = []
    for i in range(n):
        rid, problem, steps, label, final_ok = DEMO_ROWS[i % len(DEMO_ROWS)]
        rows.append({"id": f"{prefix}-{i}", "generator": "g", "problem": f"{problem} [{prefix} {i}]",
                     "steps": steps, "final_answer_correct": final_ok, "label": label})  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows))
    return path


def _dataset(name: str, n: int, split: str = ""):
    return import_file(_processbench(_var() / f"{name}.json", n, name), dataset_name=name, fmt="processbench",
                       split=split).dataset  # fmt: skip


def _scripted_critiques(dataset):
    from inference.actions import create_run, endpoint_for
    from inference.runner import process_run
    from tests.inference.test_runner import ScriptedBackend

    run = create_run(dataset=dataset, endpoint=endpoint_for("scripted-teacher", backend="transformers"),
                     queue=False, n_samples=2)  # fmt: skip
    process_run(run.id, backend=ScriptedBackend(answer=lambda p, i: "Yes" if i == 0 else "No"))
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    return run


def _tiny_endpoint(tiny: str, role: str):
    from inference.models import ModelEndpoint

    return ModelEndpoint.objects.create(
        name=f"tiny-{role}", role=role, backend=ModelEndpoint.Backend.TRANSFORMERS, path_or_url=tiny,
        default_sampling={"max_new_tokens": 12}, options={"device": "cpu", "batch_size": 16},
    )  # fmt: skip


def setup(kind: str, tiny: str) -> dict:
    if kind == "import":
        from annotations.models import ImportJob

        path = _processbench(_var() / "upload.json", IMPORT_SOLUTIONS, "imp")
        job = create_import_job(path, "faults-import", "processbench")
        runs.enqueue(ImportJob, job.id, on_commit=False)
        return _out(job, ("bytes_done", "file_size"))
    if kind == "export":
        from training.export import create_export_job

        source = _scripted_critiques(_dataset("exp", 400))
        job = create_export_job(None, {"runs": [source.id], "kinds": ["sft", "dpo"]})
        return {**_out(job, ("rows_done", "rows_total")), "folder": str(job.folder())}
    if kind == "generation":
        from inference.actions import create_run

        run = create_run(dataset=_dataset("gen", 12), endpoint=_tiny_endpoint(tiny, "teacher"), n_samples=2,
                         max_new_tokens=16, temperature=1.0, batch_size=1, seed=7)  # fmt: skip
        return _out(run, ("steps_done", "steps_total"))
    if kind == "evaluation":
        from evaluation.workflow import create_evaluation

        run = create_evaluation(benchmark="processbench", datasets=[_dataset("ev", 10, split="gsm8k")],
                                endpoint=_tiny_endpoint(tiny, "scorer"), n_samples=2, solution_limit=8,
                                batch_size=1, seed=1)  # fmt: skip
        return _out(run, ("solutions_done", "solutions_total"))
    if kind == "training":
        from training import actions

        source = _scripted_critiques(_dataset("tr", 12))
        run = actions.launch_training("sft", tiny, {"runs": [source.id], "val_fraction": 0.3}, TRAIN,
                                      name="faults-sft")  # fmt: skip
        return _out(run, ("step", "max_steps"))
    raise SystemExit(f"unknown kind {kind}")


def _out(row, progress) -> dict:
    return {"model": row._meta.label, "id": row.id, "table": row._meta.db_table, "progress": list(progress)}


def _dupes(qs, *fields) -> int:
    return qs.values(*fields).annotate(n=Count("id")).filter(n__gt=1).count()


def check(kind: str, run_id: int) -> dict:
    out: dict = {}
    if kind == "import":
        from annotations.models import Dataset, ImportJob, Solution, Step

        row = ImportJob.objects.get(id=run_id)
        ds = Dataset.objects.filter(name="faults-import")
        out.update(datasets=ds.count(), solutions=Solution.objects.filter(dataset__in=ds).count(),
                   steps=Step.objects.filter(solution__dataset__in=ds).count(),
                   expected_solutions=IMPORT_SOLUTIONS,
                   expected_steps=sum(len(DEMO_ROWS[i % len(DEMO_ROWS)][2]) for i in range(IMPORT_SOLUTIONS)),
                   duplicates=_dupes(Solution.objects.filter(dataset__in=ds), "source_id"))  # fmt: skip
    elif kind == "export":
        from training.export import create_export_job, run_export_job
        from training.models import ExportJob

        row = ExportJob.objects.get(id=run_id)
        reference = run_export_job(create_export_job(None, row.filters, queue=False).id)

        def lines(job):
            folder = job.folder()
            return {f: sum(1 for _ in open(folder / f, "rb")) for f in job.files if f != "manifest.json"
                    and (folder / f).is_file()}  # fmt: skip

        exports = Path(settings.MEDIA_ROOT) / "exports"
        out.update(files=lines(row), expected_files=lines(reference), rows=row.rows_done,
                   expected_rows=reference.rows_total, manifest=bool(row.manifest),
                   manifest_file=(row.folder() / "manifest.json").is_file(),
                   partial_folders=sorted(p.name for p in exports.iterdir() if p.name.endswith(".partial")))  # fmt: skip
    elif kind == "generation":
        from inference.models import Critique, GenerationRun

        row = GenerationRun.objects.get(id=run_id)
        crit = Critique.objects.filter(run=row)
        out.update(critiques=crit.count(), critiques_done=row.critiques_done,
                   expected=row.steps_total * row.n_samples, steps_done=row.steps_done,
                   steps_total=row.steps_total, duplicates=_dupes(crit, "step_id", "sample_index"))  # fmt: skip
    elif kind == "evaluation":
        from evaluation.models import EvaluationRun, SolutionScore

        row = EvaluationRun.objects.get(id=run_id)
        scores = SolutionScore.objects.filter(run=row)
        out.update(scores=scores.count(), expected=row.solutions_total, solutions_done=row.solutions_done,
                   duplicates=_dupes(scores, "solution_id"), results=bool(row.results))  # fmt: skip
    elif kind == "training":
        from training.models import ModelVersion, TrainingRun

        row = TrainingRun.objects.get(id=run_id)
        out.update(metric_steps=list(row.metrics.order_by("step").values_list("step", flat=True)),
                   expected_steps=list(range(1, TRAIN["max_steps"] + 1)),
                   versions=ModelVersion.objects.filter(training_run=row).count(),
                   resumed_from=(row.result or {}).get("resumed_from"))  # fmt: skip
    else:
        raise SystemExit(f"unknown kind {kind}")
    out.update(status=row.status, error=row.error, attempts=row.attempts, worker=row.worker)
    out["active_elsewhere"] = _active()
    return out


def cancel(kind: str, run_id: int) -> dict:
    """Ask to cancel through the run type's own action (what the Cancel button calls)."""
    from inference.actions import request_cancel
    from inference.models import GenerationRun

    if kind != "generation":
        raise SystemExit(f"no cancel case for {kind}")
    asked = request_cancel(GenerationRun.objects.get(id=run_id))
    row = GenerationRun.objects.get(id=run_id)
    return {"asked": asked, "status": row.status, "finished_at": row.finished_at}


def _active() -> list[str]:
    """Every run of every type still queued or running (none may be left)."""
    left = []
    for r in runs._REGISTRY:
        left += [f"{r.model.__name__} {i}" for i in r.model.objects.filter(status__in=runs.ACTIVE).values_list(
            "id", flat=True)]  # fmt: skip
    return left


if __name__ == "__main__":
    from celery import current_app

    current_app.loader.import_default_modules()  # registers every run type
    cmd, kind, arg = sys.argv[1], sys.argv[2], sys.argv[3]
    result = {"setup": setup, "check": check, "cancel": cancel}[cmd](
        kind, arg if cmd == "setup" else int(arg)
    )
    print("RESULT " + json.dumps(result, default=str))
