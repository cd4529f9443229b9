"""Step-labelled math solutions: datasets, problems, solutions, steps, error types.

Source data is never overwritten: a step's `label` and `source_rating` are what the
file said (after the import's recorded mapping); human corrections are rows of
their own (review issue). Integer keys inside, UUIDs in URLs.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Count, ProtectedError
from django.db.models.signals import pre_delete
from django.dispatch import receiver


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
        return [(k, self.label_counts.get(k, 0), 100 * self.label_counts.get(k, 0) / total) for k in Step.Label.values]


class ImportJob(models.Model):
    """One import of one file: the dataset's import history and the upload page's progress."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        DUPLICATE = "duplicate", "already imported"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.PROTECT, related_name="imports")
    dataset_name = models.CharField(max_length=200)
    file_path = models.CharField(max_length=500)
    file_name = models.CharField(max_length=255)
    file_size = models.BigIntegerField(default=0)
    file_sha256 = models.CharField(max_length=64, blank=True)
    requested_format = models.CharField(max_length=20, blank=True, help_text="empty = auto-detect")
    detected_format = models.CharField(max_length=20, blank=True)
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    bytes_done = models.BigIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # "Was this exact file already imported?" (idempotent imports).
            models.Index(fields=["file_sha256", "status"], name="importjob_sha_status_idx"),
        ]

    def __str__(self) -> str:
        return f"import of {self.file_name} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.SUCCEEDED, self.Status.FAILED, self.Status.DUPLICATE}

    @property
    def percent(self) -> int:
        if self.is_finished:
            return 100
        return int(100 * self.bytes_done / self.file_size) if self.file_size else 0


class ErrorTypeQuerySet(models.QuerySet):
    def active(self):
        """Types offered for new tags (archived ones stay on the reviews that carry them)."""
        return self.filter(archived=False)

    def delete(self):
        for error_type in self:  # refused before anything runs, so the caller's transaction stays usable
            _refuse_if_used(error_type)
        return super().delete()


class ErrorType(models.Model):
    """The seeded taxonomy: PRMBench's nine classes plus calculation error.

    Never deleted once used: a type that tags a review or an adjudication is protected
    (`_refuse_if_used` below); retire it with `archived` instead."""

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

    def delete(self, *args, **kwargs):
        _refuse_if_used(self)
        return super().delete(*args, **kwargs)


class Problem(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="problems")
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
    def with_error(self):
        return self.filter(first_error_index__gte=0)

    def all_correct(self):
        return self.filter(first_error_index=-1)


class Solution(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="solutions")
    problem = models.ForeignKey(Problem, on_delete=models.CASCADE, related_name="solutions")
    source_id = models.CharField(max_length=200)
    generator = models.CharField(max_length=200, blank=True)
    final_answer_correct = models.BooleanField(null=True, blank=True)
    # 0-based index of the earliest incorrect step; -1 when every step is labelled
    # correct; null when the source does not say (unlabelled steps).
    first_error_index = models.IntegerField(null=True, blank=True)
    n_steps = models.PositiveIntegerField(default=0)
    error_type = models.ForeignKey(ErrorType, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
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

    solution = models.ForeignKey(Solution, on_delete=models.CASCADE, related_name="steps")
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


# --- review ---------------------------------------------------------------------
# Humans auditing teacher critiques (issue 4). Append-only history: a review is never
# deleted (undo stamps `undone_at` and writes an event), a label correction is its own
# row (the Step keeps its source label), and ReviewEvent rows are insert-only.
# Workflows live in annotations/reviews.py; the signals in annotations/audit.py.


class CritiqueAudit(models.Model):
    """Automatic audit signals for one critique, each with its evidence."""

    critique = models.OneToOneField("inference.Critique", on_delete=models.CASCADE, related_name="audit")
    # [{"kind": ..., "strength": 0..1, "weight": ..., "message": ..., "evidence": {...}}]
    signals = models.JSONField(default=list, blank=True)
    suspicion = models.FloatField(default=0)
    # Bumped when the signal code changes, so stale audits can be recomputed.
    version = models.PositiveSmallIntegerField(default=1)
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(suspicion__gte=0) & models.Q(suspicion__lte=1),
                                   name="critiqueaudit_suspicion_range"),
        ]
        indexes = [
            # "Most suspicious critiques first" across all runs (audit reports).
            models.Index(fields=["-suspicion", "id"], name="critiqueaudit_suspicion_idx"),
        ]

    def __str__(self) -> str:
        return f"audit of critique {self.critique_id} ({self.suspicion:.2f})"

    @property
    def kinds(self) -> list[str]:
        return [s["kind"] for s in self.signals]


