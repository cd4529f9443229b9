"""Two model versions side by side: their evaluation results, and how their training data
differ, row by row, read from the snapshots they trained on.

A row is keyed by what it teaches: an SFT row by its critique, a DPO row by its
(chosen, rejected) pair. Rows only in the older snapshot are sorted by why they left:
a reviewer found the critique flawed, the step's label was judged wrong or corrected, or
neither (a different selection, balancing or split). That answers the question a PRM team
asks most: did the review make the model better?
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from review.models import LabelCorrection, Review, ReviewItem
from training.models import ExportJob, ModelVersion

from .graph import EvaluationLink, endpoints_of, evaluations_of

SFT_FILES = ("sft_train.jsonl", "sft_val.jsonl")
DPO_FILE = "dpo.jsonl"


@dataclass(frozen=True)
class Row:
    key: str
    critiques: tuple[str, ...]
    step_id: int
    label: str


@dataclass(frozen=True)
class DataDiff:
    rows_a: int
    rows_b: int
    kept: int
    added: int
    removed: int
    removed_flawed: int
    removed_label: int
    removed_other: int
    relabelled: int
    unavailable: str  # why no row-level comparison could be made ("" when it was)


@dataclass(frozen=True)
class ResultPair:
    benchmark: str
    label: str
    a: EvaluationLink | None
    b: EvaluationLink | None

    @property
    def delta(self) -> float | None:
        if self.a is None or self.b is None or self.a.value is None or self.b.value is None:
            return None
        return self.b.value - self.a.value


def _jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def snapshot_rows(snapshot: ExportJob) -> dict[str, Row]:
    """The provenance columns of every row of a snapshot (the texts are not needed)."""
    folder = snapshot.folder()
    rows: dict[str, Row] = {}
    for name in SFT_FILES:
        if (folder / name).exists():
            for r in _jsonl(folder / name):
                uuid = r["critique_uuid"]
                rows[f"sft:{uuid}"] = Row(f"sft:{uuid}", (uuid,), int(r["step_id"]), r.get("label", ""))
    if (folder / DPO_FILE).exists():
        for r in _jsonl(folder / DPO_FILE):
            pair = (r["chosen_critique_uuid"], r["rejected_critique_uuid"])
            key = f"dpo:{pair[0]}>{pair[1]}"
            rows[key] = Row(key, pair, int(r["step_id"]), r.get("label", ""))
    return rows


def _snapshot(version: ModelVersion) -> ExportJob | None:
    snapshot = version.snapshot or (version.training_run.snapshot if version.training_run else None)
    if snapshot is None or snapshot.status != ExportJob.Status.SUCCEEDED or not snapshot.folder().exists():
        return None
    return snapshot


def _why_removed(removed: list[Row]) -> tuple[int, int]:
    """(flawed, label) among rows that left: a critique of the row was decided flawed, or
    its step's label was judged wrong, corrected or is in dispute."""
    uuids = {u for r in removed for u in r.critiques}
    items = ReviewItem.objects.filter(critique__uuid__in=uuids).values_list(
        "critique__uuid", "final_decision"
    )
    decision = {str(u): d for u, d in items}
    disputed = set(
        LabelCorrection.objects.filter(
            step_id__in={r.step_id for r in removed},
            status__in=[LabelCorrection.Status.PENDING, LabelCorrection.Status.ACCEPTED],
        ).values_list("step_id", flat=True)
    )
    flawed = label = 0
    for row in removed:
        decisions = {decision.get(u) for u in row.critiques}
        if Review.Decision.FLAWED in decisions:
            flawed += 1
        elif Review.Decision.LABEL_WRONG in decisions or row.step_id in disputed:
            label += 1
    return flawed, label


def data_diff(a: ModelVersion, b: ModelVersion) -> DataDiff:
    snap_a, snap_b = _snapshot(a), _snapshot(b)
    if snap_a is None or snap_b is None:
        missing = ", ".join(v.name for v, s in ((a, snap_a), (b, snap_b)) if s is None)
        return DataDiff(0, 0, 0, 0, 0, 0, 0, 0, 0, f"no readable snapshot for {missing}")
    rows_a, rows_b = snapshot_rows(snap_a), snapshot_rows(snap_b)
    removed = [rows_a[k] for k in rows_a.keys() - rows_b.keys()]
    flawed, label = _why_removed(removed)
    relabelled = sum(1 for k in rows_a.keys() & rows_b.keys() if rows_a[k].label != rows_b[k].label)
    return DataDiff(
        rows_a=len(rows_a),
        rows_b=len(rows_b),
        kept=len(rows_a.keys() & rows_b.keys()),
        added=len(rows_b.keys() - rows_a.keys()),
        removed=len(removed),
        removed_flawed=flawed,
        removed_label=label,
        removed_other=len(removed) - flawed - label,
        relabelled=relabelled,
        unavailable="",
    )


def _latest_by_benchmark(version: ModelVersion) -> dict[str, EvaluationLink]:
    out: dict[str, EvaluationLink] = {}
    for link in evaluations_of(endpoints_of(version)):  # newest first
        if link.run.status == link.run.Status.SUCCEEDED:
            out.setdefault(link.run.benchmark, link)
    return out


def result_pairs(a: ModelVersion, b: ModelVersion) -> list[ResultPair]:
    ra, rb = _latest_by_benchmark(a), _latest_by_benchmark(b)
    pairs = []
    for bench in sorted(ra.keys() | rb.keys()):
        either = ra.get(bench) or rb[bench]
        pairs.append(ResultPair(benchmark=bench, label=either.label, a=ra.get(bench), b=rb.get(bench)))
    return pairs
