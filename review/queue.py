"""The review queue: which critiques wait for review, and who holds which (leases).

Claiming uses `SELECT ... FOR UPDATE SKIP LOCKED` (Postgres), so concurrent reviewers each
get a different item without waiting on each other; a lease expires after
`REVIEW_LEASE_MINUTES`. A deterministic, hash-chosen fraction (`REVIEW_DOUBLE_FRACTION`) of
items needs two independent reviews; only those are ever decided by two people. Deciding
needs the lease (review/reviews.py); opening a critique by link and taking it is
`take_item`, a POST. Every state change writes a ReviewEvent (insert-only).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from inference.models import Critique, GenerationRun

from .assignments import serving_tiers
from .models import Review, ReviewEvent, ReviewItem

Decision = Review.Decision
DECIDING = (Decision.SOUND, Decision.FLAWED, Decision.LABEL_WRONG)
# Longest time on task we believe from the browser; beyond it the tab was left open.
# Items at or above this audit suspicion go to the "flagged by signals" queue.
FLAG_THRESHOLD = 0.5
MAX_CLIENT_MS = 6 * 3600 * 1000


class ReviewError(Exception):
    """A review action that cannot happen in the item's current state (shown to the user)."""


def lease_minutes() -> int:
    return settings.REVIEW_LEASE_MINUTES


def double_review_fraction() -> float:
    return settings.REVIEW_DOUBLE_FRACTION


