"""What a training run trains on: SFT examples and DPO preference pairs built from rows.

The selection rule itself (eligibility, exclusion by review, SFT pool, split by problem)
is `training.pools`; this module turns a run's selection into training.core examples,
with the counts and the manifest (ids, template, hashes) stored on the run.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from django.db.models import QuerySet

from annotations.models import Dataset, Step
from inference.models import Critique, GenerationRun, PromptTemplate
from inference.runner import step_contexts
from training.core.data import DPOExample, SFTExample, balance_pairs, build_preference_pairs
from training.core.snapshot import SnapshotError, SnapshotRows, read_snapshot

from .models import ExportJob, PreferencePair, TrainingRun
from .pools import SFTPool, build_sft_pool, eligible_critiques, excluded_by_review, problem_split

SFT_SELECTION_DEFAULTS: dict[str, Any] = {
    "runs": [],
    "datasets": [],
    "val_fraction": 0.05,
    "seed": 0,
    "balance": True,
    # The authors keep one agreeing critique per step ("all": every agreeing one).
    "per_step": "one",
}
DPO_SELECTION_DEFAULTS: dict[str, Any] = {
    "student_run": None,
    # The authors' --filter: both at once (at most 2 pairs, drop steps agreeing <= 1/3),
    # then chosen-Yes / chosen-No pairs balanced 1:1.
    "max_pairs_per_step": 2,
    "min_agree_fraction": 1 / 3,
    "balance": True,
    "val_fraction": 0.05,
    "seed": 0,
}

# Rows built per query when turning critiques into examples (R-PRM pools run to ~300K).
_CHUNK = 2000


class TrainingDataError(ValueError):
    """The selection gives nothing to train on, or data that cannot be trained together."""


def _ids_hash(*groups: list[int]) -> str:
    blob = json.dumps([sorted(g) for g in groups], separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _template_info(template: PromptTemplate | None) -> dict:
    if template is None:
        return {}
    return {
        "id": template.id,
        "name": template.name,
        "version": template.version,
        "hash": template.content_hash,
    }


@dataclass
class TrainingData:
    """What a run trains on: core examples plus the counts and manifest stored on the row."""

    train: list = field(default_factory=list)
    val: list = field(default_factory=list)
    template: PromptTemplate | None = None
    counts: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    # Set when the rows came from an export snapshot: the hash of the rows read, per-file counts.
    snapshot_sha256: str = ""
    snapshot_rows: dict = field(default_factory=dict)


# --- SFT ------------------------------------------------------------------------------------


def sft_selection(selection: dict | None) -> dict:
    return {**SFT_SELECTION_DEFAULTS, **(selection or {})}


def _sft_pool(selection: dict | None) -> tuple[dict, SFTPool]:
    sel = sft_selection(selection)
    runs = GenerationRun.objects.filter(id__in=sel["runs"]) if sel["runs"] else None
    datasets = Dataset.objects.filter(id__in=sel["datasets"]) if sel["datasets"] else None
    critiques = eligible_critiques(runs=runs, datasets=datasets)
    pool = build_sft_pool(
        critiques,
        val_fraction=float(sel["val_fraction"]),
        seed=int(sel["seed"]),
        balance=bool(sel["balance"]),
        per_step=str(sel["per_step"]),
    )
    return sel, pool


def _single_template(critique_ids: list[int]) -> PromptTemplate | None:
    ids = set(
        Critique.objects.filter(id__in=critique_ids).values_list("run__template_id", flat=True).distinct()
    )
    if len(ids) > 1:
        names = ", ".join(str(t) for t in PromptTemplate.objects.filter(id__in=ids))
        raise TrainingDataError(
            f"the critiques come from {len(ids)} prompt templates ({names}); "
            "a model is trained on one: pick runs that share a template"
        )
    return PromptTemplate.objects.get(id=ids.pop()) if ids else None


def preview_sft(selection: dict | None) -> dict:
    """Pool sizes before launch: train/val x yes/no, eligible, and the template (or the problem)."""
    sel, pool = _sft_pool(selection)
    out = {
        "kind": "sft",
        "selection": sel,
        "pool": pool.stats,
        "train": pool.stats["train"],
        "val": pool.stats["val"],
        "error": "",
    }
    try:
        template = _single_template(pool.train_ids + pool.val_ids)
    except TrainingDataError as exc:
        out["error"] = str(exc)
    else:
        out["template"] = str(template) if template else ""
        if not pool.train_ids:
            out["error"] = (
                "No training rows: no strict, label-agreeing, unflagged critiques in this selection."
            )
    return out


def _sft_examples(critique_ids: list[int]) -> list[SFTExample]:
    out = []
    cores: dict[int, Any] = {}
    for start in range(0, len(critique_ids), _CHUNK):
        chunk = (
            Critique.objects.filter(id__in=critique_ids[start : start + _CHUNK])
            .select_related("run__template")
            .order_by("id")
        )
        critiques = list(chunk)
        ctx = step_contexts([c.step_id for c in critiques])
        for c in critiques:
            if c.run.template_id not in cores:
                cores[c.run.template_id] = c.run.template.to_core()
            question, previous, now, step = ctx[c.step_id]
            out.append(
                SFTExample.from_template(
                    cores[c.run.template_id],
                    question,
                    previous,
                    now,
                    c.text,
                    meta={"critique": c.id, "step": c.step_id, "label": step.label, "verdict": c.verdict},
                )
            )
    return out


def build_sft_data(run: TrainingRun) -> TrainingData:
    """The SFT pool (strict, label-agreeing, not flagged by review, balanced, split by problem)
    as prompt-completion examples, each prompt rendered with its critique's own template."""
    sel, pool = _sft_pool(run.data_selection)
    if not pool.train_ids:
        raise TrainingDataError(
            "no training rows: the selection has no strict, label-agreeing, "
            f"unflagged critiques (pool: {pool.stats})"
        )
    template = _single_template(pool.train_ids + pool.val_ids)
    train, val = _sft_examples(pool.train_ids), _sft_examples(pool.val_ids)
    counts = {
        "train": len(train),
        "val": len(val),
        "train_yes": pool.stats["train"]["yes"],
        "train_no": pool.stats["train"]["no"],
        "val_yes": pool.stats["val"]["yes"],
        "val_no": pool.stats["val"]["no"],
        "eligible": pool.stats["eligible"],
    }
    manifest = {
        "kind": "sft",
        "critique_ids_sha256": _ids_hash(pool.train_ids, pool.val_ids),
        "train_critiques": len(pool.train_ids),
        "val_critiques": len(pool.val_ids),
        "pool": pool.stats,
        "runs": sorted(sel["runs"]),
        "datasets": sorted(sel["datasets"]),
        "template": _template_info(template),
    }
    _write_ids(run, {"train_critique_ids": pool.train_ids, "val_critique_ids": pool.val_ids})
    return TrainingData(train, val, template, counts, manifest)


