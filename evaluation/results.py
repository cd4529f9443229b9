"""Everything an evaluation reports, computed from its stored SolutionScore rows:
benchmark metrics at the threshold, the threshold sweep, K-scaling by subsampling the
stored samples, contamination, the JSON summary and the results table with the
published numbers."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

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


def solution_loss(labels: list[str], step_scores: list[float | None]) -> float | None:
    """Mean |target - score| over labelled, scored steps (None when there are none)."""
    diffs = [
        abs(t - s)
        for t, s in zip(step_targets(labels), step_scores, strict=False)
        if t is not None and s is not None
    ]
    return math.fsum(diffs) / len(diffs) if diffs else None


def _step_labels(solution_ids: Iterable[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = defaultdict(list)
    rows = Step.objects.filter(solution_id__in=list(solution_ids)).order_by("solution_id", "index")
    for sol_id, label in rows.values_list("solution_id", "label"):
        out[sol_id].append(label)
    return out


def run_solutions(run: EvaluationRun):
    """The solutions a run covers, in a fixed order (datasets are append-only)."""
    ids = EvaluationDataset.objects.filter(run=run).values_list("dataset_id", flat=True)
    qs = Solution.objects.filter(dataset_id__in=list(ids)).order_by("dataset_id", "id")
    if run.solution_limit:
        qs = qs[: run.solution_limit]
    return qs


def _items(run: EvaluationRun) -> list[dict[str, Any]]:
    """One dict per scored solution: what the metrics need, in a fixed order."""
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
            "solution__metadata",
            "solution__error_type__slug",
        )
        .order_by("solution__dataset_id", "solution_id")
    )
    items = []
    for row in rows:
        sol = row.solution
        items.append(
            {
                "solution_id": sol.id,
                "problem_id": sol.problem_id,
                "subset": subset_of(sol, datasets[sol.dataset_id]),
                "label": sol.first_error_index,
                "classification": sol.error_type.slug
                if sol.error_type
                else (sol.metadata or {}).get("classification"),
                "error_steps": (sol.metadata or {}).get("error_steps"),
                "step_scores": row.step_scores,
                "samples": row.samples,
            }
        )
    return items


def _processbench_rows(items, threshold: float, scores_key: str = "step_scores") -> dict[str, list]:
    rows: dict[str, list] = defaultdict(list)
    for it in items:
        if it["label"] is None:
            raise ValueError(f"solution {it['solution_id']} has no ProcessBench label")
        rows[it["subset"]].append((it["label"], metrics.processbench_predict(it[scores_key], threshold)))
    return dict(sorted(rows.items()))


def _prmbench_items(items, scores: list | None = None) -> list[dict[str, Any]]:
    out = []
    for n, it in enumerate(items):
        error_steps = it["error_steps"]
        if error_steps is None:  # not imported from PRMBench: fall back to the first error
            error_steps = [it["label"] + 1] if it["label"] is not None and it["label"] >= 0 else []
        out.append(
            {
                "classification": it["classification"] or "unknown",
                "error_steps": error_steps,
                "step_scores": it["step_scores"] if scores is None else scores[n],
            }
        )
    return out


def headline(benchmark: str, items, threshold: float) -> float | None:
    """ProcessBench avg F1 (percent) or PRMBench overall PRMScore (as percent)."""
    if benchmark == EvaluationRun.Benchmark.PROCESSBENCH:
        return metrics.processbench_report(_processbench_rows(items, threshold))["avg_f1"]
    overall = metrics.prmbench_report(_prmbench_items(items), threshold)["overall"]
    return None if overall is None else overall * 100


def compute_results(run: EvaluationRun, *, n_resamples: int | None = None) -> dict[str, Any]:
    """Every number the results page and `evaluate --json` show, from the stored scores."""
    items = _items(run)
    t = run.threshold
    out: dict[str, Any] = {
        "benchmark": run.benchmark,
        "threshold": t,
        "n_solutions": len(items),
        "n_steps": sum(len(it["step_scores"]) for it in items),
    }
    if not items:
        out["headline"] = {"metric": "none", "value": None}
        return out
    if run.benchmark == EvaluationRun.Benchmark.PROCESSBENCH:
        report = metrics.processbench_report(_processbench_rows(items, t))
        out["processbench"] = report
        out["headline"] = {
            "metric": "avg_f1",
            "label": "Avg. F1",
            "value": report["avg_f1"],
            "unit": "percent",
        }
        subset_items: dict[str, list] = defaultdict(list)
        for it in items:
            subset_items[it["subset"]].append((it["label"], it["step_scores"]))
        out["sweep"] = [
            {
                "threshold": r["threshold"],
                "value": r["avg_f1"],
                "subsets": {k: v["f1"] for k, v in r["subsets"].items()},
            }
            for r in metrics.threshold_sweep(subset_items)
        ]
    else:
        report = metrics.prmbench_report(_prmbench_items(items), t)
        out["prmbench"] = report
        overall = report["overall"]
        out["headline"] = {
            "metric": "prmscore_overall",
            "label": "PRMScore (overall)",
            "value": None if overall is None else overall * 100,
            "unit": "percent",
            "fraction": overall,
        }
        sweep = []
        for th in [round(0.05 * i, 2) for i in range(1, 20)]:
            r = metrics.prmbench_report(_prmbench_items(items), th)
            sweep.append(
                {
                    "threshold": th,
                    "value": None if r["overall"] is None else r["overall"] * 100,
                    "dimensions": {k: v["prmscore"] for k, v in r["dimensions"].items()},
                }
            )
        out["sweep"] = sweep
    out["k_max"] = max((len(s) for it in items for s in it["samples"]), default=0)
    if n_resamples is None:  # each resample re-scores every item in Python: bound the work
        n_resamples = K_SCALING_RESAMPLES if out["n_steps"] <= 20_000 else 50
    out["k_scaling"] = (
        k_scaling_curve(run.benchmark, items, t, n_resamples=n_resamples) if out["k_max"] > 1 else None
    )
    out["contamination"] = contamination(list(run.datasets.all()))
    contaminated = set(out["contamination"]["normalized"]["problem_ids"]) if out["contamination"] else set()
    if contaminated:
        clean = [it for it in items if it["problem_id"] not in contaminated]
        out["clean"] = {
            "n_solutions": len(clean),
            "headline": headline(run.benchmark, clean, t) if clean else None,
        }
    verdicts = SolutionScore.objects.filter(run=run).values_list("verdicts", flat=True)
    n_samples = n_unparseable = 0
    for per_solution in verdicts:
        for per_step in per_solution or []:
            n_samples += len(per_step)
            n_unparseable += sum(v == "unparseable" for v in per_step)
    out["critiques"] = {"samples": n_samples, "unparseable": n_unparseable}
    return out


def k_scaling_curve(
    benchmark: str, items, threshold: float, *, n_resamples: int = K_SCALING_RESAMPLES, seed: int = 0
) -> list[dict[str, Any]]:
    """The headline at K = 1, 2, 4, ... K_max by subsampling the stored samples
    (inference.core.metrics.k_scaling: mean and percentile interval over resamples)."""
    labels = list(range(len(items)))  # the metric looks items up by position

    def metric_fn(by_item, idx):
        scored = [{**items[i], "step_scores": s} for i, s in zip(idx, by_item, strict=True)]
        return headline(benchmark, scored, threshold)

    samples = [it["samples"] for it in items]
    return metrics.k_scaling(samples, labels, n_resamples=n_resamples, seed=seed, metric_fn=metric_fn)


def contamination(eval_datasets: list[Dataset], train_datasets: list[Dataset] | None = None) -> dict | None:
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
        "headline": r.get("headline"),
    }
    if run.benchmark == EvaluationRun.Benchmark.PROCESSBENCH and "processbench" in r:
        out["subsets"] = r["processbench"]["subsets"]
        out["avg_f1"] = r["processbench"]["avg_f1"]
        out["complete"] = r["processbench"]["complete"]
    elif "prmbench" in r:
        out["classes"] = {k: v["prmscore"] for k, v in r["prmbench"]["classes"].items()}
        out["dimensions"] = {k: v["prmscore"] for k, v in r["prmbench"]["dimensions"].items()}
        out["overall"] = r["prmbench"]["overall"]
    out["k_scaling"] = [
        {k: p[k] for k in ("k", "value", "ci_low", "ci_high")} for p in r.get("k_scaling") or []
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
