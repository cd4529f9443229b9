"""Named write actions for training: launch, cancel, registry, student sampling (the
training data a run is built from, and its previews, are `training.data`).

Views, commands and the task call these; nothing else writes training rows. The
ML work itself is in training.core (plain Python): these functions load rows,
build its inputs, and store what it returns.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from annotations.models import Dataset, Step
from inference.actions import create_run
from inference.core.generation import STUDENT
from inference.models import GenerationRun, ModelEndpoint
from inference.trust import check_endpoint
from rprm_web import runs
from training.core.runner import TENSORBOARD_DIR, Kind, TrainConfig, TrainResult

from .data import check_snapshot, check_student_run, dpo_selection, sft_selection, snapshot_template
from .export import create_export_job
from .models import ExportJob, ModelVersion, TrainingRun

# TrainConfig fields a run may set; kind, base_model and output_dir come from the row.
_ROW_FIELDS = {"kind", "base_model", "output_dir"}
# Student sampling only needs labelled steps: steps after a first error carry no label.
STUDENT_STEP_FILTER = {"labels": [Step.Label.CORRECT, Step.Label.INCORRECT], "up_to_first_error": True}


def hyperparameter_fields() -> dict[str, Any]:
    """TrainConfig's settable fields and their defaults (the launch form shows these)."""
    return {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name not in _ROW_FIELDS}


def tensorboard_dir(run: TrainingRun) -> Path | None:
    """The folder of the run's TensorBoard event files, once the trainer has written one."""
    if not run.output_dir:
        return None
    folder = Path(run.output_dir) / TENSORBOARD_DIR
    return folder if folder.is_dir() and any(folder.rglob("events.out.tfevents.*")) else None


def train_config(run: TrainingRun) -> TrainConfig:
    return TrainConfig(
        kind=cast(Kind, run.kind),  # TrainConfig checks it is sft or dpo
        base_model=run.base_model,
        output_dir=run.output_dir,
        **run.hyperparameters,
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


# --- launching and cancelling --------------------------------------------------------------


def launch_training(
    kind: str,
    base: ModelVersion | str,
    data_selection: dict | None = None,
    hyperparameters: dict | None = None,
    user: User | None = None,
    *,
    name: str = "",
    queue: bool = True,
    snapshot: ExportJob | None = None,
    take_snapshot: bool = False,
) -> TrainingRun:
    """Create a run and (by default) queue it on the gpu queue once the transaction commits.

    `snapshot`: train on exactly that export snapshot's rows; `take_snapshot` (SFT): take
    one of the selection now, written by the training task before it trains. Either way the
    run records the snapshot, and its rows' hash once read.
    Unknown hyperparameters and values TrainConfig rejects fail here, not on the worker.
    """
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
    if snapshot is not None:
        check_snapshot(snapshot, kind)
        template = snapshot_template(snapshot)  # shown at once; confirmed when the rows are read
    elif take_snapshot:
        if kind != TrainingRun.Kind.SFT:
            raise ValueError("a DPO run takes an existing snapshot with DPO rows (or its student run)")
        snapshot = create_export_job(user, snapshot_filters(selection), queue=False)
    elif kind == TrainingRun.Kind.DPO:
        student = GenerationRun.objects.filter(id=selection["student_run"]).select_related("template").first()
        if student is None:
            raise ValueError("a DPO run needs a student sampling run")
        check_student_run(student)
        template = student.template
    run = TrainingRun(
        kind=kind,
        name=name.strip(),
        base_version=version,
        base_model=base_model,
        data_selection=selection,
        hyperparameters=hyper,
        template=template,
        snapshot=snapshot,
        created_by=user,
    )
    run.output_dir = str(Path(settings.MODELS_DIR) / "training" / str(run.uuid))
    # TrainConfig validates itself; the batch plan must divide on one device to divide on N.
    train_config(run).batch_plan()
    run.save()
    if queue:
        runs.enqueue(TrainingRun, run.id)
    return run


def snapshot_filters(selection: dict) -> dict:
    """The export filters that snapshot an SFT selection (same pool rule, same seed)."""
    sel = sft_selection(selection)
    keys = ("runs", "datasets", "val_fraction", "seed", "balance", "per_step")
    return {"kinds": ["sft"], **{k: sel[k] for k in keys}}


def request_cancel(run: TrainingRun) -> bool:
    """Cooperative: the trainer stops after the current optimizer step. A queued run, or
    one whose worker died, stops at once."""
    return runs.request_cancel(TrainingRun, run.id) != "finished"


# --- the registry --------------------------------------------------------------------------


def register_base_model(path: str, name: str = "", user: User | None = None) -> ModelVersion:
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


def register_trained_model(run: TrainingRun, result: TrainResult) -> ModelVersion:
    """The registry entry of a finished run (idempotent: one version per run)."""
    existing = ModelVersion.objects.filter(training_run=run).first()
    if existing:
        return existing
    if result.final_path is None:
        raise ValueError(f"training run #{run.id} ended without a final model ({result.status})")
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
        snapshot_id=run.snapshot_id,
        snapshot_sha256=run.snapshot_sha256,
        snapshot_rows=run.snapshot_rows,
        created_by=run.created_by,
    )