def _write_ids(run: TrainingRun, ids: dict) -> None:
    # The exact ids go next to the checkpoints (a ~300K-id list does not belong in a row);
    # the row keeps their hash.
    path = Path(run.output_dir) / "data_ids.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ids))


# --- DPO: preference pairs -------------------------------------------------------------------


@dataclass
class PairBuild:
    pairs: list[tuple[int, int, int]]  # (step id, chosen critique id, rejected critique id)
    stats: dict
    created: int = 0

    @property
    def steps(self) -> int:
        return len({step for step, _, _ in self.pairs})  # after balancing


def dpo_selection(selection: dict | None) -> dict:
    return {**DPO_SELECTION_DEFAULTS, **(selection or {})}


def check_student_run(student_run: GenerationRun) -> None:
    if student_run.kind != GenerationRun.Kind.STUDENT_SAMPLE:
        raise TrainingDataError(
            f"run #{student_run.id} is a {student_run.get_kind_display()} run; "
            "preference pairs come from a student sampling run"
        )
    if student_run.status != GenerationRun.Status.SUCCEEDED:
        raise TrainingDataError(
            f"student run #{student_run.id} is {student_run.status}; pairs are built from a finished run"
        )


def _pairing(
    student_run: GenerationRun,
    max_pairs_per_step: int | None,
    min_agree_fraction: float | None,
    seed: int = 0,
    balance: bool = True,
) -> PairBuild:
    samples: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
    rows = (
        Critique.objects.filter(run=student_run)
        .exclude(excluded_by_review())
        .order_by("step_id", "sample_index")
        .values_list("id", "step_id", "verdict", "text")
    )
    for cid, step_id, verdict, text in rows:
        samples[step_id].append((cid, verdict, text))
    to_bool: dict[str, bool] = {Step.Label.CORRECT: True, Step.Label.INCORRECT: False}
    labels: dict[Hashable, bool | None] = {
        sid: to_bool.get(label)
        for sid, label in Step.objects.filter(id__in=samples).values_list("id", "label")
    }
    by_step: dict[Hashable, list[dict]] = {
        sid: [{"verdict": v, "text": t} for _, v, t in s] for sid, s in samples.items()
    }
    result = build_preference_pairs(
        by_step,
        labels,
        max_pairs_per_step=max_pairs_per_step,
        min_agree_fraction=min_agree_fraction,
        seed=seed,
        order="authors",
        rule="authors",
    )
    kept, stats = list(result.pairs), result.stats.as_dict()
    if balance:
        kept, balance_stats = balance_pairs(kept, labels, seed)
        stats.update(balance_stats)
    pairs = []
    for p in kept:
        step = cast(int, p.step)  # the keys handed to the core are step ids
        pairs.append((step, samples[step][p.chosen_index][0], samples[step][p.rejected_index][0]))
    return PairBuild(pairs=pairs, stats=stats)


