"""Humans auditing teacher critiques: audit signals, the review queue, reviews,
label corrections, adjudication and the insert-only event log.

Moved from annotations (tables keep their names: `annotations_*`)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import ProtectedError
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from annotations.models import ERROR_TYPE_DELETE_GUARDS, Dataset, ErrorType, Step

# --- review ---------------------------------------------------------------------
# Humans auditing teacher critiques (issue 4). Append-only history: a review is never
# deleted (undo stamps `undone_at` and writes an event), a label correction is its own
# row (the Step keeps its source label), and ReviewEvent rows are insert-only.
# Workflows live in review/reviews.py; the signals in review/audit.py.


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
        db_table = "annotations_critiqueaudit"
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
        db_table = "annotations_review"
        ordering = ["created_at", "id"]
        constraints = [
            # A reviewer decides a critique at most once; an undone review frees the slot.
            models.UniqueConstraint(fields=["item", "reviewer"], condition=models.Q(undone_at__isnull=True),
                                    name="review_once_per_reviewer"),
        ]
        indexes = [
            # A reviewer's history (previous/next, undo last): newest first. The included
            # columns make the review-operations dashboard's per-reviewer aggregate over a
            # period (dashboards.operations.reviewer_activity) an index-only scan.
            models.Index(fields=["reviewer", "-created_at"], include=["undone_at", "decision", "time_on_task_ms", "id"],
                         name="review_reviewer_created_idx"),
            # training_exclusion_q: active flawed / label-wrong reviews of a critique.
            models.Index(fields=["critique", "decision"], condition=models.Q(undone_at__isnull=True),
                         name="review_active_critique_idx"),
            # Progress: the team's decisions today / this week (newest first).
            models.Index(fields=["-created_at"], condition=models.Q(undone_at__isnull=True),
                         name="review_active_created_idx"),
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
        SKIPPED = "skipped", "skipped by an admin"

    # States whose reviews are all in: what "done" counts on the progress lines.
    REVIEWED_STATES = ("done", "adjudication", "adjudicated")

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
    # A gold copy's item (review/gold.py) is served to this reviewer only.
    gold_for = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "annotations_reviewitem"
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
            # Progress lines: reviewed items of a scope (dataset, run, queue), counted from an
            # index as small as the human work done, however many items wait.
            models.Index(fields=["dataset", "run", "queue", "flagged"],
                         condition=models.Q(state__in=["done", "adjudication", "adjudicated"]),
                         name="reviewitem_reviewed_scope_idx"),
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
        db_table = "annotations_labelcorrection"
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
        db_table = "annotations_adjudication"
        constraints = [
            models.CheckConstraint(condition=~models.Q(decision=Review.Decision.SKIP), name="adjudication_not_skip"),
        ]

    def __str__(self) -> str:
        return f"adjudication of item {self.item_id}: {self.decision}"


class GoldItem(models.Model):
    """A known answer reviewers are measured against (review/gold.py).

    An adjudicated item, a critique an admin marked gold with its answer, or a seeded
    copy of a sound, matched critique with one planted flaw (`flaw`, `flaw_detail`; its
    text is `text`). Served blind: each reviewer who has not seen it gets a fresh copy
    (GoldServing) that looks exactly like any other item.
    """

    class Source(models.TextChoices):
        ADJUDICATED = "adjudicated"
        MARKED = "marked", "marked gold by an admin"
        SEEDED = "seeded", "seeded flaw"

    class Flaw(models.TextChoices):
        NONE = "", "none"
        ARITHMETIC = "arithmetic", "arithmetic claim made false"
        PREMISE = "premise", "premise not in the problem"
        CONTRADICTION = "contradiction", "conclusion contradicts the analysis"

    critique = models.ForeignKey("inference.Critique", on_delete=models.PROTECT, related_name="gold_items")
    source = models.CharField(max_length=11, choices=Source.choices)
    answer = models.CharField(max_length=11, choices=Review.Decision.choices)
    error_type = models.ForeignKey(ErrorType, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    flaw = models.CharField(max_length=13, choices=Flaw.choices, blank=True)
    # What was planted: {"section", "before", "after", "equation"...}, for the calibration page.
    flaw_detail = models.JSONField(default=dict, blank=True)
    text = models.TextField()
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~models.Q(answer=Review.Decision.SKIP), name="golditem_answer_not_skip"),
            # One gold item per critique and flaw (a critique may carry each kind of seeded flaw).
            models.UniqueConstraint(fields=["critique", "flaw"], name="golditem_once_per_flaw"),
        ]

    def __str__(self) -> str:
        return f"gold {self.source} on critique {self.critique_id}: {self.answer}"


class GoldServing(models.Model):
    """One reviewer's blind copy of a gold item; their answer is their review of `copy`."""

    gold = models.ForeignKey(GoldItem, on_delete=models.PROTECT, related_name="servings")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    copy = models.OneToOneField("inference.Critique", on_delete=models.PROTECT, related_name="gold_serving")
    # A `label_wrong` answer's label: kept here, never filed as a LabelCorrection on the
    # source step (the answer tests the reviewer; it is no claim about the data).
    proposed_label = models.CharField(max_length=10, choices=Step.Label.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["gold", "reviewer"], name="goldserving_once_per_reviewer"),
        ]

    def __str__(self) -> str:
        return f"gold {self.gold_id} served to {self.reviewer_id}"


