"""Materialised summaries behind the audit dashboards (issue 7).

Each table is a GROUP BY of the critique-level facts (dashboards/summaries.py,
`refresh_summaries`), rebuilt whole in one transaction by a Celery task, so a
dashboard reads a few thousand rows instead of joining a million critiques. The rows
are derived data: a refresh deletes and rewrites them, and `DashboardRefresh`
records when that happened (the pages show it).

Dimensions shared by the tables:

* `outcome`: where the critique stands in review: `unqueued` (no review item yet),
  `open`, `partial` (awaiting a second review), `adjudication`, or the settled
  decision `sound` / `flawed` / `label_wrong`.
* `runs`: the runs that critiqued the step, as ",3,7," (comparisons "on the same
  steps" keep the rows whose step was critiqued by both sides).
* `sealed`: the critique's review item is in blind double review (awaiting its second
  review or adjudication). Reviewers' pages leave these rows out (docs/blind-review.md);
  admins' pages sum over both.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from rprm_web.runs import RunBase

OUTCOMES = ("unqueued", "open", "partial", "adjudication", "sound", "flawed", "label_wrong")
REVIEWED = ("sound", "flawed", "label_wrong")


class DashboardRefresh(RunBase):
    """One rebuild of the summaries; the latest succeeded one dates the numbers shown. A run
    like any other (rprm_web.runs): claimed, heartbeat, a dead worker's refresh taken over."""

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    seconds = models.FloatField(null=True, blank=True)
    # Rows written per table and critiques summarised.
    counts = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "annotations_dashboardrefresh"
        ordering = ["-created_at", "-id"]
        indexes = [
            # "Latest succeeded refresh" and "is one queued or running?" on every dashboard view.
            models.Index(fields=["status", "-created_at"], name="dashrefresh_status_idx"),
        ]

    def __str__(self) -> str:
        return f"dashboard refresh {self.pk} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("dashboards:error_types")  # the numbers it refreshed, with their age


class DashboardCell(models.Model):
    """Critiques counted per run, week, error type and review outcome.

    Per error type, `via` says how the critiques got it: `class` (the step's solution
    class), `tag` (a reviewer's or adjudicator's tag only) or `both`. Rows with no
    error type count every critique once; there `via` says which kinds of error type
    the critique has at all (`none`, `class`, `tag`, `both`).
    """

    run = models.ForeignKey("inference.GenerationRun", on_delete=models.CASCADE, related_name="+")
    week = models.DateField(help_text="Monday (UTC) of the week the critique was written")
    error_type = models.ForeignKey(
        "annotations.ErrorType", null=True, on_delete=models.CASCADE, related_name="+"
    )
    via = models.CharField(max_length=5)
    label = models.CharField(max_length=10)
    verdict = models.CharField(max_length=11)
    matches = models.BooleanField(null=True)
    outcome = models.CharField(max_length=12)
    runs = models.TextField()
    sealed = models.BooleanField(default=False)
    n = models.PositiveIntegerField()

    class Meta:
        db_table = "annotations_dashboardcell"

    def __str__(self) -> str:
        return f"{self.n} critiques of run {self.run_id} ({self.error_type_id}, {self.via}, {self.outcome})"


class DashboardSteps(models.Model):
    """Distinct steps critiqued, per run, week and error type under each basis
    (`class`, `tag`, `either`; `all` with no error type). Distinct within a run and
    week, so a sum over runs counts a step once per run that critiqued it."""

    run = models.ForeignKey("inference.GenerationRun", on_delete=models.CASCADE, related_name="+")
    week = models.DateField()
    error_type = models.ForeignKey(
        "annotations.ErrorType", null=True, on_delete=models.CASCADE, related_name="+"
    )
    basis = models.CharField(max_length=6)
    label = models.CharField(max_length=10)
    runs = models.TextField()
    # Distinct counts cannot be summed over a sealed/unsealed split: `blind` rows count the
    # steps of unsealed critiques only (reviewers' pages), the others every critique (admins').
    blind = models.BooleanField(default=False)
    n_steps = models.PositiveIntegerField()

    class Meta:
        db_table = "annotations_dashboardsteps"

    def __str__(self) -> str:
        return f"{self.n_steps} steps of run {self.run_id} ({self.error_type_id}, {self.basis})"


class DashboardSignal(models.Model):
    """Audited critiques per run, audit signal and review outcome. `signal` is a
    signal kind, `flagged` (suspicion at or above the flag threshold) or `` (every
    audited critique: the base for recall and for the flawed rate)."""

    run = models.ForeignKey("inference.GenerationRun", on_delete=models.CASCADE, related_name="+")
    signal = models.CharField(max_length=40)
    matches = models.BooleanField(null=True)
    outcome = models.CharField(max_length=12)
    sealed = models.BooleanField(default=False)
    n = models.PositiveIntegerField()

    class Meta:
        db_table = "annotations_dashboardsignal"

    def __str__(self) -> str:
        return f"{self.n} critiques of run {self.run_id} with {self.signal or 'an audit'} ({self.outcome})"


class DashboardQueue(models.Model):
    """Critiques per run, review queue (from `matches`: matched / disagreed / other),
    flag and outcome: review progress per queue."""

    run = models.ForeignKey("inference.GenerationRun", on_delete=models.CASCADE, related_name="+")
    matches = models.BooleanField(null=True)
    flagged = models.BooleanField()
    outcome = models.CharField(max_length=12)
    sealed = models.BooleanField(default=False)
    n = models.PositiveIntegerField()

    class Meta:
        db_table = "annotations_dashboardqueue"

    def __str__(self) -> str:
        return f"{self.n} critiques of run {self.run_id} ({self.outcome})"


class DashboardPair(models.Model):
    """Agreement counts per run and reviewer pair (a before b by username), over items
    both decided (active, not skipped). `kind` "decision": a and b are their decisions;
    "tag": "yes"/"no" per item and error type, whether each tagged it. Cohen's kappa of
    any slice is computed from the summed counts."""

    run = models.ForeignKey("inference.GenerationRun", on_delete=models.CASCADE, related_name="+")
    reviewer_a = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reviewer_b = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=8)
    a = models.CharField(max_length=11)
    b = models.CharField(max_length=11)
    n = models.PositiveIntegerField()

    class Meta:
        db_table = "annotations_dashboardpair"

    def __str__(self) -> str:
        return f"{self.n} x ({self.a}, {self.b}) for reviewers {self.reviewer_a_id}, {self.reviewer_b_id}"


class DashboardReviewRun(models.Model):
    """The run of each review's critique, as of the last refresh: lets the live reviewer
    numbers be sliced by run without reading the wide review-item rows (reviews newer
    than the refresh are matched through their item instead)."""

    review = models.OneToOneField(
        "review.Review", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    run = models.ForeignKey("inference.GenerationRun", on_delete=models.CASCADE, related_name="+")

    class Meta:
        db_table = "annotations_dashboardreviewrun"

    def __str__(self) -> str:
        return f"review {self.review_id} of run {self.run_id}"