def preview_pairs(selection: dict | None) -> dict:
    sel = dpo_selection(selection)
    out: dict[str, Any] = {"kind": "dpo", "selection": sel, "error": ""}
    run = GenerationRun.objects.filter(id=sel["student_run"]).first() if sel["student_run"] else None
    if run is None:
        out["error"] = "Pick a student sampling run."
        return out
    try:
        check_student_run(run)
    except TrainingDataError as exc:
        out["error"] = str(exc)
        return out
    build = _pairing(
        run, sel["max_pairs_per_step"], sel["min_agree_fraction"], int(sel["seed"]), bool(sel["balance"])
    )
    out.update(stats=build.stats, pairs=len(build.pairs), steps=build.steps, template=str(run.template))
    if not build.pairs:
        out["error"] = (
            "No pairs: no step has both a critique that agrees with its label and one that does not."
        )
    return out


def build_preference_pairs_for(
    student_run: GenerationRun,
    max_pairs_per_step: int | None = 2,
    min_agree_fraction: float | None = 1 / 3,
    seed: int = 0,
    balance: bool = True,
) -> PairBuild:
    """PreferencePair rows for a finished student sampling run, by the R-PRM rule.

    Idempotent: the pair order is a deterministic function of the seed and the
    step, and (chosen, rejected) is unique, so running it again creates nothing.
    Pairs built earlier under another cap stay; the returned list is exactly this
    rule's pairs, which is what a DPO run trains on.
    """
    check_student_run(student_run)
    build = _pairing(student_run, max_pairs_per_step, min_agree_fraction, seed, balance)
    rank: dict[int, int] = defaultdict(int)
    objs = []
    for step_id, chosen, rejected in build.pairs:
        objs.append(
            PreferencePair(
                run=student_run, step_id=step_id, chosen_id=chosen, rejected_id=rejected, rank=rank[step_id]
            )
        )
        rank[step_id] += 1
    before = PreferencePair.objects.filter(run=student_run).count()
    PreferencePair.objects.bulk_create(objs, ignore_conflicts=True, batch_size=1000)
    build.created = PreferencePair.objects.filter(run=student_run).count() - before
    return build


def pairs_for(build: PairBuild, student_run: GenerationRun) -> QuerySet[PreferencePair]:
    wanted = {(c, r) for _, c, r in build.pairs}
    ids = [
        pid
        for pid, c, r in PreferencePair.objects.filter(run=student_run).values_list(
            "id", "chosen_id", "rejected_id"
        )
        if (c, r) in wanted
    ]
    return PreferencePair.objects.filter(id__in=ids)