class Assignment(models.Model):
    """A dataset or a run given to a reviewer, with an optional target (reviews to make).

    Its open items are served to its reviewers first and to nobody else while they are
    active (review/assignments.py); unassigned work goes to anyone. Configuration, not
    history: unassigning deletes the row, and both write a ReviewEvent."""

    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                 related_name="review_assignments")
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    run = models.ForeignKey("inference.GenerationRun", null=True, blank=True, on_delete=models.PROTECT,
                            related_name="+")
    target = models.PositiveIntegerField(null=True, blank=True)
    assigned_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "review_assignment"
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(dataset__isnull=False, run__isnull=True)
                | models.Q(dataset__isnull=True, run__isnull=False),
                name="assignment_one_scope",
            ),
            models.UniqueConstraint(fields=["reviewer", "dataset"], condition=models.Q(dataset__isnull=False),
                                    name="assignment_once_per_dataset"),
            models.UniqueConstraint(fields=["reviewer", "run"], condition=models.Q(run__isnull=False),
                                    name="assignment_once_per_run"),
        ]

    def __str__(self) -> str:
        scope = f"dataset {self.dataset_id}" if self.dataset_id else f"run {self.run_id}"
        return f"{scope} assigned to {self.reviewer_id}"


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
        SKIPPED = "skipped", "skipped by an admin"
        REOPENED = "reopened", "reopened by an admin"
        ADJUDICATION_UNDONE = "adjudication_undone", "adjudication undone"
        ASSIGNED = "assigned"
        UNASSIGNED = "unassigned"
        MEMBER_CHANGED = "member_changed", "team member changed"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+")
    item = models.ForeignKey(ReviewItem, null=True, blank=True, on_delete=models.PROTECT, related_name="events")
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ReviewEventQuerySet.as_manager()

    class Meta:
        db_table = "annotations_reviewevent"
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


def _refuse_if_used(instance: ErrorType) -> None:
    """PROTECT for the tag relations (auto-created many-to-many tables cascade in Django):
    deleting a type would silently drop reviewers' tags, so refuse it; archive it instead."""
    reviews = list(Review.error_types.through.objects.filter(errortype_id=instance.pk)[:1])
    adjudications = list(Adjudication.error_types.through.objects.filter(errortype_id=instance.pk)[:1])
    if reviews or adjudications:
        raise ProtectedError(
            f"Error type {instance.slug!r} tags reviews or adjudications: archive it instead of deleting it.",
            set(reviews + adjudications),
        )


ERROR_TYPE_DELETE_GUARDS.append(_refuse_if_used)


@receiver(pre_delete, sender=ErrorType)
def _protect_used_error_types(sender, instance: ErrorType, **kwargs) -> None:
    """The last line of defence (a delete that reaches ErrorType by some other path)."""
    _refuse_if_used(instance)
