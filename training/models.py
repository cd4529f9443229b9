"""Training runs, the model registry and DPO preference pairs.

A *training run* is one SFT or DPO job on the gpu queue; its progress, metrics
and log live on the row (and its TrainingMetric children) so the page can poll
them. A *model version* is a registry entry: a model directory with its lineage
(parent version, the run that made it, the data snapshot, the prompt template it
was trained on). Provenance is PROTECTed: nothing that produced a model can be
deleted from under it.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from annotations.models import Step
from inference.models import Critique, GenerationRun, ModelEndpoint, PromptTemplate
from rprm_web.runs import RunBase


class ModelVersion(models.Model):
    class Kind(models.TextChoices):
        BASE = "base", "base model"
        SFT = "sft", "SFT"
        DPO = "dpo", "DPO"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=4, choices=Kind.choices)
    path = models.CharField(max_length=500, help_text="Model directory (or hub id for a base model).")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    # The original base model string at the root of the lineage (a hub id or a path).
    base_model = models.CharField(max_length=500, blank=True)
    training_run = models.OneToOneField(
        "TrainingRun", null=True, blank=True, on_delete=models.PROTECT, related_name="output_version"
    )
    template = models.ForeignKey(
        PromptTemplate, null=True, blank=True, on_delete=models.PROTECT, related_name="model_versions"
    )
    # What it was trained on: ids hash, counts, pool / pair stats, source runs.
    data_manifest = models.JSONField(default=dict, blank=True)
    # Headline numbers copied from the run's result (best eval loss, tokens/s, steps).
    metrics = models.JSONField(default=dict, blank=True)
    # The export snapshot the run trained on (copied from the run): what this model saw.
    snapshot = models.ForeignKey(
        "ExportJob", null=True, blank=True, on_delete=models.PROTECT, related_name="model_versions"
    )
    snapshot_sha256 = models.CharField(max_length=64, blank=True)
    snapshot_rows = models.JSONField(default=dict, blank=True)
    # One click makes these; SET_NULL: deleting an endpoint must not need the registry's consent.
    student_endpoint = models.ForeignKey(
        ModelEndpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    scorer_endpoint = models.ForeignKey(
        ModelEndpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A trained version always names the run that made it; a base model never does.
            models.CheckConstraint(
                condition=Q(kind="base", training_run__isnull=True)
                | (~Q(kind="base") & Q(training_run__isnull=False)),
                name="modelversion_run_matches_kind",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def endpoint_for(self, role: str) -> ModelEndpoint | None:
        by_role: dict[str, ModelEndpoint | None] = {
            ModelEndpoint.Role.STUDENT: self.student_endpoint,
            ModelEndpoint.Role.SCORER: self.scorer_endpoint,
        }
        return by_role.get(role)

    def lineage(self) -> list[ModelVersion]:
        """This version and its ancestors, newest first."""
        chain: list[ModelVersion] = []
        node: ModelVersion | None = self
        seen: set[int] = set()
        while node is not None and node.pk not in seen:
            chain.append(node)
            seen.add(node.pk)
            node = node.parent
        return chain


class TrainingRun(RunBase):
    class Kind(models.TextChoices):
        SFT = "sft", "SFT"
        DPO = "dpo", "DPO"

    PROGRESS = ("step", "max_steps")  # percent = done / total (RunBase)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(
        max_length=200, blank=True, help_text="Name of the registered model; empty: automatic."
    )
    kind = models.CharField(max_length=3, choices=Kind.choices)
    # The model trained from: a registry entry, or a path / hub id given as is.
    base_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="training_runs"
    )
    base_model = models.CharField(max_length=500, help_text="Resolved path or hub id of the base.")
    # SFT: {"runs": [ids], "datasets": [ids], "val_fraction", "seed", "balance"}
    # DPO: {"student_run": id, "max_pairs_per_step", "min_agree_fraction", "val_fraction", "seed"}
    data_selection = models.JSONField(default=dict, blank=True)
    # TrainConfig fields other than kind / base_model / output_dir.
    hyperparameters = models.JSONField(default=dict, blank=True)
    template = models.ForeignKey(
        PromptTemplate, null=True, blank=True, on_delete=models.PROTECT, related_name="training_runs"
    )

    step = models.PositiveIntegerField(default=0)
    max_steps = models.PositiveIntegerField(default=0)
    # {"train": n, "val": n, "train_yes": .., "pool": {...}} or pair stats for DPO.
    data_counts = models.JSONField(default=dict, blank=True)
    data_manifest = models.JSONField(default=dict, blank=True)
    # The export snapshot trained on (chosen at launch, or taken at launch), the row counts
    # per split file and the sha256 of the rows the trainer received (ExportJob.content_sha256).
    snapshot = models.ForeignKey(
        "ExportJob", null=True, blank=True, on_delete=models.PROTECT, related_name="training_runs"
    )
    snapshot_sha256 = models.CharField(max_length=64, blank=True)
    snapshot_rows = models.JSONField(default=dict, blank=True)
    # TrainResult.to_dict() without the metric history (that is in TrainingMetric).
    result = models.JSONField(default=dict, blank=True)
    tokens_per_second = models.FloatField(null=True, blank=True)
    log_tail = models.TextField(blank=True)
    error_detail = models.TextField(blank=True)  # staff only: traceback and upstream body, truncated
    output_dir = models.CharField(max_length=500)
    last_checkpoint = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=~Q(base_model=""), name="trainingrun_has_base_model"),
        ]
        indexes = [
            # recover_interrupted_runs: running runs held by one worker name.
            models.Index(
                fields=["worker"], condition=Q(status="running"), name="trainingrun_running_worker_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} run #{self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("training:run_detail", args=[self.uuid])

    @property
    def duration_s(self) -> float | None:
        if not self.started_at:
            return None
        return ((self.finished_at or timezone.now()) - self.started_at).total_seconds()

    def chart_data(self) -> dict:
        """Loss and eval-loss series for the live chart (JSON-safe: no NaN)."""
        rows = list(self.metrics.order_by("step").values_list("step", "loss", "eval_loss", "learning_rate"))
        return {
            "loss": [{"x": s, "y": loss} for s, loss, _, _ in rows if loss is not None],
            "eval_loss": [{"x": s, "y": ev} for s, _, ev, _ in rows if ev is not None],
            "learning_rate": [{"x": s, "y": lr} for s, _, _, lr in rows if lr is not None],
            "max_steps": self.max_steps,
            "kind": self.kind,
        }


class TrainingMetric(models.Model):
    """One logged step of a run: a train log and the eval log of the same step merge here."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    loss = models.FloatField(null=True, blank=True)
    eval_loss = models.FloatField(null=True, blank=True)
    learning_rate = models.FloatField(null=True, blank=True)
    grad_norm = models.FloatField(null=True, blank=True)
    epoch = models.FloatField(null=True, blank=True)
    # Everything else the trainer logged (DPO rewards/accuracies, runtimes, train_loss).
    extra = models.JSONField(default=dict, blank=True)
    logged_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run_id", "step"]
        constraints = [
            # Also the index of the chart query (a run's metrics in step order). A resumed
            # run logs the steps after its checkpoint again: they overwrite, never duplicate.
            models.UniqueConstraint(fields=["run", "step"], name="trainingmetric_unique_step"),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} step {self.step}"


