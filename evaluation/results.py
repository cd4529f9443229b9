"""Everything an evaluation reports, computed from its stored SolutionScore rows:
benchmark metrics at the threshold, the threshold sweep, K-scaling by subsampling the
stored samples, contamination, the JSON summary and the results table with the
published numbers."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, NotRequired, TypedDict, cast

from django.db.models import QuerySet

from annotations.models import Dataset, Problem, Solution, Step
from inference.core import metrics
from inference.core.contamination import overlap_report

from .models import EvaluationDataset, EvaluationRun, SolutionScore

TRAINING_FORMATS = (Dataset.Format.PRM800K, Dataset.Format.RPRM_STEPS)
K_SCALING_RESAMPLES = 200

# Published reference numbers (method doc / R-PRM paper, arXiv 2503.21295), in percent.
PUBLISHED = [
    {"name": "R-PRM-7B (SFT)", "processbench": 65.2, "prmbench": 64.9},
    {"name": "R-PRM-7B (DPO)", "processbench": 70.4, "prmbench": 66.8},
    {"name": "Qwen2.5-Math-PRM-7B", "processbench": 73.5, "prmbench": None},
    {"name": "GenPRM-7B", "processbench": 75.2, "prmbench": None},
    {"name": "Qwen2.5-Math-7B-PRM800K", "processbench": 56.5, "prmbench": None},
    {"name": "GPT-4o", "processbench": 61.9, "prmbench": None},
]
PUBLISHED_K_SCALING = [(1, 61.3), (2, 62.8), (4, 67.6), (8, 69.7), (16, 70.8), (32, 71.7)]
PUBLISHED_GUIDANCE = {"pass@1": 41.0, "best_of_8": 49.6, "guided_search": 49.4}


def subset_of(solution: Solution, dataset: Dataset) -> str:
    """ProcessBench subset: the solution's metadata `subset`, else its id prefix (`gsm8k-3`,
    `math-12`: one dataset may hold several subsets), else the dataset's split/name."""
    return str(
        (solution.metadata or {}).get("subset")
        or metrics.processbench_subset_from_id(solution.source_id)
        or dataset.split
        or dataset.name
    )


def step_targets(labels: list[str]) -> list[float | None]:
    return [1.0 if lb == Step.Label.CORRECT else 0.0 if lb == Step.Label.INCORRECT else None for lb in labels]


def solution_loss(labels: list[str], step_scores: Sequence[float | None]) -> float | None:
    """Mean |target - score| over labelled, scored steps (None when there are none)."""
    diffs = [
        abs(t - s)
        for t, s in zip(step_targets(labels), step_scores, strict=False)
        if t is not None and s is not None
    ]
    return math.fsum(diffs) / len(diffs) if diffs else None


