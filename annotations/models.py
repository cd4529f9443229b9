"""Step-labelled math solutions: datasets, problems, solutions, steps, error types.

Source data is never overwritten: a step's `label` and `source_rating` are what the
file said (after the import's recorded mapping); human corrections are rows of
their own (review issue). Integer keys inside, UUIDs in URLs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Count
from django.urls import reverse

from rprm_web.runs import RunBase, RunStatus


class Dataset(models.Model):
    class Format(models.TextChoices):
        PRM800K = "prm800k", "PRM800K"
        PROCESSBENCH = "processbench", "ProcessBench"
        PRMBENCH = "prmbench", "PRMBench"
        RPRM_STEPS = "rprm_steps", "R-PRM step rows"
        GENERIC = "generic", "Generic JSONL"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200, unique=True)
    source_format = models.CharField(max_length=20, choices=Format.choices)
    split = models.CharField(max_length=50, blank=True, help_text="e.g. train, test, gsm8k")
    description = models.TextField(blank=True)
    # The options the importer ran with (e.g. PRM800K's rating-0 mapping), for provenance.
    import_options = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Denormalised counts, written once by the importer (datasets are append-only).
    n_problems = models.PositiveIntegerField(default=0)
    n_solutions = models.PositiveIntegerField(default=0)
    n_steps = models.PositiveIntegerField(default=0)
    n_with_error = models.PositiveIntegerField(default=0)
    # {"correct": n, "incorrect": n, "neutral": n, "unlabelled": n}
    label_counts = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    def refresh_stats(self) -> None:
        """Recount after an import; the list page reads these instead of scanning steps."""
        steps = Step.objects.filter(solution__dataset=self)
        counts = {choice: 0 for choice in Step.Label.values}
        counts.update({r["label"]: r["n"] for r in steps.values("label").annotate(n=Count("id"))})
        self.label_counts = counts
        self.n_steps = sum(counts.values())
        self.n_problems = self.problems.count()
        self.n_solutions = self.solutions.count()
        self.n_with_error = self.solutions.filter(first_error_index__gte=0).count()
        self.save(update_fields=["label_counts", "n_steps", "n_problems", "n_solutions", "n_with_error"])

    def label_share(self) -> list[tuple[str, int, float]]:
        total = sum(self.label_counts.values()) or 1
        return [
            (k, self.label_counts.get(k, 0), 100 * self.label_counts.get(k, 0) / total)
            for k in Step.Label.values
        ]


class ImportJob(RunBase):
    """One import of one file: the dataset's import history and the upload page's progress."""

    # The run statuses plus one outcome of its own: the file was imported before.
    Status = models.TextChoices(  # type: ignore[call-overload]  # the stubs know only the class syntax
        "ImportStatus",
        [(m.name, (m.value, m.label)) for m in RunStatus]
        + [("DUPLICATE", ("duplicate", "already imported"))],
    )

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.PROTECT, related_name="imports"
    )
    dataset_name = models.CharField(max_length=200)
    file_path = models.CharField(max_length=500)
    file_name = models.CharField(max_length=255)
    file_size = models.BigIntegerField(default=0)
    file_sha256 = models.CharField(max_length=64, blank=True)  # several files: see actions.sources_sha256
    # Several files imported as one dataset: [{"path", "name"}] in order (file_path: the first).
    files = models.JSONField(default=list, blank=True)
    requested_format = models.CharField(max_length=20, blank=True, help_text="empty = auto-detect")
    detected_format = models.CharField(max_length=20, blank=True)
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    bytes_done = models.BigIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # "Was this exact file already imported?" (idempotent imports).
            models.Index(fields=["file_sha256", "status"], name="importjob_sha_status_idx"),
        ]

    def __str__(self) -> str:
        return f"import of {self.file_name} ({self.status})"

    def discard_inputs(self) -> None:
        """Delete its uploaded files once the job has ended or can never run (never a file
        given on the command line: only files the upload form saved, which the job owns)."""
        uploads = (Path(settings.MEDIA_ROOT) / "uploads").resolve()
        paths = [f["path"] for f in self.files] if self.files else [self.file_path] if self.file_path else []
        for path in map(Path, paths):
            if path.resolve().parent == uploads:
                path.unlink(missing_ok=True)

    def get_absolute_url(self) -> str:
        return reverse("annotations:import_detail", args=[self.uuid])

    @property
    def can_retry(self) -> bool:
        # An upload is deleted when its job ends (discard_inputs): nothing left to import again.
        paths = [f["path"] for f in self.files] if self.files else [self.file_path] if self.file_path else []
        return super().can_retry and bool(paths) and all(Path(p).is_file() for p in paths)

    @property
    def is_finished(self) -> bool:
        return self.status not in self.ACTIVE

    @property
    def percent(self) -> int:
        if self.is_finished:
            return 100
        return int(100 * self.bytes_done / self.file_size) if self.file_size else 0


# Apps above this one that tag rows with error types (review) register a check here that
# raises ProtectedError for a type in use. It runs before a delete starts, so the caller's
# transaction stays usable (a pre_delete signal would fire inside the delete's transaction).
ERROR_TYPE_DELETE_GUARDS: list[Callable[[ErrorType], None]] = []


def _guard_error_type_delete(error_type: ErrorType) -> None:
    for guard in ERROR_TYPE_DELETE_GUARDS:
        guard(error_type)


class ErrorTypeQuerySet(models.QuerySet["ErrorType"]):
    def active(self) -> ErrorTypeQuerySet:
        """Types offered for new tags (archived ones stay on the reviews that carry them)."""
        return self.filter(archived=False)

    def delete(self) -> tuple[int, dict[str, int]]:
        for error_type in self:
            _guard_error_type_delete(error_type)
        return super().delete()


class ErrorType(models.Model):
    """The seeded taxonomy: PRMBench's nine classes plus calculation error.

    Never deleted once used: a type that tags a review or an adjudication is protected
    (review.models registers the check in ERROR_TYPE_DELETE_GUARDS, since the tags live
    there); retire it with `archived` instead."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    dimension = models.CharField(max_length=50)
    definition = models.CharField(max_length=300)
    order = models.PositiveSmallIntegerField(default=0)
    archived = models.BooleanField(default=False, help_text="Not offered for new tags; existing tags stay.")

    objects = ErrorTypeQuerySet.as_manager()

    class Meta:
        ordering = ["order", "slug"]

    def __str__(self) -> str:
        return self.name

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        _guard_error_type_delete(self)
        return super().delete(*args, **kwargs)


