"""Evaluation and guidance pages: results table, run pages with live progress, launch forms.

Reviewers view; admins launch and cancel. Long jobs keep progress on their run row;
the progress partial polls every 2 s and the view answers HttpResponseStopPolling
once the run has ended.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from inference.core import metrics
from inference.core.metrics import POSITIVE_ONLY_CLASSES, PRMBENCH_DIMENSIONS, PROCESSBENCH_SUBSETS
from inference.scorers import scorer_endpoint
from rprm_web import runs
from rprm_web.access import AppRequest, require_admin, require_reviewer
from rprm_web.inputs import short_upload_name

from . import guidance_runs
from . import workflow as evaluation
from .forms import EvaluationForm, GuidanceForm
from .models import EvaluationRun, GuidanceResult, GuidanceRun, SolutionScore
from .results import PUBLISHED_GUIDANCE, PUBLISHED_K_SCALING, results_table
from .score_files import ScoreFileError
from .selection import describe as describe_selection

# What a step the run did not critique is shown as (never as a score of 0 or 1).
NOT_SCORED: dict[str, str] = {
    EvaluationRun.ScoredSteps.FIRST_ERROR: "not scored: after the first error",
    EvaluationRun.ScoredSteps.PREDICTED_ERROR: "not scored: after the first (labelled or predicted) error",
}
CLASS_DIMENSION = {cls: dim for dim, classes in PRMBENCH_DIMENSIONS.items() for cls in classes}
CLASS_ORDER = [cls for classes in PRMBENCH_DIMENSIONS.values() for cls in classes]
SUBSET_ORDER = list(PROCESSBENCH_SUBSETS)
BENCHMARKS = [("processbench", "ProcessBench", "Avg. F1"), ("prmbench", "PRMBench", "PRMScore")]


def _progress_response(
    request: AppRequest, template: str, context: dict[str, Any], finished: bool
) -> HttpResponse:
    response = render(request, template, context)
    return HttpResponseStopPolling(response.content) if finished else response


# ---------------------------------------------------------------- context builders


def kscaling_chart(run: EvaluationRun | None) -> dict[str, Any] | None:
    """Chart data for a run's K-scaling curve, with the published R-PRM curve alongside."""
    if run is None or not (run.results or {}).get("k_scaling"):
        return None
    points = run.results["k_scaling"]
    ks = sorted(
        {p["k"] for p in points}
        | ({k for k, _ in PUBLISHED_K_SCALING} if run.benchmark == "processbench" else set())
    )
    ours = {p["k"]: p for p in points}
    data: dict[str, Any] = {
        "labels": [str(k) for k in ks],
        "ours": [ours[k]["value"] if k in ours else None for k in ks],
        # The authors' estimator: the first K sampled critiques of each step.
        "first_k": [ours[k].get("first_k") if k in ours else None for k in ks],
        "low": [ours[k]["ci_low"] if k in ours else None for k in ks],
        "high": [ours[k]["ci_high"] if k in ours else None for k in ks],
        "name": f"{run.name}: mean over random K-subsets",
        "first_k_name": f"{run.name}: first K samples (the authors' estimator)",
        "metric": run.results.get("headline", {}).get("label", ""),
    }
    if run.benchmark == "processbench":
        published = dict(PUBLISHED_K_SCALING)
        data["published"] = [published.get(k) for k in ks]
        data["published_name"] = "R-PRM-7B DPO (published)"
    # Resamples of a resampled K (a skipped K has none; K_max needs one).
    return {"run": run, "data": data, "points": points, "n_resamples": max(p["n_resamples"] for p in points)}


def class_breakdown(runs: list[EvaluationRun]) -> list[dict[str, Any]]:
    """PRMBench per-class PRMScores (percent), one column per run."""
    rows = []
    for cls in CLASS_ORDER + ["correct", "unknown"]:
        values = [((r.results.get("prmbench") or {}).get("classes") or {}).get(cls) for r in runs]
        if not any(values):
            continue
        rows.append(
            {
                "cls": cls,
                "dimension": CLASS_DIMENSION.get(cls, "—"),
                "values": [None if v is None else v["prmscore"] * 100 for v in values],
                "n": [None if v is None else v["n_items"] for v in values],
            }
        )
    return rows