def build_dpo_data(run: TrainingRun) -> TrainingData:
    """Pairs from the student run (built if missing), split by problem, as DPO examples
    rendered with the student run's template (the one the sampled model was prompted with)."""
    sel = dpo_selection(run.data_selection)
    student = GenerationRun.objects.select_related("template").get(id=sel["student_run"])
    build = build_preference_pairs_for(
        student, sel["max_pairs_per_step"], sel["min_agree_fraction"], int(sel["seed"]), bool(sel["balance"])
    )
    if not build.pairs:
        raise TrainingDataError(f"no preference pairs in student run #{student.id} (stats: {build.stats})")
    pair_rows = list(pairs_for(build, student).order_by("step_id", "rank", "id"))
    texts = dict(
        Critique.objects.filter(
            id__in=[p.chosen_id for p in pair_rows] + [p.rejected_id for p in pair_rows]
        ).values_list("id", "text")
    )
    core = student.template.to_core()
    train: list[DPOExample] = []
    val: list[DPOExample] = []
    split_ids: dict[str, list[int]] = {"train": [], "val": []}
    for start in range(0, len(pair_rows), _CHUNK):
        chunk = pair_rows[start : start + _CHUNK]
        ctx = step_contexts(list({p.step_id for p in chunk}))
        for p in chunk:
            question, previous, now, _step = ctx[p.step_id]
            example = DPOExample(
                chosen=texts[p.chosen_id],
                rejected=texts[p.rejected_id],
                prompt_messages=core.render_messages(question, previous, now) if core.chat else None,
                prompt_text=None if core.chat else core.render_prompt(question, previous, now),
                meta={"pair": p.id, "step": p.step_id},
            )
            side = problem_split(question, int(sel["seed"]), float(sel["val_fraction"]))
            (val if side == "val" else train).append(example)
            split_ids[side].append(p.id)
    if not train:
        raise TrainingDataError("every pair fell in the validation split: lower val_fraction")
    counts = {
        "train": len(train),
        "val": len(val),
        "pairs": len(pair_rows),
        "steps": build.steps,
        "pair_stats": build.stats,
    }
    manifest = {
        "kind": "dpo",
        "pair_ids_sha256": _ids_hash(split_ids["train"], split_ids["val"]),
        "train_pairs": len(train),
        "val_pairs": len(val),
        "pair_stats": build.stats,
        "student_run": student.id,
        "runs": [student.id],
        "reference": run.base_model,
        "rule": {k: sel[k] for k in ("max_pairs_per_step", "min_agree_fraction", "balance", "seed")},
        "template": _template_info(student.template),
    }
    _write_ids(run, {"train_pair_ids": split_ids["train"], "val_pair_ids": split_ids["val"]})
    return TrainingData(train, val, student.template, counts, manifest)


# --- from an export snapshot ------------------------------------------------------------------

# The split file(s) each kind trains on.
SNAPSHOT_SPLITS: dict[str, tuple[str, ...]] = {
    TrainingRun.Kind.SFT: ("sft_train", "sft_val"),
    TrainingRun.Kind.DPO: ("dpo",),
}


def check_snapshot(job: ExportJob, kind: str) -> None:
    """A snapshot a run of `kind` can train on: finished, with that kind's rows."""
    if job.status != ExportJob.Status.SUCCEEDED:
        raise TrainingDataError(f"snapshot {job.uuid} is {job.status}; train on a finished snapshot")
    first = SNAPSHOT_SPLITS[kind][0]
    if f"{first}.jsonl" not in (job.files or []):
        raise TrainingDataError(f"snapshot {job.uuid} has no {kind.upper()} rows ({first}.jsonl)")


def read_checked_snapshot(job: ExportJob) -> SnapshotRows:
    """The snapshot's rows as written: refused if the files changed since the export."""
    try:
        snap = read_snapshot(job.folder())
    except SnapshotError as exc:
        raise TrainingDataError(str(exc)) from exc
    if job.content_sha256 and snap.sha256 != job.content_sha256:
        raise TrainingDataError(
            f"snapshot {job.uuid} changed on disk: its rows hash to {snap.sha256[:12]}…, "
            f"the export wrote {job.content_sha256[:12]}…"
        )
    return snap


