"""Lineage, both ways: the chain that made a model version (datasets → teacher runs →
review outcome → snapshot → training run → model version → evaluations), and what stands
downstream of a dataset, a generation run or a snapshot.

Every link is a stored foreign key or the snapshot's manifest (its `source_runs`, written
when the rows were exported), so the answer is what the model actually saw, not what the
database holds today. Shapes are frozen dataclasses built once per page.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q

from annotations.models import Dataset
from evaluation.models import EvaluationRun, GuidanceRun
from inference.models import GenerationRun, ModelEndpoint
from review.models import LabelCorrection, Review, ReviewItem
from training.models import ExportJob, ModelVersion, TrainingRun

# The row counts a snapshot's manifest keeps per file (training.export).
SNAPSHOT_FILES = ("sft_train", "sft_val", "dpo")


@dataclass(frozen=True)
class ReviewOutcome:
    """What people decided about one run's critiques (final decisions only)."""

    critiques: int
    reviewed: int
    flawed: int
    label_wrong: int
    corrections_accepted: int


@dataclass(frozen=True)
class SourceRun:
    run: GenerationRun
    outcome: ReviewOutcome


@dataclass(frozen=True)
class EvaluationLink:
    run: EvaluationRun
    label: str
    value: float | None
    undefined: str


@dataclass(frozen=True)
class VersionLineage:
    version: ModelVersion
    ancestors: list[ModelVersion]
    training_run: TrainingRun | None
    snapshot: ExportJob | None
    snapshot_sha256: str
    snapshot_rows: dict[str, Any]
    excluded_by_review: int | None
    datasets: list[Dataset]
    source_runs: list[SourceRun]
    endpoints: list[ModelEndpoint]
    evaluations: list[EvaluationLink]
    guidance: list[GuidanceRun]


@dataclass(frozen=True)
class Downstream:
    """Models and evaluations that stand on one dataset, run or snapshot."""

    snapshots: list[ExportJob] = field(default_factory=list)
    training_runs: list[TrainingRun] = field(default_factory=list)
    versions: list[ModelVersion] = field(default_factory=list)
    evaluations: list[EvaluationLink] = field(default_factory=list)


# --- upstream -----------------------------------------------------------------------------


def source_run_ids(version: ModelVersion) -> list[int]:
    """The generation runs whose critiques this version was trained on: the snapshot's
    manifest when it trained from one, else the run's own data manifest."""
    snapshot = version.snapshot or (version.training_run.snapshot if version.training_run else None)
    if snapshot is not None and snapshot.manifest.get("source_runs"):
        return sorted({int(r["id"]) for r in snapshot.manifest["source_runs"]})
    manifest = version.data_manifest or (version.training_run.data_manifest if version.training_run else {})
    ids = [*manifest.get("runs", []), manifest.get("student_run")]
    return sorted({int(i) for i in ids if i})


def review_outcomes(run_ids: Iterable[int]) -> dict[int, ReviewOutcome]:
    """Per run: critiques, final decisions and accepted label corrections on its steps."""
    ids = list(run_ids)
    critiques = dict(
        GenerationRun.objects.filter(id__in=ids).annotate(n=Count("critiques")).values_list("id", "n")
    )
    decided = Q(final_decision__in=[d for d in Review.Decision.values if d != Review.Decision.SKIP])
    items: dict[int, dict[str, int]] = {
        row["run_id"]: {k: row[k] for k in ("reviewed", "flawed", "label_wrong")}
        for row in ReviewItem.objects.filter(run_id__in=ids)
        .values("run_id")
        .annotate(
            reviewed=Count("id", filter=decided),
            flawed=Count("id", filter=Q(final_decision=Review.Decision.FLAWED)),
            label_wrong=Count("id", filter=Q(final_decision=Review.Decision.LABEL_WRONG)),
        )
    }
    corrections: dict[int, int] = {}
    for run_id in ids:
        corrections[run_id] = (
            LabelCorrection.objects.filter(
                status=LabelCorrection.Status.ACCEPTED, step__critiques__run_id=run_id
            )
            .values("step_id")
            .distinct()
            .count()
        )
    none = {"reviewed": 0, "flawed": 0, "label_wrong": 0}
    return {
        run_id: ReviewOutcome(
            critiques=critiques.get(run_id, 0),
            reviewed=items.get(run_id, none)["reviewed"],
            flawed=items.get(run_id, none)["flawed"],
            label_wrong=items.get(run_id, none)["label_wrong"],
            corrections_accepted=corrections[run_id],
        )
        for run_id in ids
    }


def endpoints_of(version: ModelVersion) -> list[ModelEndpoint]:
    """The endpoints that serve this version: the ones its page registered, and any other
    registered with its folder or its name as the served model."""
    q = Q(path_or_url=version.path) | Q(served_model_name=version.name) | Q(name=version.name)
    ids = [e.id for e in (version.scorer_endpoint, version.student_endpoint) if e is not None]
    return list(ModelEndpoint.objects.filter(q | Q(id__in=ids)).order_by("name"))