def scaling_options(**family: str) -> list[dict[str, Any]]:
    """Every finished, unarchived run the K-scaling panel can show (K > 1), grouped by family
    (name and benchmark) for its selector, newest first within a family. `family`: one only."""
    rows = (
        EvaluationRun.objects.filter(
            status=EvaluationRun.Status.SUCCEEDED, archived=False, results__k_max__gt=1, **family
        )
        .order_by("name", "benchmark", "-created_at")
        .values("id", "uuid", "name", "benchmark", "n_samples", "created_at")[:200]
    )
    labels = dict(EvaluationRun.Benchmark.choices)
    return [{**r, "family": f"{r['name']} · {labels.get(r['benchmark'], r['benchmark'])}"} for r in rows]


def worst_examples(run: EvaluationRun, limit: int = 10) -> list[SolutionScore]:
    rows = list(
        SolutionScore.objects.filter(run=run, loss__isnull=False)
        .select_related("solution__problem", "solution__error_type", "solution__dataset")
        .order_by("-loss", "id")[:limit]
    )
    for row in rows:  # steps after the first error may not be scored: say how many
        row.n_not_scored = max(0, row.solution.n_steps - len(row.step_scores))  # type: ignore[attr-defined]
    return rows


def _latest(benchmark: str) -> EvaluationRun | None:
    return (
        EvaluationRun.objects.filter(benchmark=benchmark, status=EvaluationRun.Status.SUCCEEDED)
        .order_by("-created_at")
        .first()
    )


# ---------------------------------------------------------------- evaluation pages


def results(request: AppRequest) -> HttpResponse:
    require_reviewer(request)
    show_archived = request.GET.get("archived") == "1"
    table = results_table()
    for row in table:
        row["values"] = [row["cells"].get(key) for key, _, _ in BENCHMARKS]
    scaling = scaling_options()
    wanted = request.GET.get("kscaling")
    chosen = next((o["id"] for o in scaling if str(o["uuid"]) == wanted), None)
    if chosen is None and scaling:
        chosen = max(scaling, key=lambda o: o["created_at"])["id"]
    scaling_run = EvaluationRun.objects.filter(id=chosen).first() if chosen else None
    latest_prm: dict[str, EvaluationRun] = {}
    for run in EvaluationRun.objects.filter(
        benchmark="prmbench", status=EvaluationRun.Status.SUCCEEDED
    ).order_by("-created_at")[:20]:
        latest_prm.setdefault(run.name, run)
    prm_runs = list(latest_prm.values())[:6]
    latest = [r for r in (_latest("processbench"), _latest("prmbench")) if r is not None]
    context = {
        "tie_rules": metrics.TIE_RULES,
        "table": table,
        "benchmarks": BENCHMARKS,
        "chart": kscaling_chart(scaling_run),
        "scaling_options": scaling,
        "prm_runs": prm_runs,
        "breakdown": class_breakdown(prm_runs),
        "worst": [(r, worst_examples(r, 5)) for r in latest],
        "contamination": [(r, r.results["contamination"]) for r in latest if r.results.get("contamination")],
        "recent": runs.listed(EvaluationRun.objects.select_related("endpoint"), show_archived).order_by(
            "-created_at"
        )[:10],
        "show_archived": show_archived,
        "form": EvaluationForm() if request.user.is_staff else None,
        "published_guidance": PUBLISHED_GUIDANCE,
    }
    return render(request, "evaluation/results.html", context)


def _picked_model(request: AppRequest, field: str) -> dict[str, Any]:
    """?model=<endpoint or model version name> preselects that scorer (a model page links here)."""
    endpoint = scorer_endpoint(request.GET["model"]) if request.GET.get("model") else None
    return {field: endpoint} if endpoint else {}


def evaluation_new(request: AppRequest) -> HttpResponse:
    require_admin(request)
    picked = _picked_model(request, "endpoint")
    form = EvaluationForm(request.POST or None, request.FILES or None, initial=picked)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            run, _ = runs.launch_once(EvaluationRun, form.launch_key_value(), lambda: _launch(request, data))
        except ScoreFileError as exc:
            form.add_error("scores_file", str(exc))
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            if request.htmx:
                return render(
                    request, "evaluation/results.html#launched", {"run": run, "poll_progress": True}
                )
            return redirect("evaluation:run_detail", run_uuid=run.uuid)
    if request.htmx:
        return render(request, "evaluation/results.html#launch-form", {"form": form})
    return render(request, "evaluation/new.html", {"form": form})