def needs_double_review(critique_id: int, fraction: float | None = None) -> bool:
    """Deterministic by hash: the same critique is sampled on every machine and every run."""
    fraction = double_review_fraction() if fraction is None else fraction
    digest = hashlib.blake2b(f"rprm-double-review:{critique_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


def record(kind: str, actor: User | None, item: ReviewItem | None = None, **payload: Any) -> ReviewEvent:
    return ReviewEvent.objects.create(kind=kind, actor=actor, item=item, payload=payload)


# --- queue -----------------------------------------------------------------------


def role_kinds(role: str) -> tuple[str, ...]:
    """The generation run kinds of a queue role ("teacher" or "student")."""
    return GenerationRun.TEACHER_KINDS if role == "teacher" else (GenerationRun.Kind.STUDENT_SAMPLE,)


@dataclass(frozen=True)
class QueueFilter:
    """Which open items a reviewer works through; also what the URLs carry."""

    QUEUES = ("matched", "disagreed", "flagged")
    ROLES = ("teacher", "student", "all")

    queue: str = "matched"
    # Whose critiques: teacher runs (seed and imported) unless asked; a named run is shown whatever its role.
    role: str = "teacher"
    dataset_id: int | None = None
    run_id: int | None = None
    error_type_id: int | None = None
    search: str = ""
    model_text: str = ""  # "repaired" | "truncated": critiques whose model text was flagged
    # Whose error tags the error-type filter may match (never in the URL): only the viewer's
    # own, since another reviewer's tags on an open item belong to a blind review.
    viewer_id: int | None = None

    def apply(self, qs: QuerySet[ReviewItem]) -> QuerySet[ReviewItem]:
        if self.queue == "flagged":
            qs = qs.filter(flagged=True)
        else:
            qs = qs.filter(queue=self.queue)
        if self.dataset_id:
            qs = qs.filter(dataset_id=self.dataset_id)
        if self.run_id:
            qs = qs.filter(run_id=self.run_id)
        elif self.role != "all":
            kinds = role_kinds(self.role)
            qs = qs.filter(run_id__in=GenerationRun.objects.filter(kind__in=kinds).values("id"))
        if self.error_type_id:
            match = Q(error_type_id=self.error_type_id)
            if self.viewer_id:
                tagged = Review.error_types.through.objects.filter(
                    review__item=OuterRef("pk"),
                    review__undone_at__isnull=True,
                    review__reviewer_id=self.viewer_id,
                    errortype_id=self.error_type_id,
                )
                match |= Q(Exists(tagged))
            qs = qs.filter(match)
        if self.search:
            s = self.search
            qs = qs.filter(
                Q(step__text__icontains=s)
                | Q(step__solution__problem__question__icontains=s)
                | Q(critique__text__icontains=s)
                | Q(step__solution__source_id=s)
            )
        if self.model_text == "repaired":
            qs = qs.filter(critique__text_repaired=True)
        elif self.model_text == "truncated":
            qs = qs.filter(critique__truncated=True)
        return qs

    def as_query(self) -> dict[str, str]:
        q = {"queue": self.queue}
        if self.role != "teacher":
            q["role"] = self.role
        for key in ("dataset_id", "run_id", "error_type_id"):
            if getattr(self, key):
                q[key.removesuffix("_id")] = str(getattr(self, key))
        if self.search:
            q["q"] = self.search
        if self.model_text:
            q["text"] = self.model_text
        return q


def open_items(flt: QueueFilter) -> QuerySet[ReviewItem]:
    # A gold copy's item (review/gold.py) is only ever its one reviewer's.
    mine = (
        Q(gold_for__isnull=True) | Q(gold_for_id=flt.viewer_id) if flt.viewer_id else Q(gold_for__isnull=True)
    )
    return flt.apply(ReviewItem.objects.filter(mine, state=ReviewItem.State.OPEN)).order_by(
        "-suspicion", "id"
    )


def ensure_review_items(critique_ids: Sequence[int], suspicion: dict[int, float] | None = None) -> int:
    """Create the review items of these critiques (once). Returns how many were new."""
    have = set(ReviewItem.objects.filter(critique_id__in=critique_ids).values_list("critique_id", flat=True))
    new = build_review_items([c for c in critique_ids if c not in have], suspicion)
    ReviewItem.objects.bulk_create(new, ignore_conflicts=True, batch_size=1000)
    return len(new)


def build_review_items(
    critique_ids: Sequence[int], suspicion: dict[int, float] | None = None
) -> list[ReviewItem]:
    """Unsaved review items for these critiques, as `ensure_review_items` would store them.

    A GET of a critique not audited yet shows one of these and writes nothing.
    """
    suspicion = suspicion or {}
    rows = Critique.objects.filter(id__in=critique_ids).values_list(
        "id", "run_id", "step_id", "matches_label", "run__dataset_id", "step__solution__error_type_id"
    )
    new = []
    for cid, run_id, step_id, matches, dataset_id, error_type_id in rows:
        double = needs_double_review(cid)
        score = suspicion.get(cid, 0.0)
        queue = (
            ReviewItem.Queue.OTHER
            if matches is None
            else ReviewItem.Queue.MATCHED
            if matches
            else ReviewItem.Queue.DISAGREED
        )
        new.append(
            ReviewItem(
                critique_id=cid,
                run_id=run_id,
                dataset_id=dataset_id,
                step_id=step_id,
                error_type_id=error_type_id,
                queue=queue,
                suspicion=score,
                flagged=score >= FLAG_THRESHOLD,
                needs_double_review=double,
                reviews_needed=2 if double else 1,
            )
        )
    return new


def _live_lease(now: datetime) -> Q:
    return Q(lease_holder__isnull=False, lease_expires_at__gt=now)


def _reviewed_by(reviewer: User) -> Exists:
    return Exists(Review.objects.filter(item=OuterRef("pk"), reviewer=reviewer, undone_at__isnull=True))


def claim_next(
    reviewer: User, flt: QueueFilter | None = None, *, now: datetime | None = None
) -> ReviewItem | None:
    """Lease the most suspicious open item of the queue to `reviewer` (or renew theirs).

    A reviewer holds at most one lease: one that still fits the filter is renewed,
    any other is released first. Returns None when the queue has nothing for them.
    """
    flt = replace(flt or QueueFilter(), viewer_id=reviewer.id)
    for attempt in range(3):
        try:
            return _claim_next(reviewer, flt, now=now)
        except IntegrityError:  # the same reviewer claiming in two tabs at once
            if attempt == 2:
                raise
    return None  # pragma: no cover


def _claim_next(reviewer: User, flt: QueueFilter, *, now: datetime | None = None) -> ReviewItem | None:
    now = now or timezone.now()
    expires = now + timedelta(minutes=lease_minutes())
    with transaction.atomic():
        mine = ReviewItem.objects.select_for_update().filter(lease_holder=reviewer).first()
        if mine is not None:
            fits = (
                mine.state == ReviewItem.State.OPEN
                and mine.lease_expires_at is not None
                and mine.lease_expires_at > now
                and open_items(flt).filter(pk=mine.pk).exclude(_reviewed_by(reviewer)).exists()
            )
            if fits:
                mine.lease_expires_at = expires
                mine.save(update_fields=["lease_expires_at", "updated_at"])
                return mine
            release(mine, reviewer, reason="moved on")
        candidate = _first_free(reviewer, flt, now)
        if candidate is None:
            return None
        previous = candidate.lease_holder_id
        candidate.lease_holder = reviewer
        candidate.leased_at = now
        candidate.lease_expires_at = expires
        candidate.save(update_fields=["lease_holder", "leased_at", "lease_expires_at", "updated_at"])
        record(
            ReviewEvent.Kind.CLAIMED,
            reviewer,
            candidate,
            expires_at=expires.isoformat(),
            **({"expired_lease_of": previous} if previous else {}),
        )
        return candidate


def _first_free(reviewer: User, flt: QueueFilter, now: datetime) -> ReviewItem | None:
    """The most suspicious free item, locked: assigned work first (review/assignments.py)."""
    for tier in serving_tiers(reviewer):
        candidate = (
            open_items(flt)
            .filter(tier)
            .filter(~_live_lease(now))
            .exclude(_reviewed_by(reviewer))
            .select_for_update(skip_locked=True, of=("self",))
            .first()
        )
        if candidate is not None:
            return candidate
    return None


def release(item: ReviewItem, actor: User, *, reason: str) -> None:
    item.lease_holder = None
    item.lease_expires_at = None
    item.leased_at = None
    item.save(update_fields=["lease_holder", "lease_expires_at", "leased_at", "updated_at"])
    record(ReviewEvent.Kind.RELEASED, actor, item, reason=reason)


def release_lease(reviewer: User) -> bool:
    with transaction.atomic():
        mine = ReviewItem.objects.select_for_update().filter(lease_holder=reviewer).first()
        if mine is None:
            return False
        release(mine, reviewer, reason="released")
        return True


def take_item(critique_id: int, reviewer: User, *, now: datetime | None = None) -> ReviewItem:
    """Lease this one critique to `reviewer` (opened by link rather than from the queue).

    The POST behind the review screen's "Review this critique" button: the item is made
    here if the audit has not made it yet (a GET never writes), and any other lease of the
    reviewer is released. The refusals name no other review of the item.
    """
    now = now or timezone.now()
    ensure_review_items([critique_id])
    with transaction.atomic():
        item = ReviewItem.objects.select_for_update().get(critique_id=critique_id)
        if item.lease_holder_id == reviewer.id and item.state == ReviewItem.State.OPEN:
            item.lease_expires_at = now + timedelta(minutes=lease_minutes())
            item.save(update_fields=["lease_expires_at", "updated_at"])
            return item
        if Review.objects.filter(item=item, reviewer=reviewer, undone_at__isnull=True).exists():
            raise ReviewError("You have already reviewed this critique.")
        if item.state != ReviewItem.State.OPEN:
            raise ReviewError("This critique is not open for review.")
        if item.lease_is_live(now):
            raise ReviewError("Another reviewer holds this critique.")
        mine = ReviewItem.objects.select_for_update().filter(lease_holder=reviewer).first()
        if mine is not None:
            release(mine, reviewer, reason="moved on")
        previous = item.lease_holder_id
        item.lease_holder, item.leased_at = reviewer, now
        item.lease_expires_at = now + timedelta(minutes=lease_minutes())
        item.save(update_fields=["lease_holder", "leased_at", "lease_expires_at", "updated_at"])
        record(
            ReviewEvent.Kind.CLAIMED,
            reviewer,
            item,
            expires_at=item.lease_expires_at.isoformat(),
            by_link=True,
            **({"expired_lease_of": previous} if previous else {}),
        )
        return item