def step_labels(solution_ids: Iterable[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = defaultdict(list)
    rows = Step.objects.filter(solution_id__in=list(solution_ids)).order_by("solution_id", "index")
    for sol_id, label in rows.values_list("solution_id", "label"):
        out[sol_id].append(label)
    return out


def run_solutions(run: EvaluationRun) -> QuerySet[Solution]:
    """The solutions a run covers, in a fixed order (datasets are append-only): its stored
    stratified selection, or (runs from before selections) the first N by id."""
    ids = EvaluationDataset.objects.filter(run=run).values_list("dataset_id", flat=True)
    qs = Solution.objects.filter(dataset_id__in=list(ids)).order_by("dataset_id", "id")
    if (run.selection or {}).get("solution_ids"):
        return qs.filter(id__in=run.selection["solution_ids"])
    if run.solution_limit:
        qs = qs[: run.solution_limit]
    return qs


class Item(TypedDict):
    """One scored solution: what the metrics need."""

    solution_id: int
    problem_id: int
    subset: str
    label: int | None
    n_steps: int
    classification: str | None
    error_steps: list[int] | None
    step_scores: list[float | None]  # may stop before the last step (ScoredSteps)
    samples: list[list[float | None]]


class Headline(TypedDict):
    metric: str
    label: str
    value: float | None
    unit: str
    undefined: str | None  # why value is None
    fraction: NotRequired[float | None]


class SweepRow(TypedDict):
    threshold: float
    value: float | None
    subsets: NotRequired[dict[str, float | None]]
    dimensions: NotRequired[dict[str, float | None]]


class Critiques(TypedDict):
    samples: int
    unparseable: int


class EvaluationResults(TypedDict):
    """Everything the results page and `evaluate --json` show (EvaluationRun.results)."""

    benchmark: str
    threshold: float
    n_solutions: int
    n_steps: int  # steps scored
    n_steps_total: int  # steps of the solutions scored
    scored_steps: str  # EvaluationRun.ScoredSteps
    headline: Headline
    processbench: NotRequired[metrics.ProcessBenchReport]
    prmbench: NotRequired[metrics.PRMBenchReport]
    sweep: list[SweepRow] | None  # None: not exact for this run (predicted-error stop)
    k_max: int
    k_scaling: list[metrics.KPoint] | None
    k_scaling_undefined: NotRequired[str]
    contamination: dict[str, Any] | None
    clean: NotRequired[dict[str, Any]]
    critiques: Critiques
    partial: NotRequired[bool]  # the run failed or was cancelled: these are its scored solutions


def _items(run: EvaluationRun) -> list[Item]:
    """One Item per scored solution, in a fixed order."""
    datasets = {
        d.id: d
        for d in Dataset.objects.filter(id__in=EvaluationDataset.objects.filter(run=run).values("dataset_id"))
    }
    rows = (
        SolutionScore.objects.filter(run=run)
        .select_related("solution__error_type")
        .only(
            "step_scores",
            "samples",
            "solution__id",
            "solution__dataset_id",
            "solution__problem_id",
            "solution__first_error_index",
            "solution__n_steps",
            "solution__metadata",
            "solution__error_type__slug",
        )
        .order_by("solution__dataset_id", "solution_id")
    )
    items: list[Item] = []
    for row in rows:
        sol = row.solution
        meta = sol.metadata or {}
        items.append(
            {
                "solution_id": sol.id,
                "problem_id": sol.problem_id,
                "subset": subset_of(sol, datasets[sol.dataset_id]),
                "label": sol.first_error_index,
                "n_steps": sol.n_steps,
                "classification": sol.error_type.slug if sol.error_type else meta.get("classification"),
                "error_steps": meta.get("error_steps"),
                "step_scores": row.step_scores,
                "samples": row.samples,
            }
        )
    return items


def _processbench_rows(items: list[Item], threshold: float) -> dict[str, list[tuple[int, int | None]]]:
    rows: dict[str, list[tuple[int, int | None]]] = defaultdict(list)
    for it in items:
        if it["label"] is None:
            raise ValueError(f"solution {it['solution_id']} has no ProcessBench label")
        # A step whose reward could not be read is a miss (no prediction), never a lost run.
        rows[it["subset"]].append(
            (it["label"], metrics.processbench_predict(it["step_scores"], threshold, "miss"))
        )
    return dict(sorted(rows.items()))


def _prmbench_items(items: list[Item]) -> list[metrics.PRMBenchItem]:
    out: list[metrics.PRMBenchItem] = []
    for it in items:
        error_steps = it["error_steps"]
        if error_steps is None:  # not imported from PRMBench: fall back to the first error
            error_steps = [it["label"] + 1] if it["label"] is not None and it["label"] >= 0 else []
        out.append(
            {
                "classification": it["classification"] or "unknown",
                "error_steps": error_steps,
                "step_scores": it["step_scores"],
            }
        )
    return out


def headline(benchmark: str, items: list[Item], threshold: float) -> float | None:
    """ProcessBench avg F1 (percent) or PRMBench overall PRMScore (as percent)."""
    if benchmark == EvaluationRun.Benchmark.PROCESSBENCH:
        return metrics.processbench_report(_processbench_rows(items, threshold))["avg_f1"]
    overall = metrics.prmbench_report(_prmbench_items(items), threshold)["overall"]
    return None if overall is None else overall * 100


def _processbench_results(items: list[Item], t: float, exact_sweep: bool) -> dict[str, Any]:
    report = metrics.processbench_report(_processbench_rows(items, t))
    head: Headline = {
        "metric": "avg_f1",
        "label": "Avg. F1",
        "value": report["avg_f1"],
        "unit": "percent",
        "undefined": report["avg_f1_undefined"],
    }
    subset_items: dict[str, list[tuple[int, Sequence[float | None]]]] = defaultdict(list)
    for it in items:
        subset_items[it["subset"]].append((cast(int, it["label"]), it["step_scores"]))  # checked above
    sweep: list[SweepRow] = [
        {
            "threshold": r["threshold"],
            "value": r["avg_f1"],
            "subsets": {k: v["f1"] for k, v in r["subsets"].items()},
        }
        for r in metrics.threshold_sweep(subset_items, missing="miss")
    ]
    return {"processbench": report, "headline": head, "sweep": sweep if exact_sweep else None}


def _prmbench_results(items: list[Item], t: float) -> dict[str, Any]:
    report = metrics.prmbench_report(_prmbench_items(items), t)
    overall = report["overall"]
    head: Headline = {
        "metric": "prmscore_overall",
        "label": "PRMScore (overall)",
        "value": None if overall is None else overall * 100,
        "unit": "percent",
        "undefined": None if overall is not None else "no scored step outside the class 'correct'",
        "fraction": overall,
    }
    sweep: list[SweepRow] = []
    for th in [round(0.05 * i, 2) for i in range(1, 20)]:
        r = metrics.prmbench_report(_prmbench_items(items), th)
        sweep.append(
            {
                "threshold": th,
                "value": None if r["overall"] is None else r["overall"] * 100,
                "dimensions": {k: v["prmscore"] for k, v in r["dimensions"].items()},
            }
        )
    return {"prmbench": report, "headline": head, "sweep": sweep}


def _critique_counts(run: EvaluationRun) -> Critiques:
    verdicts = SolutionScore.objects.filter(run=run).values_list("verdicts", flat=True)
    n_samples = n_unparseable = 0
    for per_solution in verdicts:
        for per_step in per_solution or []:
            n_samples += len(per_step)
            n_unparseable += sum(v == "unparseable" for v in per_step)
    return {"samples": n_samples, "unparseable": n_unparseable}


def compute_results(run: EvaluationRun, *, n_resamples: int | None = None) -> EvaluationResults:
    """Every number the results page and `evaluate --json` show, from the stored scores.

    A number that is undefined on these solutions (F1 without a correct solution, a K
    whose metric is undefined) is None with its reason: it never fails the run."""
    items = _items(run)
    t = run.threshold
    n_steps = sum(len(it["step_scores"]) for it in items)
    # Stopping at a predicted error is exact at the run's threshold only.
    exact_curves = run.scored_steps != EvaluationRun.ScoredSteps.PREDICTED_ERROR
    if not items:
        by_benchmark: dict[str, Any] = {
            "headline": {"metric": "none", "label": "", "value": None, "unit": "",
                         "undefined": "no solution has been scored"},
            "sweep": [],
        }  # fmt: skip
    elif run.benchmark == EvaluationRun.Benchmark.PROCESSBENCH:
        by_benchmark = _processbench_results(items, t, exact_curves)
    else:
        by_benchmark = _prmbench_results(items, t)
    k_max = max((len(s) for it in items for s in it["samples"]), default=0)
    if n_resamples is None:  # each resample re-scores every item in Python: bound the work
        n_resamples = K_SCALING_RESAMPLES if n_steps <= 20_000 else 50
    curve = (
        k_scaling_curve(run.benchmark, items, t, n_resamples=n_resamples)
        if k_max > 1 and exact_curves
        else None
    )
    conta = contamination(list(run.datasets.all()))
    out: EvaluationResults = {
        "benchmark": run.benchmark,
        "threshold": t,
        "n_solutions": len(items),
        "n_steps": n_steps,
        "n_steps_total": sum(it["n_steps"] for it in items),
        "scored_steps": run.scored_steps,
        **by_benchmark,  # type: ignore[typeddict-item]
        "k_max": k_max,
        "k_scaling": curve,
        "contamination": conta,
        "critiques": _critique_counts(run),
    }
    if curve and any(p["value"] is None for p in curve):
        out["k_scaling_undefined"] = out["headline"]["undefined"] or "the metric is undefined at some K"
    contaminated = set(conta["normalized"]["problem_ids"]) if conta else set()
    if contaminated and items:
        clean = [it for it in items if it["problem_id"] not in contaminated]
        out["clean"] = {
            "n_solutions": len(clean),
            "headline": headline(run.benchmark, clean, t) if clean else None,
        }
    return out


def k_scaling_curve(
    benchmark: str,
    items: list[Item],
    threshold: float,
    *,
    n_resamples: int = K_SCALING_RESAMPLES,
    seed: int = 0,
) -> list[metrics.KPoint]:
    """The headline at K = 1, 2, 4, ... K_max by subsampling the stored samples
    (inference.core.metrics.k_scaling: mean and percentile interval over resamples).
    A K whose headline is undefined is a skipped point, labelled, not a failure."""
    labels = list(range(len(items)))  # the metric looks items up by position

    def metric_fn(by_item: list[list[float | None]], idx: Sequence[Any]) -> float | None:
        scored = [cast(Item, {**items[i], "step_scores": s}) for i, s in zip(idx, by_item, strict=True)]
        return headline(benchmark, scored, threshold)

    samples = [it["samples"] for it in items]
    return metrics.k_scaling(samples, labels, n_resamples=n_resamples, seed=seed, metric_fn=metric_fn)


def contamination(
    eval_datasets: list[Dataset], train_datasets: list[Dataset] | None = None
) -> dict[str, Any] | None:
    """Overlap of the evaluation problems with training problems (exact and normalised).

    Training datasets default to every PRM800K / R-PRM step-rows dataset (the R-PRM
    training sources). None when there is no training dataset to compare with.
    """
    eval_ids = {d.id for d in eval_datasets}
    if train_datasets is None:
        train_datasets = list(
            Dataset.objects.filter(source_format__in=TRAINING_FORMATS).exclude(id__in=eval_ids)
        )
    if not train_datasets:
        return None
    questions = dict(Problem.objects.filter(dataset__in=eval_datasets).values_list("id", "question"))
    train = Problem.objects.filter(dataset__in=train_datasets).values_list("question", flat=True).iterator()
    report = overlap_report(questions, train)
    out: dict[str, Any] = {
        "train_datasets": [d.name for d in train_datasets],
        "eval_datasets": [d.name for d in eval_datasets],
        "n_problems": report["n_eval"],
        "n_train_questions": report["n_train"],
    }
    n_solutions = Solution.objects.filter(dataset__in=eval_datasets).count()
    for kind in ("exact", "normalized"):
        ids = report[kind]["ids"]
        hit_solutions = Solution.objects.filter(dataset__in=eval_datasets, problem_id__in=ids).count()
        out[kind] = {
            "problems": report[kind]["count"],
            "problem_rate": report[kind]["rate"],
            "solutions": hit_solutions,
            "solution_rate": hit_solutions / n_solutions if n_solutions else 0.0,
            "problem_ids": ids,
        }
    out["n_solutions"] = n_solutions
    return out


def json_summary(run: EvaluationRun) -> dict[str, Any]:
    """The one-object summary `evaluate --json` prints last."""
    r = run.results or {}
    out: dict[str, Any] = {
        "run": str(run.uuid),
        "name": run.name,
        "benchmark": run.benchmark,
        "status": run.status,
        "source": run.source,
        "datasets": [d.name for d in run.datasets.all()],
        "threshold": run.threshold,
        "k": run.n_samples,
        "n_solutions": r.get("n_solutions"),
        "n_steps": r.get("n_steps"),
        "n_steps_total": r.get("n_steps_total"),
        "scored_steps": run.scored_steps,
        "headline": r.get("headline"),
    }
    if run.selection:
        out["selection"] = {k: v for k, v in run.selection.items() if k != "solution_ids"}
    if run.benchmark == EvaluationRun.Benchmark.PROCESSBENCH and "processbench" in r:
        out["subsets"] = r["processbench"]["subsets"]
        out["avg_f1"] = r["processbench"]["avg_f1"]
        out["complete"] = r["processbench"]["complete"]
    elif "prmbench" in r:
        out["classes"] = {k: v["prmscore"] for k, v in r["prmbench"]["classes"].items()}
        out["dimensions"] = {k: v["prmscore"] for k, v in r["prmbench"]["dimensions"].items()}
        out["overall"] = r["prmbench"]["overall"]
    out["k_scaling"] = [
        {k: p[k] for k in ("k", "value", "ci_low", "ci_high", "undefined") if k in p}
        for p in r.get("k_scaling") or []
    ]
    if r.get("contamination"):
        c = r["contamination"]
        out["contamination"] = {
            "exact_problems": c["exact"]["problems"],
            "normalized_problems": c["normalized"]["problems"],
            "normalized_solutions": c["normalized"]["solutions"],
        }
    if run.error:
        out["error"] = run.error.splitlines()[0]
    return out


def results_table() -> list[dict[str, Any]]:
    """Models x benchmarks: our latest succeeded run per (name, benchmark), then the
    published numbers (marked)."""
    rows: dict[str, dict[str, Any]] = {}
    runs = (
        EvaluationRun.objects.filter(status=EvaluationRun.Status.SUCCEEDED)
        .only("uuid", "name", "benchmark", "source", "n_samples", "results", "created_at")
        .order_by("-created_at")
    )
    for run in runs:
        row = rows.setdefault(
            run.name, {"name": run.name, "published": False, "source": run.source, "cells": {}}
        )
        if run.benchmark not in row["cells"]:
            row["cells"][run.benchmark] = {"value": run.headline, "run": run, "k": run.n_samples}
    ours = sorted(rows.values(), key=lambda r: r["name"].lower())
    published = [
        {
            "name": p["name"],
            "published": True,
            "source": "published",
            "cells": {b: {"value": p[b]} for b in ("processbench", "prmbench") if p[b] is not None},
        }
        for p in PUBLISHED
    ]
    return ours + published