class PreferencePair(models.Model):
    """A DPO pair from a student sampling run: one critique agreeing with the step's
    label (chosen) and one disagreeing (rejected), by the R-PRM rule."""

    run = models.ForeignKey(GenerationRun, on_delete=models.PROTECT, related_name="preference_pairs")
    step = models.ForeignKey(Step, on_delete=models.PROTECT, related_name="+")
    chosen = models.ForeignKey(Critique, on_delete=models.PROTECT, related_name="+")
    rejected = models.ForeignKey(Critique, on_delete=models.PROTECT, related_name="+")
    # Position in the step's deterministic pair order: a cap of k keeps ranks < k.
    rank = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run_id", "step_id", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["chosen", "rejected"], name="preferencepair_unique_pair"),
            models.CheckConstraint(condition=~Q(chosen=models.F("rejected")), name="preferencepair_distinct"),
        ]
        indexes = [
            # A student run's pairs step by step (DPO data, counts on the model page).
            models.Index(fields=["run", "step", "rank"], name="preferencepair_run_step_idx"),
        ]

    def __str__(self) -> str:
        return f"pair {self.chosen_id} > {self.rejected_id} (step {self.step_id})"


class ExportJob(RunBase):
    """One training-data snapshot: filters in, files + manifest out, progress on the row."""

    PROGRESS = ("rows_done", "rows_total")  # percent = done / total (RunBase)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # {"datasets": [ids], "runs": [ids], "error_types": [slugs], "require_review": bool,
    #  "balance": bool, "val_fraction": float, "seed": int, "dpo_pairs_per_step": int, "kinds": [...]}
    filters = models.JSONField(default=dict, blank=True)
    rows_total = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    manifest = models.JSONField(default=dict, blank=True)
    # File names inside the job's folder (MEDIA_ROOT/exports/<uuid>/).
    files = models.JSONField(default=list, blank=True)
    # sha256 over the split files' rows (training.export.content_hash): a retrain compares it.
    content_sha256 = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "annotations_exportjob"  # kept in the move from annotations (migration 0002)
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"export {self.uuid} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("training:export_detail", args=[self.uuid])

    def folder(self) -> Path:
        return Path(settings.MEDIA_ROOT) / "exports" / str(self.uuid)