def evaluation_link(run: EvaluationRun) -> EvaluationLink:
    headline = (run.results or {}).get("headline") or {}
    value = headline.get("value")
    if value is None and "avg_f1" in (run.results or {}):
        value = run.results["avg_f1"]
    label = headline.get("label") or (
        "ProcessBench avg F1" if run.benchmark == "processbench" else "PRMScore"
    )
    return EvaluationLink(run=run, label=label, value=value, undefined=headline.get("undefined") or "")


def evaluations_of(endpoints: list[ModelEndpoint]) -> list[EvaluationLink]:
    rows = (
        EvaluationRun.objects.filter(endpoint__in=endpoints)
        .select_related("endpoint")
        .order_by("-created_at")
    )
    return [evaluation_link(r) for r in rows]


def version_lineage(version: ModelVersion) -> VersionLineage:
    training_run = version.training_run
    snapshot = version.snapshot or (training_run.snapshot if training_run else None)
    run_ids = source_run_ids(version)
    runs_by_id = {
        r.id: r
        for r in GenerationRun.objects.filter(id__in=run_ids).select_related(
            "dataset", "endpoint", "template"
        )
    }
    outcomes = review_outcomes(runs_by_id)
    sources = [SourceRun(run=runs_by_id[i], outcome=outcomes[i]) for i in run_ids if i in runs_by_id]
    datasets = sorted({s.run.dataset for s in sources}, key=lambda d: d.name)
    endpoints = endpoints_of(version)
    counts = (snapshot.manifest.get("counts") or {}) if snapshot else {}
    return VersionLineage(
        version=version,
        ancestors=version.lineage()[1:],
        training_run=training_run,
        snapshot=snapshot,
        snapshot_sha256=version.snapshot_sha256 or (snapshot.content_sha256 if snapshot else ""),
        snapshot_rows=version.snapshot_rows or {k: v for k, v in counts.items() if k in SNAPSHOT_FILES},
        excluded_by_review=counts.get("excluded_by_review"),
        datasets=datasets,
        source_runs=sources,
        endpoints=endpoints,
        evaluations=evaluations_of(endpoints),
        guidance=list(
            GuidanceRun.objects.filter(Q(scorer__in=endpoints) | Q(policy__in=endpoints))
            .select_related("dataset", "scorer", "policy")
            .order_by("-created_at")
        ),
    )


# --- downstream ---------------------------------------------------------------------------


def snapshots_using_runs(run_ids: set[int]) -> list[ExportJob]:
    """Finished snapshots whose rows came from any of these runs (their manifests say)."""
    found = []
    for job in ExportJob.objects.filter(status=ExportJob.Status.SUCCEEDED).order_by("-created_at"):
        used = {int(r["id"]) for r in (job.manifest or {}).get("source_runs", [])}
        if used & run_ids:
            found.append(job)
    return found


def runs_trained_without_snapshot(run_ids: set[int]) -> list[TrainingRun]:
    """Training runs that built their data at launch (before snapshots were the input):
    their data manifest names the generation runs."""
    found = []
    for run in TrainingRun.objects.filter(snapshot__isnull=True).order_by("-created_at"):
        manifest = run.data_manifest or {}
        used = {int(i) for i in [*manifest.get("runs", []), manifest.get("student_run")] if i}
        if used & run_ids:
            found.append(run)
    return found


def _unique(links: list[EvaluationLink]) -> list[EvaluationLink]:
    seen: set[int] = set()
    out = []
    for link in links:
        if link.run.id not in seen:
            seen.add(link.run.id)
            out.append(link)
    return out


def downstream_of_snapshots(
    snapshots: list[ExportJob], evaluations: list[EvaluationLink], also: list[TrainingRun] | None = None
) -> Downstream:
    training_runs = list(
        TrainingRun.objects.filter(snapshot__in=snapshots).order_by("-created_at").select_related("snapshot")
    ) + [r for r in also or [] if r.snapshot_id is None]
    versions = list(
        ModelVersion.objects.filter(Q(snapshot__in=snapshots) | Q(training_run__in=training_runs))
        .distinct()
        .order_by("-created_at")
    )
    model_evals = [link for v in versions for link in evaluations_of(endpoints_of(v))]
    return Downstream(
        snapshots=snapshots,
        training_runs=training_runs,
        versions=versions,
        evaluations=_unique([*model_evals, *evaluations]),
    )


def downstream_of_dataset(dataset: Dataset) -> Downstream:
    run_ids = set(GenerationRun.objects.filter(dataset=dataset).values_list("id", flat=True))
    on_dataset = [
        evaluation_link(r)
        for r in EvaluationRun.objects.filter(datasets=dataset)
        .select_related("endpoint")
        .order_by("-created_at")
    ]
    return downstream_of_snapshots(
        snapshots_using_runs(run_ids), on_dataset, also=runs_trained_without_snapshot(run_ids)
    )


def downstream_of_run(run: GenerationRun) -> Downstream:
    return downstream_of_snapshots(
        snapshots_using_runs({run.id}), [], also=runs_trained_without_snapshot({run.id})
    )


def downstream_of_snapshot(snapshot: ExportJob) -> Downstream:
    return downstream_of_snapshots([snapshot], [])
