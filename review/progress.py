"""Progress where people work: done, left, today and pace, per queue and per reviewer.

Every count reads an index: items left from the open-queue indexes (capped at
`COUNT_CAP`, like the queue tabs: an exact count of a million open items is a scan),
reviewed items from `reviewitem_reviewed_scope_idx` (as large as the human work done),
decisions today from `review_active_created_idx` and one reviewer's from
`review_reviewer_created_idx`. No query per row: the team tables are grouped queries.

Blind review: "done" counts an item once all its reviews are in, whatever they say, so
a second reviewer's decision moves it the same way whether or not the two agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Count, Func, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum
from django.utils import timezone

from annotations.models import Dataset
from inference.models import GenerationRun

from .models import Assignment, Review, ReviewItem
from .queue import QueueFilter, open_items, role_kinds

COUNT_CAP = 10_000
WEEK_DAYS = 7


def start_of_today(now: datetime | None = None) -> datetime:
    return timezone.localtime(now or timezone.now()).replace(hour=0, minute=0, second=0, microsecond=0)


def per_hour(n: int, ms: int | None) -> int | None:
    """Decisions per hour on task (the browser's timer), None without time to go by."""
    return round(n * 3_600_000 / ms) if n and ms else None


@dataclass(frozen=True)
class Count_:
    """A count that may stop at COUNT_CAP (shown "10,000+")."""

    n: int
    capped: bool = False

    def __str__(self) -> str:
        return f"{self.n:,}+" if self.capped else f"{self.n:,}"


def capped(qs: QuerySet[ReviewItem]) -> Count_:
    n = qs.order_by()[: COUNT_CAP + 1].count()
    return Count_(COUNT_CAP, True) if n > COUNT_CAP else Count_(n)


@dataclass(frozen=True)
class ScopeProgress:
    """One queue scope (queue tab, dataset, run) as a reviewer sees it."""

    done: int
    left: Count_
    today: int
    mine_done: int
    mine_today: int
    mine_per_hour: int | None

    @property
    def total(self) -> Count_:
        return Count_(self.done + self.left.n, self.left.capped)

    @property
    def percent(self) -> int:
        total = self.done + self.left.n
        return round(100 * self.done / total) if total else 0


def _scope_q(flt: QueueFilter, prefix: str = "") -> Q:
    q = Q(**{f"{prefix}flagged": True}) if flt.queue == "flagged" else Q(**{f"{prefix}queue": flt.queue})
    if flt.dataset_id:
        q &= Q(**{f"{prefix}dataset_id": flt.dataset_id})
    if flt.run_id:
        q &= Q(**{f"{prefix}run_id": flt.run_id})
    elif flt.role != "all":  # the queue's role, as QueueFilter.apply filters it
        q &= Q(**{f"{prefix}run__kind__in": role_kinds(flt.role)})
    return q


def scope_progress(flt: QueueFilter, user: User, *, left: Count_ | None = None) -> ScopeProgress:
    """Progress of the queue scope (search and error-type filters aside); `left` when the
    caller has counted it already (the queue page's tab)."""
    # Your own gold copies count like any item (review/gold.py: they must look like one);
    # other people's are theirs.
    scope = QueueFilter(
        queue=flt.queue, role=flt.role, dataset_id=flt.dataset_id, run_id=flt.run_id, viewer_id=user.id
    )
    if left is None:
        left = capped(open_items(scope))
    yours = Q(gold_for__isnull=True) | Q(gold_for=user)
    done = ReviewItem.objects.filter(yours, _scope_q(scope), state__in=ReviewItem.REVIEWED_STATES).count()
    today = start_of_today()
    # One query for the team's and the user's decisions (a BitmapOr of two indexes).
    mine_q, today_q = Q(reviewer=user), Q(created_at__gte=today)
    counts = (
        Review.objects.filter(_scope_q(scope, "item__"), undone_at__isnull=True)
        .filter(mine_q | today_q)
        .aggregate(
            today=Count("id", filter=today_q),
            n=Count("id", filter=mine_q),
            mine_today=Count("id", filter=mine_q & today_q),
            ms=Sum("time_on_task_ms", filter=mine_q & today_q),
        )
    )
    return ScopeProgress(
        done=done,
        left=left,
        today=counts["today"],
        mine_done=counts["n"],
        mine_today=counts["mine_today"],
        mine_per_hour=per_hour(counts["mine_today"], counts["ms"]),
    )


# --- the team tables (admins) ----------------------------------------------------------


@dataclass(frozen=True)
class ReviewerRow:
    user: User
    total: int
    today: int
    week: int
    per_hour: int | None  # this week, on task


def reviewer_rows(users: list[User]) -> list[ReviewerRow]:
    """Decisions per person: all time, today, the last 7 days and their pace (one query)."""
    now = timezone.now()
    today, week = start_of_today(now), now - timedelta(days=WEEK_DAYS)
    stats = {
        row["reviewer_id"]: row
        for row in Review.objects.filter(undone_at__isnull=True, reviewer__in=users)
        .values("reviewer_id")
        .annotate(
            total=Count("id"),
            today=Count("id", filter=Q(created_at__gte=today)),
            week=Count("id", filter=Q(created_at__gte=week)),
            week_ms=Sum("time_on_task_ms", filter=Q(created_at__gte=week)),
        )
    }
    rows = []
    for user in users:
        s: Mapping[str, Any] = stats.get(user.id, {})
        week_n = s.get("week", 0)
        rows.append(
            ReviewerRow(
                user, s.get("total", 0), s.get("today", 0), week_n, per_hour(week_n, s.get("week_ms"))
            )
        )
    return rows


@dataclass(frozen=True)
class AssignmentRow:
    assignment: Assignment
    done: int  # the reviewer's decisions in the scope
    left: Count_  # open items in the scope (everyone's)

    @property
    def percent_of_target(self) -> int | None:
        target = self.assignment.target
        return min(100, round(100 * self.done / target)) if target else None


def assignment_rows(assignments: list[Assignment]) -> list[AssignmentRow]:
    """Each assignment's progress: two grouped queries for the decisions, two for what is left."""
    if not assignments:
        return []
    reviewers = {a.reviewer_id for a in assignments}
    datasets = {a.dataset_id for a in assignments if a.dataset_id}
    runs = {a.run_id for a in assignments if a.run_id}
    mine = Review.objects.filter(undone_at__isnull=True, reviewer_id__in=reviewers)
    by_dataset = _grouped(mine.filter(item__dataset_id__in=datasets), "reviewer_id", "item__dataset_id")
    by_run = _grouped(mine.filter(item__run_id__in=runs), "reviewer_id", "item__run_id")
    left_dataset = dict(
        Dataset.objects.filter(id__in=datasets)
        .annotate(left=CappedCount(_open_ids(dataset_id=OuterRef("id"))))
        .values_list("id", "left")
    )
    left_run = dict(
        GenerationRun.objects.filter(id__in=runs)
        .annotate(left=CappedCount(_open_ids(run_id=OuterRef("id"))))
        .values_list("id", "left")
    )
    rows = []
    for a in assignments:
        if a.dataset_id:
            done, left = (
                by_dataset.get((a.reviewer_id, a.dataset_id), 0),
                left_dataset.get(a.dataset_id or 0, 0),
            )
        else:
            done, left = by_run.get((a.reviewer_id, a.run_id), 0), left_run.get(a.run_id or 0, 0)
        rows.append(AssignmentRow(a, done, Count_(min(left, COUNT_CAP), left > COUNT_CAP)))
    return rows


def _grouped(qs: QuerySet[Any], *keys: str) -> dict[tuple[Any, ...], int]:
    return {
        tuple(row[k] for k in keys): row["n"] for row in qs.values(*keys).annotate(n=Count("id")).order_by()
    }


@dataclass(frozen=True)
class DatasetRow:
    dataset_id: int
    name: str
    done: int
    left: Count_
    skipped: int
    today: int
    week: int

    @property
    def days_left(self) -> float | None:
        """At this week's pace (items a day), how long the rest takes."""
        per_day = self.week / WEEK_DAYS
        return round(self.left.n / per_day, 1) if per_day and self.left.n else None

    @property
    def percent(self) -> int:
        total = self.done + self.left.n
        return round(100 * self.done / total) if total else 0


def dataset_rows() -> list[DatasetRow]:
    """Per dataset with review items: reviewed, left (open, capped), skipped, decisions
    today and this week. Four queries, each served by an index."""
    now = timezone.now()
    today, week = start_of_today(now), now - timedelta(days=WEEK_DAYS)
    # The work itself: gold copies served to reviewers (review/gold.py) are not items to do.
    reviewed = _grouped(
        ReviewItem.objects.filter(gold_for__isnull=True, state__in=ReviewItem.REVIEWED_STATES), "dataset_id"
    )
    skipped = _grouped(ReviewItem.objects.filter(state=ReviewItem.State.SKIPPED), "dataset_id")
    datasets = Dataset.objects.annotate(left=CappedCount(_open_ids(dataset_id=OuterRef("id")))).filter(
        Q(left__gt=0) | Q(id__in=[d for (d,) in reviewed] + [d for (d,) in skipped])
    )
    pace = {
        row["item__dataset_id"]: row
        for row in Review.objects.filter(undone_at__isnull=True, created_at__gte=week)
        .values("item__dataset_id")
        .annotate(today=Count("id", filter=Q(created_at__gte=today)), week=Count("id"))
        .order_by()
    }
    rows = []
    for d in datasets.order_by("name").values("id", "name", "left"):
        p: Mapping[str, Any] = pace.get(d["id"], {})
        rows.append(
            DatasetRow(
                d["id"],
                d["name"],
                reviewed.get((d["id"],), 0),
                Count_(min(d["left"], COUNT_CAP), d["left"] > COUNT_CAP),
                skipped.get((d["id"],), 0),
                p.get("today", 0),
                p.get("week", 0),
            )
        )
    return rows


class CappedCount(Func):
    """COUNT(*) of a LIMITed subquery: stops at COUNT_CAP + 1 rows (an index range scan)."""

    template = "(SELECT COUNT(*) FROM %(expressions)s AS capped_rows)"
    output_field = IntegerField()


def _open_ids(**scope: Any) -> Subquery:
    return Subquery(
        ReviewItem.objects.filter(state=ReviewItem.State.OPEN, gold_for__isnull=True, **scope)
        .order_by()
        .values("id")[: COUNT_CAP + 1]
    )