_ROLE_FIELDS: dict[str, str] = {
    ModelEndpoint.Role.STUDENT: "student_endpoint",
    ModelEndpoint.Role.SCORER: "scorer_endpoint",
}


def register_endpoint(
    version: ModelVersion, role: str, *, served_url: str = "", served_model_name: str = ""
) -> ModelEndpoint:
    """Use as scorer / use as student: the version as an endpoint of that role, so the
    evaluation, guidance and sampling forms list it. Idempotent.

    Without `served_url`: a transformers endpoint on the version's folder (loaded by the gpu
    worker). With it: the OpenAI-compatible server that serves the folder (`vllm serve <path>
    --served-model-name <version name>`), which the scoring API can call too; it replaces a
    worker endpoint of the same role. The host must pass the endpoint trust check.
    """
    if role not in _ROLE_FIELDS:
        raise ValueError(f"role must be student or scorer, got {role!r}")
    attr = _ROLE_FIELDS[role]
    fields = _endpoint_fields(version, role, served_url.strip(), served_model_name.strip())
    # EndpointRejected (a ValueError) before anything is written.
    check_endpoint(fields["backend"], fields["path_or_url"], fields["options"])
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        current = getattr(version, attr)
        if current is not None and (not served_url or _same_target(current, fields)):
            return current
        suffix = " · served" if served_url else ""
        endpoint, _ = ModelEndpoint.objects.update_or_create(
            name=f"{version.name} · {role}{suffix}"[:200], defaults=fields
        )
        setattr(version, attr, endpoint)
        version.save(update_fields=[attr])
    return endpoint


def _endpoint_fields(version: ModelVersion, role: str, served_url: str, served_model_name: str) -> dict:
    if not served_url:
        backend = ModelEndpoint.Backend.TRANSFORMERS
        return {"role": role, "backend": backend, "path_or_url": version.path, "options": {}}
    # The folder's tokenizer renders chat prompts locally (p(yes) needs the exact prompt tokens).
    options = {"tokenizer_path": version.path} if Path(version.path).is_dir() else {}
    return {
        "role": role,
        "backend": ModelEndpoint.Backend.OPENAI,
        "path_or_url": served_url,
        "served_model_name": served_model_name or version.name,
        "options": options,
    }


def _same_target(endpoint: ModelEndpoint, fields: dict) -> bool:
    target = (fields["backend"], fields["path_or_url"], fields.get("served_model_name", ""))
    return (endpoint.backend, endpoint.path_or_url, endpoint.served_model_name) == target


def version_endpoint_ids(name: str) -> list[int]:
    """A model version's own name as a scoring model: its scorer endpoint, then its student one
    (inference.scorers.NAME_RESOLVERS; registered in TrainingConfig.ready)."""
    row = ModelVersion.objects.filter(name=name).values("scorer_endpoint_id", "student_endpoint_id").first()
    if row is None:
        return []
    return [i for i in (row["scorer_endpoint_id"], row["student_endpoint_id"]) if i is not None]


def sample_student(
    version: ModelVersion,
    dataset: Dataset,
    n_samples: int = STUDENT.n_samples,
    *,
    user: User | None = None,
    step_filter: dict | None = None,
    queue: bool = True,
    **params: Any,
) -> GenerationRun:
    """K critiques per labelled step from the version (a student sampling run) with the
    template it was trained on, through the same inference runner as the teacher."""
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
