"""Named write actions for training: data, launch, cancel, registry, student sampling.

Views, commands and the task call these; nothing else writes training rows. The
ML work itself is in training.core (plain Python): these functions load rows,
build its inputs, and store what it returns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet

from annotations.models import Dataset, Step
from inference.models import Critique, GenerationRun, ModelEndpoint, PromptTemplate

from .models import ModelVersion, PreferencePair, TrainingRun

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
# TrainConfig fields a run may set; kind, base_model and output_dir come from the row.
_ROW_FIELDS = {"kind", "base_model", "output_dir"}
# Student sampling only needs labelled steps: steps after a first error carry no label.
STUDENT_STEP_FILTER = {"labels": [Step.Label.CORRECT, Step.Label.INCORRECT], "up_to_first_error": True}
# Rows built per query when turning critiques into examples (R-PRM pools run to ~300K).
_CHUNK = 2000


class TrainingDataError(ValueError):
    """The selection gives nothing to train on, or data that cannot be trained together."""


def hyperparameter_fields() -> dict[str, Any]:
    """TrainConfig's settable fields and their defaults (the launch form shows these)."""
    from training.core.runner import TrainConfig

    return {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name not in _ROW_FIELDS}


def tensorboard_dir(run: TrainingRun) -> Path | None:
    """The folder of the run's TensorBoard event files, once the trainer has written one."""
    from training.core.runner import TENSORBOARD_DIR

    if not run.output_dir:
        return None
    folder = Path(run.output_dir) / TENSORBOARD_DIR
    return folder if folder.is_dir() and any(folder.rglob("events.out.tfevents.*")) else None


def train_config(run: TrainingRun):
    from training.core.runner import TrainConfig

    return TrainConfig(
        kind=run.kind, base_model=run.base_model, output_dir=run.output_dir, **run.hyperparameters
    )