class Problem(models.Model):
    # No index of its own: problem_unique_source_id (dataset, source_id) leads with it.
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="problems", db_index=False)
    source_id = models.CharField(max_length=200)
    question = models.TextField()
    reference_answer = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "source_id"], name="problem_unique_source_id"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset.name}/{self.source_id}"


class SolutionQuerySet(models.QuerySet):
    def with_error(self) -> SolutionQuerySet:
        return self.filter(first_error_index__gte=0)

    def all_correct(self) -> SolutionQuerySet:
        return self.filter(first_error_index=-1)


class Solution(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # No index of its own: solution_unique_source_id (dataset, source_id) leads with it.
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="solutions", db_index=False)
    problem = models.ForeignKey(Problem, on_delete=models.CASCADE, related_name="solutions")
    source_id = models.CharField(max_length=200)
    generator = models.CharField(max_length=200, blank=True)
    final_answer_correct = models.BooleanField(null=True, blank=True)
    # 0-based index of the earliest incorrect step; -1 when every step is labelled
    # correct; null when the source does not say (unlabelled steps).
    first_error_index = models.IntegerField(null=True, blank=True)
    n_steps = models.PositiveIntegerField(default=0)
    error_type = models.ForeignKey(
        ErrorType, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    metadata = models.JSONField(default=dict, blank=True)

    objects = SolutionQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "source_id"], name="solution_unique_source_id"),
        ]
        indexes = [
            # Dataset solution list filtered by first error / generator, in id order.
            models.Index(fields=["dataset", "first_error_index", "id"], name="solution_ds_firsterr_idx"),
            models.Index(fields=["dataset", "generator", "id"], name="solution_ds_generator_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset.name}/{self.source_id}"

    @property
    def has_error(self) -> bool:
        return self.first_error_index is not None and self.first_error_index >= 0


class Step(models.Model):
    class Label(models.TextChoices):
        CORRECT = "correct"
        INCORRECT = "incorrect"
        NEUTRAL = "neutral"
        UNLABELLED = "unlabelled"

    # No index of its own: step_unique_index (solution, index) leads with it, and every import
    # writes each step into every index of this table.
    solution = models.ForeignKey(Solution, on_delete=models.CASCADE, related_name="steps", db_index=False)
    index = models.PositiveIntegerField(help_text="0-based position in the solution")
    text = models.TextField()
    label = models.CharField(max_length=10, choices=Label.choices)
    # What the source said before any mapping (PRM800K: -1, 0, 1).
    source_rating = models.SmallIntegerField(null=True, blank=True)
    # Other labelled candidates for this position (PRM800K completions not chosen).
    alternatives = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["solution_id", "index"]
        constraints = [
            models.UniqueConstraint(fields=["solution", "index"], name="step_unique_index"),
        ]
        indexes = [
            # Label balance per dataset and step selection for runs by label.
            models.Index(fields=["label", "solution"], name="step_label_solution_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.solution} step {self.index}"

    @property
    def is_labelled(self) -> bool:
        return self.label in (self.Label.CORRECT, self.Label.INCORRECT)


class WorkerHeartbeat(models.Model):
    """Written by every Celery worker every few seconds; the UI banner reads it."""

    hostname = models.CharField(max_length=255, unique=True)
    queues = models.CharField(max_length=200)
    pid = models.IntegerField()
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField()

    def __str__(self) -> str:
        return self.hostname