def snapshot_template(job: ExportJob) -> PromptTemplate | None:
    ids = [t["id"] for t in (job.manifest or {}).get("templates", [])]
    if len(ids) > 1:
        raise TrainingDataError(f"snapshot {job.uuid} mixes {len(ids)} prompt templates; train on one")
    return PromptTemplate.objects.filter(id=ids[0]).first() if ids else None


def _sft_example_from_row(row: dict) -> SFTExample:
    meta = {"critique_uuid": row.get("critique_uuid"), "step": row.get("step_id"), "label": row.get("label")}
    return SFTExample(completion=row["completion"][0]["content"], prompt_messages=row["prompt"], meta=meta)


def _dpo_examples_from_rows(rows: list[dict], seed: int, val_fraction: float) -> tuple[list, list]:
    """DPO rows split by problem (the step's question), as the pair path splits them."""
    ctx = step_contexts(sorted({int(r["step_id"]) for r in rows}))
    train: list[DPOExample] = []
    val: list[DPOExample] = []
    for row in rows:
        example = DPOExample(
            chosen=row["chosen"][0]["content"],
            rejected=row["rejected"][0]["content"],
            prompt_messages=row["prompt"],
            meta={"step": row["step_id"], "chosen_critique_uuid": row.get("chosen_critique_uuid")},
        )
        side = problem_split(ctx[int(row["step_id"])][0], seed, val_fraction)
        (val if side == "val" else train).append(example)
    return train, val


def preview_snapshot(kind: str, snapshot_id: int) -> dict:
    """The launch form's counts for a chosen snapshot: its rows, as the export wrote them."""
    job = ExportJob.objects.filter(id=snapshot_id).first()
    out: dict[str, Any] = {"kind": kind, "snapshot": job, "error": ""}
    if job is None:
        out["error"] = "No such snapshot."
        return out
    try:
        check_snapshot(job, kind)
    except TrainingDataError as exc:
        out["error"] = str(exc)
    counts = (job.manifest or {}).get("counts", {})
    out["rows"] = {name: counts.get(name, 0) for name in SNAPSHOT_SPLITS[kind] if name in counts}
    out["content_sha256"] = job.content_sha256
    templates = (job.manifest or {}).get("templates", [])
    out["template"] = ", ".join(f"{t['name']} v{t['version']}" for t in templates)
    return out


def build_snapshot_data(run: TrainingRun) -> TrainingData:
    """Exactly the snapshot's rows, in file order; the manifest carries the hash of what was read."""
    if run.snapshot_id is None:
        raise TrainingDataError(f"training run #{run.id} trains on no snapshot")
    job = ExportJob.objects.get(id=run.snapshot_id)
    check_snapshot(job, run.kind)
    snap = read_checked_snapshot(job)
    if run.kind == TrainingRun.Kind.SFT:
        train = [_sft_example_from_row(r) for r in snap.rows.get("sft_train", [])]
        val = [_sft_example_from_row(r) for r in snap.rows.get("sft_val", [])]
    else:
        sel = dpo_selection(run.data_selection)
        train, val = _dpo_examples_from_rows(snap.rows["dpo"], int(sel["seed"]), float(sel["val_fraction"]))
    if not train:
        raise TrainingDataError(f"snapshot {job.uuid} holds no {run.kind.upper()} training rows")
    template = snapshot_template(job)
    counts = {"train": len(train), "val": len(val), "snapshot_rows": snap.counts}
    manifest = {
        "kind": run.kind,
        "snapshot": str(job.uuid),
        "snapshot_id": job.id,
        "content_sha256": snap.sha256,
        "rows": snap.counts,
        "filters": (job.manifest or {}).get("filters", job.filters),
        "runs": sorted(r["id"] for r in (job.manifest or {}).get("source_runs", [])),
        "template": _template_info(template),
    }
    return TrainingData(
        train, val, template, counts, manifest, snapshot_sha256=snap.sha256, snapshot_rows=snap.counts
    )


def build_training_data(run: TrainingRun) -> TrainingData:
    if run.snapshot_id:
        return build_snapshot_data(run)
    return build_sft_data(run) if run.kind == TrainingRun.Kind.SFT else build_dpo_data(run)