def _launch(request: AppRequest, data: dict[str, Any]) -> EvaluationRun:
    common = {
        "benchmark": data["benchmark"],
        "datasets": list(data["datasets"]),
        "name": data["name"],
        "threshold": data["threshold"],
        "user": request.user,
    }
    upload = data.get("scores_file")
    if upload is None:
        return evaluation.create_evaluation(
            endpoint=data["endpoint"],
            n_samples=data["n_samples"],
            max_new_tokens=data["max_new_tokens"],
            solution_limit=data["solution_limit"],
            solution_seed=data["solution_seed"],
            scored_steps=data["scored_steps"],
            **common,
        )
    # Kept under MEDIA_ROOT: the run records the file's name and sha256.
    folder = Path(settings.MEDIA_ROOT) / "eval_scores"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4()}.jsonl"
    with open(path, "wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    try:
        return evaluation.create_evaluation(
            scores_path=path, scores_name=short_upload_name(upload.name), **common
        )
    except Exception:
        path.unlink(missing_ok=True)
        raise


def run_detail(request: AppRequest, run_uuid: uuid.UUID) -> HttpResponse:
    require_reviewer(request)
    run = get_object_or_404(EvaluationRun.objects.select_related("endpoint", "template"), uuid=run_uuid)
    if request.htmx and request.htmx.target == "eval-progress":  # the launch panel on the results page
        context = {"run": run, "poll_progress": True}
        return _progress_response(request, "evaluation/run_detail.html#progress", context, run.is_finished)
    context = _run_context(run)
    if request.htmx and request.htmx.target == "eval-live":
        # The poll: the live part; once the run has ended, its results in place and a stop.
        return _progress_response(request, "evaluation/run_detail.html#live", context, run.is_finished)
    return render(request, "evaluation/run_detail.html", context)


def _run_context(run: EvaluationRun) -> dict[str, Any]:
    r = run.results or {}
    # jsonb does not keep key order: official subset order first, then the rest by name.
    subsets = sorted(
        ({"name": k, **v} for k, v in ((r.get("processbench") or {}).get("subsets") or {}).items()),
        key=lambda s: (SUBSET_ORDER.index(s["name"]) if s["name"] in SUBSET_ORDER else 99, s["name"]),
    )
    classes = []
    for cls, v in ((r.get("prmbench") or {}).get("classes") or {}).items():
        classes.append(
            {
                "cls": cls,
                "dimension": CLASS_DIMENSION.get(cls, "—"),
                "pct": v["prmscore"] * 100,
                "positive_only": cls in POSITIVE_ONLY_CLASSES,
                **v,
            }
        )
    classes.sort(key=lambda c: CLASS_ORDER.index(c["cls"]) if c["cls"] in CLASS_ORDER else 99)
    dims = (r.get("prmbench") or {}).get("dimensions") or {}
    dimensions = [
        {"name": k, "pct": None if dims[k]["prmscore"] is None else dims[k]["prmscore"] * 100, **dims[k]}
        for k in PRMBENCH_DIMENSIONS
        if k in dims
    ]
    return {
        "run": run,
        "datasets": list(run.datasets.all()),
        "subsets": subsets,
        "classes": classes,
        "dimensions": dimensions,
        "sweep": r.get("sweep") or [],
        "chart": kscaling_chart(run),
        "scaling_options": scaling_options(name=run.name, benchmark=run.benchmark),
        "worst": worst_examples(run, 20) if run.status == EvaluationRun.Status.SUCCEEDED else [],
        "contamination": r.get("contamination"),
        "clean": r.get("clean"),
        "selection": describe_selection(run.selection),
        "not_scored": NOT_SCORED.get(run.scored_steps, ""),
    }


class StepRow(TypedDict):
    """One step of a solution as one run scored it (None reward and samples: not scored)."""

    index: int
    text: str
    label: str
    scored: bool
    reward: float | None
    samples: list[tuple[float | None, str]]  # (p_yes, verdict) per critique


def run_solution(request: AppRequest, run_uuid: uuid.UUID, solution_uuid: uuid.UUID) -> HttpResponse:
    """One solution's steps with the run's reward and critiques; unscored steps say so."""
    require_reviewer(request)
    run = get_object_or_404(EvaluationRun, uuid=run_uuid)
    score = get_object_or_404(
        SolutionScore.objects.select_related(
            "solution__problem", "solution__error_type", "solution__dataset"
        ),
        run=run,
        solution__uuid=solution_uuid,
    )
    rows: list[StepRow] = []
    for step in score.solution.steps.order_by("index"):
        scored = step.index < len(score.step_scores)
        samples = score.samples[step.index] if scored and step.index < len(score.samples) else []
        verdicts = score.verdicts[step.index] if scored and step.index < len(score.verdicts) else []
        rows.append(
            {
                "index": step.index,
                "text": step.text,
                "label": step.label,
                "scored": scored,
                "reward": score.step_scores[step.index] if scored else None,
                "samples": list(zip(samples, verdicts or [""] * len(samples), strict=False)),
            }
        )
    context = {"run": run, "score": score, "solution": score.solution, "steps": rows,
               "not_scored": NOT_SCORED.get(run.scored_steps, "not scored")}  # fmt: skip
    return render(request, "evaluation/run_solution.html", context)


@require_POST
def run_cancel(request: AppRequest, run_uuid: uuid.UUID) -> HttpResponse:
    require_admin(request)
    run = get_object_or_404(EvaluationRun, uuid=run_uuid)
    evaluation.request_cancel(run)
    return redirect("evaluation:run_detail", run_uuid=run.uuid)


# ---------------------------------------------------------------- guidance pages


def guidance_list(request: AppRequest) -> HttpResponse:
    require_reviewer(request)
    form = GuidanceForm() if request.user.is_staff else None
    return _guidance_list_page(request, form, show_archived=request.GET.get("archived") == "1")


def _guidance_list_page(
    request: AppRequest, form: GuidanceForm | None, *, show_archived: bool
) -> HttpResponse:
    rows = runs.listed(GuidanceRun.objects.select_related("dataset", "policy", "scorer"), show_archived)
    context = {
        "runs": rows.order_by("-created_at")[:50],
        "show_archived": show_archived,
        "form": form,
        "published": PUBLISHED_GUIDANCE,
        "published_pass1": PUBLISHED_GUIDANCE["pass@1"],
    }
    return render(request, "evaluation/guidance_list.html", context)


def guidance_new(request: AppRequest) -> HttpResponse:
    require_admin(request)
    form = GuidanceForm(request.POST or None, initial=_picked_model(request, "scorer"))
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            run, _ = runs.launch_once(
                GuidanceRun,
                form.launch_key_value(),
                lambda: guidance_runs.create_guidance_run(
                    kind=d["kind"],
                    dataset=d["dataset"],
                    policy=d["policy"],
                    scorer=d["scorer"],
                    user=request.user,
                    n_candidates=d["n_candidates"],
                    n_samples=d["n_samples"],
                    max_steps=d["max_steps"],
                    problem_limit=d["problem_limit"],
                    policy_max_new_tokens=d["policy_max_new_tokens"],
                    max_new_tokens=d["max_new_tokens"],
                    seed=d["seed"],
                ),
            )
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("evaluation:guidance_detail", run_uuid=run.uuid)
    return _guidance_list_page(request, form, show_archived=False)


def guidance_detail(request: AppRequest, run_uuid: uuid.UUID) -> HttpResponse:
    require_reviewer(request)
    run = get_object_or_404(
        GuidanceRun.objects.select_related("dataset", "policy", "scorer", "template"), uuid=run_uuid
    )
    context = {"run": run, "problems": _guidance_problems(run), "stats": _guidance_stats(run)}
    if request.htmx and request.htmx.target == "guidance-live":
        # The poll: the live part; once the run has ended, its results in place and a stop.
        return _progress_response(request, "evaluation/guidance_detail.html#live", context, run.is_finished)
    return render(request, "evaluation/guidance_detail.html", context)


def _guidance_stats(run: GuidanceRun) -> dict[str, float | None]:
    return {"pass1": (run.results or {}).get("pass@1"), "passn": (run.results or {}).get("pass@n")}


@dataclass
class GuidanceRow:
    """One problem of a guidance run as its page shows it."""

    result: GuidanceResult
    n_correct: int  # Best-of-N: candidates with the right answer
    rounds: list[list[tuple[str, float, bool]]]  # guided search: (text, reward, chosen) per round


def _guidance_problems(run: GuidanceRun) -> list[GuidanceRow]:
    results = GuidanceResult.objects.filter(run=run).select_related("problem").order_by("problem_id")[:100]
    if run.kind == GuidanceRun.Kind.BEST_OF_N:
        return [GuidanceRow(p, sum(bool(c.get("correct")) for c in p.candidates), []) for p in results]
    return [
        GuidanceRow(
            p,
            0,
            [
                [
                    (text, score, i == r["chosen"])
                    for i, (text, score) in enumerate(zip(r["candidates"], r["scores"], strict=False))
                ]
                for r in p.candidates
            ],
        )
        for p in results
    ]


@require_POST
def guidance_cancel(request: AppRequest, run_uuid: uuid.UUID) -> HttpResponse:
    require_admin(request)
    run = get_object_or_404(GuidanceRun, uuid=run_uuid)
    guidance_runs.request_cancel(run)
    return redirect("evaluation:guidance_detail", run_uuid=run.uuid)