class Review(models.Model):
    """One human decision on one critique. Undo stamps `undone_at`; nothing is deleted."""

    class Decision(models.TextChoices):
        SOUND = "sound", "sound"
        FLAWED = "flawed", "flawed (plausible but wrong)"
        LABEL_WRONG = "label_wrong", "label wrong"
        SKIP = "skip", "skip"

    class TimeSource(models.TextChoices):
        CLIENT = "client", "browser timer"
        LEASE = "lease", "since the lease began"

    item = models.ForeignKey("ReviewItem", on_delete=models.PROTECT, related_name="reviews")
    critique = models.ForeignKey("inference.Critique", on_delete=models.PROTECT, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    decision = models.CharField(max_length=11, choices=Decision.choices)
    error_types = models.ManyToManyField(ErrorType, blank=True, related_name="reviews")
    note = models.TextField(blank=True)
    time_on_task_ms = models.PositiveIntegerField(default=0)
    time_source = models.CharField(max_length=6, choices=TimeSource.choices, default=TimeSource.LEASE)
    created_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # A reviewer decides a critique at most once; an undone review frees the slot.
            models.UniqueConstraint(fields=["item", "reviewer"], condition=models.Q(undone_at__isnull=True),
                                    name="review_once_per_reviewer"),
        ]
        indexes = [
            # A reviewer's history (previous/next, undo last): newest first.
            models.Index(fields=["reviewer", "-created_at"], name="review_reviewer_created_idx"),
            # training_exclusion_q: active flawed / label-wrong reviews of a critique.
            models.Index(fields=["critique", "decision"], condition=models.Q(undone_at__isnull=True),
                         name="review_active_critique_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer} on critique {self.critique_id}: {self.decision}"

    @property
    def is_active(self) -> bool:
        return self.undone_at is None

    @property
    def seconds_on_task(self) -> float:
        return self.time_on_task_ms / 1000


class ReviewItem(models.Model):
    """A critique in the review workflow: queue membership, lease, progress.

    Queue fields (run, dataset, queue, flagged, suspicion) are copied from the
    critique and its audit so the claim query is one index scan of this table.
    """

    class Queue(models.TextChoices):
        MATCHED = "matched", "matched the label"
        DISAGREED = "disagreed", "disagreed with the label"
        OTHER = "other", "no label or unparseable"

    class State(models.TextChoices):
        OPEN = "open", "needs review"
        DONE = "done", "reviewed"
        ADJUDICATION = "adjudication", "awaiting adjudication"
        ADJUDICATED = "adjudicated", "adjudicated"

    critique = models.OneToOneField("inference.Critique", on_delete=models.PROTECT, related_name="review_item")
    run = models.ForeignKey("inference.GenerationRun", on_delete=models.PROTECT, related_name="+")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="+")
    step = models.ForeignKey(Step, on_delete=models.PROTECT, related_name="+")
    # The solution's error class, if the dataset has one (PRMBench), for the queue filter.
    error_type = models.ForeignKey(ErrorType, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    queue = models.CharField(max_length=10, choices=Queue.choices)
    flagged = models.BooleanField(default=False)
    suspicion = models.FloatField(default=0)
    state = models.CharField(max_length=12, choices=State.choices, default=State.OPEN)
    needs_double_review = models.BooleanField(default=False)
    reviews_needed = models.PositiveSmallIntegerField(default=1)
    reviews_done = models.PositiveSmallIntegerField(default=0)
    # sound / flawed / label_wrong once settled (agreement or adjudication); blank before.
    final_decision = models.CharField(max_length=11, choices=Review.Decision.choices, blank=True)
    lease_holder = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    leased_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-suspicion", "id"]
        constraints = [
            # One live lease per reviewer: claim_next releases the old one first.
            models.UniqueConstraint(fields=["lease_holder"], condition=models.Q(lease_holder__isnull=False),
                                    name="reviewitem_one_lease_per_reviewer"),
            models.CheckConstraint(condition=models.Q(lease_holder__isnull=True) | models.Q(lease_expires_at__isnull=False),
                                   name="reviewitem_lease_has_expiry"),
            models.CheckConstraint(condition=models.Q(reviews_needed__gte=1) & models.Q(reviews_needed__lte=2),
                                   name="reviewitem_reviews_needed_range"),
            models.CheckConstraint(condition=~models.Q(final_decision=Review.Decision.SKIP),
                                   name="reviewitem_final_not_skip"),
        ]
        indexes = [
            # claim_next / queue list for "matched" and "disagreed": open items, most suspicious first.
            models.Index(fields=["queue", "-suspicion", "id"], condition=models.Q(state="open"),
                         name="reviewitem_open_queue_idx"),
            # claim_next / queue list for "flagged by signals".
            models.Index(fields=["-suspicion", "id"], condition=models.Q(state="open", flagged=True),
                         name="reviewitem_open_flagged_idx"),
            # The same two queues filtered to one run, and to one dataset.
            models.Index(fields=["run", "queue", "-suspicion", "id"], condition=models.Q(state="open"),
                         name="reviewitem_open_run_idx"),
            models.Index(fields=["dataset", "queue", "-suspicion", "id"], condition=models.Q(state="open"),
                         name="reviewitem_open_dataset_idx"),
            # Admins' adjudication queue, oldest first.
            models.Index(fields=["updated_at"], condition=models.Q(state="adjudication"),
                         name="reviewitem_adjudication_idx"),
            # Queue counters per state on the queue page.
            models.Index(fields=["state", "queue"], name="reviewitem_state_queue_idx"),
        ]

    def __str__(self) -> str:
        return f"review item for critique {self.critique_id} ({self.state})"

    def lease_is_live(self, now=None) -> bool:
        from django.utils import timezone

        return bool(self.lease_holder_id and self.lease_expires_at and self.lease_expires_at > (now or timezone.now()))


class LabelCorrection(models.Model):
    """A proposed fix of a step's human label. The Step's own label is never changed."""

    class Status(models.TextChoices):
        PENDING = "pending"
        ACCEPTED = "accepted"
        REJECTED = "rejected"
        WITHDRAWN = "withdrawn", "withdrawn (review undone)"

    step = models.ForeignKey(Step, on_delete=models.PROTECT, related_name="label_corrections")
    review = models.ForeignKey(Review, null=True, blank=True, on_delete=models.PROTECT,
                               related_name="label_corrections")
    original_label = models.CharField(max_length=10, choices=Step.Label.choices)
    proposed_label = models.CharField(max_length=10, choices=Step.Label.choices)
    reason = models.TextField(blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(condition=~models.Q(proposed_label=models.F("original_label")),
                                   name="labelcorrection_changes_label"),
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "withdrawn"], decided_at__isnull=True)
                | models.Q(status__in=["accepted", "rejected"], decided_at__isnull=False, decided_by__isnull=False),
                name="labelcorrection_decided_fields"),
            # One open proposal per author and step; they may propose again after a decision.
            models.UniqueConstraint(fields=["step", "author"], condition=models.Q(status="pending"),
                                    name="labelcorrection_one_pending_per_author"),
        ]
        indexes = [
            # training_exclusion_q: disputed (pending) or corrected (accepted) labels of a step.
            models.Index(fields=["step", "status"], name="labelcorr_step_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.step}: {self.original_label} -> {self.proposed_label} ({self.status})"


class Adjudication(models.Model):
    """An admin's final decision on an item whose reviews disagree or dispute the label."""

    item = models.OneToOneField(ReviewItem, on_delete=models.PROTECT, related_name="adjudication")
    decision = models.CharField(max_length=11, choices=Review.Decision.choices)
    error_types = models.ManyToManyField(ErrorType, blank=True, related_name="+")
    note = models.TextField(blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~models.Q(decision=Review.Decision.SKIP), name="adjudication_not_skip"),
        ]

    def __str__(self) -> str:
        return f"adjudication of item {self.item_id}: {self.decision}"


class ReviewEventQuerySet(models.QuerySet):
    def update(self, **kwargs):  # history is insert-only
        raise TypeError("ReviewEvent rows are insert-only")

    def delete(self):
        raise TypeError("ReviewEvent rows are insert-only")


class ReviewEvent(models.Model):
    """Insert-only history of every review state change: who did what, when."""

    class Kind(models.TextChoices):
        CLAIMED = "claimed"
        RELEASED = "released"
        REVIEWED = "reviewed"
        UNDONE = "undone"
        LABEL_PROPOSED = "label_proposed", "label correction proposed"
        LABEL_DECIDED = "label_decided", "label correction decided"
        ADJUDICATED = "adjudicated"
        AUDITED = "audited"
        EXPORT_REQUESTED = "export_requested", "export requested"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+")
    item = models.ForeignKey(ReviewItem, null=True, blank=True, on_delete=models.PROTECT, related_name="events")
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ReviewEventQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # An item's history on the review and adjudication screens.
            models.Index(fields=["item", "created_at"], name="reviewevent_item_idx"),
            # One person's activity log.
            models.Index(fields=["actor", "-created_at"], name="reviewevent_actor_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} by {self.actor_id} at {self.created_at:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("ReviewEvent rows are insert-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("ReviewEvent rows are insert-only")


class ExportJob(models.Model):
    """One training-data snapshot: filters in, files + manifest out, progress on the row."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # {"datasets": [ids], "runs": [ids], "error_types": [slugs], "require_review": bool,
    #  "balance": bool, "val_fraction": float, "seed": int, "dpo_pairs_per_step": int, "kinds": [...]}
    filters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    rows_total = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    manifest = models.JSONField(default=dict, blank=True)
    # File names inside the job's folder (MEDIA_ROOT/exports/<uuid>/).
    files = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"export {self.uuid} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    @property
    def percent(self) -> int:
        if self.status == self.Status.SUCCEEDED:
            return 100
        return int(100 * self.rows_done / self.rows_total) if self.rows_total else 0

    def folder(self):
        from pathlib import Path

        return Path(settings.MEDIA_ROOT) / "exports" / str(self.uuid)


from . import dashboard_models  # noqa: E402, F401  (issue 7: the dashboards' summary tables)


@receiver(pre_delete, sender=ErrorType)
def _protect_used_error_types(sender, instance: ErrorType, **kwargs) -> None:
    """The last line of defence (e.g. a delete reaching ErrorType by some cascade)."""
    _refuse_if_used(instance)


def _refuse_if_used(instance: ErrorType) -> None:
    """PROTECT for the tag relations (auto-created many-to-many tables cascade in Django):
    deleting a type would silently drop reviewers' tags. Archive it instead."""
    reviews = list(Review.error_types.through.objects.filter(errortype_id=instance.pk)[:1])
    adjudications = list(Adjudication.error_types.through.objects.filter(errortype_id=instance.pk)[:1])
    if reviews or adjudications:
        raise ProtectedError(
            f"Error type {instance.slug!r} tags reviews or adjudications: archive it instead of deleting it.",
            set(reviews + adjudications),
        )