def json_safe(value: Any) -> Any:
    """NaN / inf become None (Postgres jsonb and JSON.parse reject them); paths become strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


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


def _excluded_by_review() -> Q:
    # The same rule as the SFT pool: flawed / label-wrong / disputed critiques never train.
    try:
        from annotations.reviews import training_exclusion_q
    except ImportError:  # pragma: no cover - review app absent
        return Q(pk__in=[])
    return training_exclusion_q()


def _problem_split(question: str, seed: int, val_fraction: float) -> str:
    # The SFT pool's own hash split, so a problem lands on the same side for SFT and DPO.
    from inference.pools import _problem_key, _unit

    return "val" if _unit(seed, "split", _problem_key(question)) < val_fraction else "train"


@dataclass
class TrainingData:
    """What a run trains on: core examples plus the counts and manifest stored on the row."""

    train: list = field(default_factory=list)
    val: list = field(default_factory=list)
    template: PromptTemplate | None = None
    counts: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)


# --- SFT ------------------------------------------------------------------------------------


def sft_selection(selection: dict | None) -> dict:
    return {**SFT_SELECTION_DEFAULTS, **(selection or {})}


def _sft_pool(selection: dict):
    from inference.pools import build_sft_pool, eligible_critiques

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


def _sft_examples(critique_ids: list[int]) -> list:
    from inference.runner import _contexts
    from training.core.data import SFTExample

    out = []
    cores: dict[int, Any] = {}
    for start in range(0, len(critique_ids), _CHUNK):
        chunk = (
            Critique.objects.filter(id__in=critique_ids[start : start + _CHUNK])
            .select_related("run__template")
            .order_by("id")
        )
        critiques = list(chunk)
        ctx = _contexts([c.step_id for c in critiques])
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


def _check_student_run(student_run: GenerationRun) -> None:
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
    from training.core.data import balance_pairs, build_preference_pairs

    samples: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
    rows = (
        Critique.objects.filter(run=student_run)
        .exclude(_excluded_by_review())
        .order_by("step_id", "sample_index")
        .values_list("id", "step_id", "verdict", "text")
    )
    for cid, step_id, verdict, text in rows:
        samples[step_id].append((cid, verdict, text))
    to_bool = {Step.Label.CORRECT: True, Step.Label.INCORRECT: False}
    labels = {
        sid: to_bool.get(label)
        for sid, label in Step.objects.filter(id__in=samples).values_list("id", "label")
    }
    result = build_preference_pairs(
        {sid: [{"verdict": v, "text": t} for _, v, t in s] for sid, s in samples.items()},
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
    pairs = [(p.step, samples[p.step][p.chosen_index][0], samples[p.step][p.rejected_index][0]) for p in kept]
    return PairBuild(pairs=pairs, stats=stats)


def preview_pairs(selection: dict | None) -> dict:
    sel = dpo_selection(selection)
    out: dict[str, Any] = {"kind": "dpo", "selection": sel, "error": ""}
    run = GenerationRun.objects.filter(id=sel["student_run"]).first() if sel["student_run"] else None
    if run is None:
        out["error"] = "Pick a student sampling run."
        return out
    try:
        _check_student_run(run)
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
    _check_student_run(student_run)
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
    from inference.runner import _contexts
    from training.core.data import DPOExample

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
    train, val = [], []
    split_ids: dict[str, list[int]] = {"train": [], "val": []}
    for start in range(0, len(pair_rows), _CHUNK):
        chunk = pair_rows[start : start + _CHUNK]
        ctx = _contexts(list({p.step_id for p in chunk}))
        for p in chunk:
            question, previous, now, _step = ctx[p.step_id]
            prompt = (
                core.render_messages(question, previous, now)
                if core.chat
                else core.render_prompt(question, previous, now)
            )
            kwargs = {"prompt_messages": prompt} if core.chat else {"prompt_text": prompt}
            example = DPOExample(
                chosen=texts[p.chosen_id],
                rejected=texts[p.rejected_id],
                meta={"pair": p.id, "step": p.step_id},
                **kwargs,
            )
            side = _problem_split(question, int(sel["seed"]), float(sel["val_fraction"]))
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


def build_training_data(run: TrainingRun) -> TrainingData:
    return build_sft_data(run) if run.kind == TrainingRun.Kind.SFT else build_dpo_data(run)


# --- launching and cancelling --------------------------------------------------------------


def launch_training(
    kind: str,
    base: ModelVersion | str,
    data_selection: dict | None = None,
    hyperparameters: dict | None = None,
    user=None,
    *,
    name: str = "",
    queue: bool = True,
) -> TrainingRun:
    """Create a run and (by default) queue it on the gpu queue once the transaction commits.

    Unknown hyperparameters and values TrainConfig rejects fail here, not on the worker.
    """
    from .tasks import run_training

    if kind not in TrainingRun.Kind.values:
        raise ValueError(f"kind must be one of {TrainingRun.Kind.values}, got {kind!r}")
    hyper = {k: v for k, v in (hyperparameters or {}).items() if v is not None}
    unknown = set(hyper) - set(hyperparameter_fields())
    if unknown:
        raise ValueError(f"unknown hyperparameters: {', '.join(sorted(unknown))}")
    version = base if isinstance(base, ModelVersion) else None
    base_model = version.path if version else str(base).strip()
    if not base_model:
        raise ValueError("give a base model: a registered version or a path / hub id")
    selection = (
        sft_selection(data_selection) if kind == TrainingRun.Kind.SFT else dpo_selection(data_selection)
    )
    template = None
    if kind == TrainingRun.Kind.DPO:
        student = GenerationRun.objects.filter(id=selection["student_run"]).select_related("template").first()
        if student is None:
            raise ValueError("a DPO run needs a student sampling run")
        _check_student_run(student)
        template = student.template
    run = TrainingRun(
        kind=kind,
        name=name.strip(),
        base_version=version,
        base_model=base_model,
        data_selection=selection,
        hyperparameters=hyper,
        template=template,
        created_by=user,
    )
    run.output_dir = str(Path(settings.MODELS_DIR) / "training" / str(run.uuid))
    # TrainConfig validates itself; the batch plan must divide on one device to divide on N.
    train_config(run).batch_plan()
    run.save()
    if queue:
        run_training.delay_on_commit(run.id)
    return run


def request_cancel(run: TrainingRun) -> bool:
    """Cooperative: the trainer stops after the current optimizer step. A queued run stops at once."""
    from django.utils import timezone

    if TrainingRun.objects.filter(id=run.id, status=TrainingRun.Status.QUEUED).update(
        status=TrainingRun.Status.CANCELLED, cancel_requested=True, finished_at=timezone.now()
    ):
        return True
    return bool(
        TrainingRun.objects.filter(id=run.id, status=TrainingRun.Status.RUNNING).update(cancel_requested=True)
    )


# --- the registry --------------------------------------------------------------------------


def register_base_model(path: str, name: str = "", user=None) -> ModelVersion:
    """A model trained elsewhere (a hub id or a directory) as a registry root."""
    path = path.strip()
    if not path:
        raise ValueError("give the model's path or hub id")
    version, _ = ModelVersion.objects.get_or_create(
        name=(name.strip() or path)[:200],
        defaults={"kind": ModelVersion.Kind.BASE, "path": path, "base_model": path, "created_by": user},
    )
    return version


def _unique_version_name(wanted: str, run: TrainingRun) -> str:
    if not ModelVersion.objects.filter(name=wanted).exclude(training_run=run).exists():
        return wanted
    return f"{wanted}-{run.uuid.hex[:8]}"


def register_trained_model(run: TrainingRun, result) -> ModelVersion:
    """The registry entry of a finished run (idempotent: one version per run)."""
    existing = ModelVersion.objects.filter(training_run=run).first()
    if existing:
        return existing
    parent = run.base_version
    manifest = json_safe({**run.data_manifest, "counts": run.data_counts})
    metrics = json_safe(
        {
            "best_eval_loss": result.best_metric,
            "train_loss": result.train_loss,
            "global_step": result.global_step,
            "tokens_per_second": result.tokens_per_second,
            "max_length": result.max_length,
        }
    )
    return ModelVersion.objects.create(
        name=_unique_version_name(run.name or f"{run.kind}-run{run.id}", run),
        kind=run.kind,
        path=result.final_path,
        parent=parent,
        base_model=(parent.base_model or parent.path) if parent else run.base_model,
        training_run=run,
        template=run.template,
        data_manifest=manifest,
        metrics=metrics,
        created_by=run.created_by,
    )


_ROLE_FIELDS = {ModelEndpoint.Role.STUDENT: "student_endpoint", ModelEndpoint.Role.SCORER: "scorer_endpoint"}


def register_endpoint(version: ModelVersion, role: str) -> ModelEndpoint:
    """The version as a transformers endpoint (student: samples critiques; scorer: evaluations). Idempotent."""
    if role not in _ROLE_FIELDS:
        raise ValueError(f"role must be student or scorer, got {role!r}")
    attr = _ROLE_FIELDS[role]
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        current = getattr(version, attr)
        if current is not None:
            return current
        endpoint, _ = ModelEndpoint.objects.get_or_create(
            name=f"{version.name} · {role}"[:200],
            defaults={
                "role": role,
                "backend": ModelEndpoint.Backend.TRANSFORMERS,
                "path_or_url": version.path,
            },
        )
        setattr(version, attr, endpoint)
        version.save(update_fields=[attr])
    return endpoint


def sample_student(
    version: ModelVersion,
    dataset: Dataset,
    n_samples: int = 4,
    *,
    user=None,
    step_filter: dict | None = None,
    queue: bool = True,
    **params,
) -> GenerationRun:
    """K critiques per labelled step from the version (a student sampling run) with the
    template it was trained on, through the same inference runner as the teacher."""
    from inference.actions import create_run

    endpoint = register_endpoint(version, ModelEndpoint.Role.STUDENT)
    return create_run(
        dataset=dataset,
        endpoint=endpoint,
        template=version.template,
        kind=GenerationRun.Kind.STUDENT_SAMPLE,
        step_filter=step_filter or dict(STUDENT_STEP_FILTER),
        user=user,
        queue=queue,
        n_samples=n_samples,
        **params,
    )
