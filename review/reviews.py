"""Review workflow actions: claim, decide, undo, correct labels, adjudicate.

Views, commands and tasks call these; nothing else writes review rows. Every state
change writes a ReviewEvent (insert-only). Source data is never overwritten: a
step's label stays as imported and a correction is a LabelCorrection row; an undo
stamps the review's `undone_at` (the row stays) and records an event.

Claiming uses `SELECT ... FOR UPDATE SKIP LOCKED` (Postgres), so concurrent
reviewers each get a different item without waiting on each other; a lease
expires after `REVIEW_LEASE_MINUTES`. A deterministic, hash-chosen fraction
(`REVIEW_DOUBLE_FRACTION`) of items needs two independent reviews; only those are
ever decided by two people.

Blind double review (docs/blind-review.md): deciding needs the lease; until a double-review
item settles by agreement or adjudication (`sealed`), reviewers see nothing of the other
review; an undo after both decisions were in sends the item to adjudication; kappa counts
the first independent decisions.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from itertools import combinations

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from annotations.models import ErrorType, Step
from inference.core.metrics import cohen_kappa
from inference.models import Critique

from .models import Adjudication, LabelCorrection, Review, ReviewEvent, ReviewItem

Decision = Review.Decision
DECIDING = (Decision.SOUND, Decision.FLAWED, Decision.LABEL_WRONG)
# Longest time on task we believe from the browser; beyond it the tab was left open.
# Items at or above this audit suspicion go to the "flagged by signals" queue.
FLAG_THRESHOLD = 0.5
MAX_CLIENT_MS = 6 * 3600 * 1000


class ReviewError(Exception):
    """A review action that cannot happen in the item's current state (shown to the user)."""


def lease_minutes() -> int:
    return int(getattr(settings, "REVIEW_LEASE_MINUTES", 20))


def double_review_fraction() -> float:
    return float(getattr(settings, "REVIEW_DOUBLE_FRACTION", 0.1))


def needs_double_review(critique_id: int, fraction: float | None = None) -> bool:
    """Deterministic by hash: the same critique is sampled on every machine and every run."""
    fraction = double_review_fraction() if fraction is None else fraction
    digest = hashlib.blake2b(f"rprm-double-review:{critique_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


def record(kind: str, actor: User | None, item: ReviewItem | None = None, **payload) -> ReviewEvent:
    return ReviewEvent.objects.create(kind=kind, actor=actor, item=item, payload=payload)


# --- queue -----------------------------------------------------------------------


@dataclass(frozen=True)
class QueueFilter:
    """Which open items a reviewer works through; also what the URLs carry."""

    QUEUES = ("matched", "disagreed", "flagged")

    queue: str = "matched"
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
        for key in ("dataset_id", "run_id", "error_type_id"):
            if getattr(self, key):
                q[key.removesuffix("_id")] = str(getattr(self, key))
        if self.search:
            q["q"] = self.search
        if self.model_text:
            q["text"] = self.model_text
        return q


def open_items(flt: QueueFilter) -> QuerySet[ReviewItem]:
    return flt.apply(ReviewItem.objects.filter(state=ReviewItem.State.OPEN)).order_by("-suspicion", "id")


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


def _live_lease(now) -> Q:
    return Q(lease_holder__isnull=False, lease_expires_at__gt=now)


def _reviewed_by(reviewer: User) -> Exists:
    return Exists(Review.objects.filter(item=OuterRef("pk"), reviewer=reviewer, undone_at__isnull=True))


def claim_next(reviewer: User, flt: QueueFilter | None = None, *, now=None) -> ReviewItem | None:
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


def _claim_next(reviewer: User, flt: QueueFilter, *, now=None) -> ReviewItem | None:
    now = now or timezone.now()
    expires = now + timedelta(minutes=lease_minutes())
    with transaction.atomic():
        mine = ReviewItem.objects.select_for_update().filter(lease_holder=reviewer).first()
        if mine is not None:
            fits = (
                mine.state == ReviewItem.State.OPEN
                and mine.lease_expires_at > now
                and open_items(flt).filter(pk=mine.pk).exclude(_reviewed_by(reviewer)).exists()
            )
            if fits:
                mine.lease_expires_at = expires
                mine.save(update_fields=["lease_expires_at", "updated_at"])
                return mine
            _release(mine, reviewer, reason="moved on")
        candidate = (
            open_items(flt)
            .filter(~_live_lease(now))
            .exclude(_reviewed_by(reviewer))
            .select_for_update(skip_locked=True, of=("self",))
            .first()
        )
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


def _release(item: ReviewItem, actor: User, *, reason: str) -> None:
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
        _release(mine, reviewer, reason="released")
        return True


def take_item(critique_id: int, reviewer: User, *, now=None) -> ReviewItem:
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
            _release(mine, reviewer, reason="moved on")
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


# --- decisions -------------------------------------------------------------------


def _settle(item: ReviewItem) -> None:
    """Recompute state / final decision from the active reviews (not after adjudication).

    A double-review item waits for both independent decisions, even when the first says
    the label is wrong (the second reviewer must not find it gone from the queue). It goes
    to adjudication on a label dispute, a disagreement, or when a reviewer undid a decision
    after both were in: a re-decision made then may follow the other one, so it never
    settles the item by agreement.
    """
    if item.state == ReviewItem.State.ADJUDICATED:
        return
    decisions = list(
        Review.objects.filter(item=item, undone_at__isnull=True, decision__in=DECIDING).values_list(
            "decision", flat=True
        )
    )
    item.reviews_done = len(decisions)
    item.final_decision = ""
    if len(decisions) < item.reviews_needed:
        item.state = ReviewItem.State.OPEN
    elif Decision.LABEL_WRONG in decisions:
        item.state = ReviewItem.State.ADJUDICATION  # held out until an admin decides on the label
    elif len(set(decisions)) == 1 and not reopened_after_both(item):
        item.state, item.final_decision = ReviewItem.State.DONE, decisions[0]
    else:
        item.state = ReviewItem.State.ADJUDICATION


def _live_at(when, created, undone) -> bool:
    return created <= when and (undone is None or undone > when)


def reopened_after_both(item: ReviewItem) -> bool:
    """Whether a decision on this double-review item was undone while the other was in."""
    if item.reviews_needed < 2:
        return False
    rows = list(
        Review.objects.filter(item=item, decision__in=DECIDING).values_list(
            "reviewer_id", "created_at", "undone_at"
        )
    )
    return any(
        undone is not None and any(o != who and _live_at(undone, c, u) for o, c, u in rows)
        for who, _created, undone in rows
    )


def sealed(item: ReviewItem) -> bool:
    """Blind double review: until both decisions agree or an admin adjudicates, nobody who
    may still decide it sees anything of the other review (see `others_hidden`)."""
    return item.needs_double_review and item.state in (ReviewItem.State.OPEN, ReviewItem.State.ADJUDICATION)


def sealed_q(prefix: str = "") -> Q:
    """`sealed` as a filter (prefix "review_item__" from a critique)."""
    return Q(
        **{
            f"{prefix}needs_double_review": True,
            f"{prefix}state__in": [ReviewItem.State.OPEN, ReviewItem.State.ADJUDICATION],
        }
    )


def others_hidden(item: ReviewItem, user: User, *, deciding: bool = False) -> bool:
    """Whether `user` must not see other people's reviews of `item`: its state, review
    count, decisions, tags, notes and label corrections.

    Reviewers are blind to a sealed item. Admins adjudicate and audit, so they see
    everything, except on the screen where they decide the item themselves.
    """
    return sealed(item) and (deciding or not user.is_staff)


def default_correction(label: str) -> str | None:
    return {Step.Label.CORRECT: Step.Label.INCORRECT, Step.Label.INCORRECT: Step.Label.CORRECT}.get(label)


def submit_review(
    item: ReviewItem,
    reviewer: User,
    decision: str,
    *,
    error_types: Iterable[ErrorType] = (),
    note: str = "",
    time_on_task_ms: int | None = None,
    proposed_label: str | None = None,
    reason: str = "",
    now=None,
) -> Review:
    """Record one decision. `label_wrong` also files a LabelCorrection (default: the flip)."""
    if decision not in Decision.values:
        raise ReviewError(f"Unknown decision {decision!r}.")
    now = now or timezone.now()
    with transaction.atomic():
        item = ReviewItem.objects.select_for_update().select_related("step").get(pk=item.pk)
        if item.state != ReviewItem.State.OPEN:
            raise ReviewError("This critique is no longer open for review.")
        if item.lease_is_live(now) and item.lease_holder_id != reviewer.id:
            raise ReviewError("Another reviewer holds this critique.")
        # Deciding needs the lease (a lapsed one counts while nobody else took the item):
        # nobody decides an item by its UUID alone.
        if item.lease_holder_id != reviewer.id:
            raise ReviewError("Take this critique first: you do not hold it.")
        if Review.objects.filter(item=item, reviewer=reviewer, undone_at__isnull=True).exists():
            raise ReviewError("You have already reviewed this critique.")
        if decision == Decision.LABEL_WRONG:
            proposed_label = proposed_label or default_correction(item.step.label)
            if not proposed_label or proposed_label == item.step.label:
                raise ReviewError("Say which label the step should have.")
        if time_on_task_ms is not None and 0 < time_on_task_ms <= MAX_CLIENT_MS:
            ms, source = int(time_on_task_ms), Review.TimeSource.CLIENT
        else:
            held = item.leased_at if item.lease_holder_id == reviewer.id and item.leased_at else None
            ms = int((now - held).total_seconds() * 1000) if held else 0
            ms, source = min(max(ms, 0), MAX_CLIENT_MS), Review.TimeSource.LEASE
        review = Review.objects.create(
            item=item,
            critique_id=item.critique_id,
            reviewer=reviewer,
            decision=decision,
            note=note.strip(),
            time_on_task_ms=ms,
            time_source=source,
        )
        tags = list(error_types)
        if tags:
            review.error_types.set(tags)
        if decision == Decision.LABEL_WRONG:
            _propose(item.step, reviewer, proposed_label, reason or note, review=review, item=item)
        if item.lease_holder_id == reviewer.id:
            item.lease_holder, item.lease_expires_at, item.leased_at = None, None, None
        _settle(item)
        item.save(
            update_fields=[
                "lease_holder",
                "lease_expires_at",
                "leased_at",
                "reviews_done",
                "state",
                "final_decision",
                "updated_at",
            ]
        )
        record(
            ReviewEvent.Kind.REVIEWED,
            reviewer,
            item,
            review=review.id,
            decision=decision,
            error_types=[t.slug for t in tags],
            time_on_task_ms=ms,
            state=item.state,
        )
        return review


def undo_last(reviewer: User, *, now=None) -> Review | None:
    """Undo the reviewer's latest active decision and lease the item back to them."""
    now = now or timezone.now()
    with transaction.atomic():
        review = (
            Review.objects.select_for_update()
            .filter(reviewer=reviewer, undone_at__isnull=True)
            .order_by("-created_at", "-id")
            .first()
        )
        if review is None:
            return None
        item = ReviewItem.objects.select_for_update().get(pk=review.item_id)
        if item.state == ReviewItem.State.ADJUDICATED:
            raise ReviewError("An admin has adjudicated this critique; it can no longer be undone.")
        review.undone_at = now
        review.save(update_fields=["undone_at"])
        for correction in LabelCorrection.objects.filter(
            review=review, status=LabelCorrection.Status.PENDING
        ):
            correction.status = LabelCorrection.Status.WITHDRAWN
            correction.save(update_fields=["status"])
        _settle(item)
        fields = ["reviews_done", "state", "final_decision", "updated_at"]
        if not item.lease_is_live(now) or item.lease_holder_id == reviewer.id:
            mine = (
                ReviewItem.objects.select_for_update()
                .filter(lease_holder=reviewer)
                .exclude(pk=item.pk)
                .first()
            )
            if mine is not None:
                _release(mine, reviewer, reason="undo")
            item.lease_holder, item.leased_at = reviewer, now
            item.lease_expires_at = now + timedelta(minutes=lease_minutes())
            fields += ["lease_holder", "leased_at", "lease_expires_at"]
        item.save(update_fields=fields)
        record(
            ReviewEvent.Kind.UNDONE,
            reviewer,
            item,
            review=review.id,
            decision=review.decision,
            state=item.state,
            **({"reopened_after_both": True} if reopened_after_both(item) else {}),
        )
        return review


def _propose(
    step: Step,
    author: User,
    proposed_label: str,
    reason: str,
    *,
    review: Review | None,
    item: ReviewItem | None,
) -> LabelCorrection:
    if proposed_label not in Step.Label.values or proposed_label == step.label:
        raise ReviewError("A correction must propose a different, valid label.")
    # A second proposal by the same author replaces their first (which stays, withdrawn).
    LabelCorrection.objects.filter(step=step, author=author, status=LabelCorrection.Status.PENDING).update(
        status=LabelCorrection.Status.WITHDRAWN
    )
    correction = LabelCorrection.objects.create(
        step=step,
        review=review,
        original_label=step.label,
        proposed_label=proposed_label,
        reason=reason.strip(),
        author=author,
    )
    record(
        ReviewEvent.Kind.LABEL_PROPOSED,
        author,
        item,
        correction=correction.id,
        step=step.id,
        original=step.label,
        proposed=proposed_label,
    )
    return correction


def correct_label(step: Step, author: User, proposed_label: str, reason: str = "") -> LabelCorrection:
    """Propose a label correction outside a review (the step keeps its label)."""
    with transaction.atomic():
        return _propose(step, author, proposed_label, reason, review=None, item=None)


def decide_label_correction(
    correction: LabelCorrection, admin: User, *, accept: bool, now=None
) -> LabelCorrection:
    now = now or timezone.now()
    with transaction.atomic():
        correction = LabelCorrection.objects.select_for_update().get(pk=correction.pk)
        if correction.status != LabelCorrection.Status.PENDING:
            raise ReviewError("This correction has already been decided.")
        correction.status = LabelCorrection.Status.ACCEPTED if accept else LabelCorrection.Status.REJECTED
        correction.decided_by, correction.decided_at = admin, now
        correction.save(update_fields=["status", "decided_by", "decided_at"])
        item = correction.review.item if correction.review_id else None
        record(
            ReviewEvent.Kind.LABEL_DECIDED, admin, item, correction=correction.id, status=correction.status
        )
        return correction


def adjudicate(
    item: ReviewItem,
    admin: User,
    decision: str,
    *,
    error_types: Iterable[ErrorType] = (),
    note: str = "",
    now=None,
) -> Adjudication:
    """An admin's final word on a disputed item. `label_wrong` accepts the pending label
    corrections of the step; any other decision rejects them (the label stands)."""
    if decision not in DECIDING:
        raise ReviewError("Adjudicate as sound, flawed or label wrong.")
    now = now or timezone.now()
    with transaction.atomic():
        item = ReviewItem.objects.select_for_update().get(pk=item.pk)
        if item.state != ReviewItem.State.ADJUDICATION:
            raise ReviewError("This critique is not awaiting adjudication.")
        pending = list(
            LabelCorrection.objects.filter(step_id=item.step_id, status=LabelCorrection.Status.PENDING)
        )
        if decision == Decision.LABEL_WRONG and not pending:
            raise ReviewError("No pending label correction to accept for this step.")
        adjudication = Adjudication.objects.create(
            item=item, decision=decision, note=note.strip(), decided_by=admin
        )
        tags = list(error_types)
        if tags:
            adjudication.error_types.set(tags)
        for correction in pending:
            decide_label_correction(correction, admin, accept=decision == Decision.LABEL_WRONG, now=now)
        item.state, item.final_decision = ReviewItem.State.ADJUDICATED, decision
        item.lease_holder, item.lease_expires_at, item.leased_at = None, None, None
        item.save(
            update_fields=[
                "state",
                "final_decision",
                "lease_holder",
                "lease_expires_at",
                "leased_at",
                "updated_at",
            ]
        )
        record(
            ReviewEvent.Kind.ADJUDICATED,
            admin,
            item,
            adjudication=adjudication.id,
            decision=decision,
            error_types=[t.slug for t in tags],
        )
        return adjudication


# --- training data ---------------------------------------------------------------


def label_dispute_q(step_field: str = "step_id") -> Q:
    """Critiques of steps whose label is disputed (pending) or was corrected (accepted)."""
    return Q(
        Exists(
            LabelCorrection.objects.filter(
                step_id=OuterRef(step_field),
                status__in=[LabelCorrection.Status.PENDING, LabelCorrection.Status.ACCEPTED],
            )
        )
    )


def training_exclusion_q() -> Q:
    """Critiques that must not become training data (use with `Critique.objects.exclude`).

    Flawed critiques are out; so are label-wrong ones and everything still in dispute
    (awaiting a second review, adjudication, or a decision on a label correction).
    """
    settled_out = ReviewItem.objects.filter(critique_id=OuterRef("pk")).filter(
        Q(final_decision__in=[Decision.FLAWED, Decision.LABEL_WRONG]) | Q(state=ReviewItem.State.ADJUDICATION)
    )
    open_doubt = Review.objects.filter(
        critique_id=OuterRef("pk"),
        undone_at__isnull=True,
        decision__in=[Decision.FLAWED, Decision.LABEL_WRONG],
        item__state=ReviewItem.State.OPEN,
    )
    return Q(Exists(settled_out)) | Q(Exists(open_doubt)) | label_dispute_q("step_id")


# --- history navigation ----------------------------------------------------------


_UNKNOWN = object()


def neighbours(
    reviewer: User, item: ReviewItem, *, here=_UNKNOWN, last: Review | None = None
) -> tuple[ReviewItem | None, ReviewItem | None]:
    """(previous, next) item in the reviewer's own decision history around `item`.

    `here` (their active review of `item`) and `last` (their latest active review)
    save queries when the caller already has them.
    """
    mine = Review.objects.filter(reviewer=reviewer, undone_at__isnull=True).select_related("item__critique")
    if here is _UNKNOWN:
        here = mine.filter(item=item).first()
    if here is None:  # the item being worked on comes after all past decisions
        prev = last if last is not None else mine.order_by("-created_at", "-id").first()
        return (prev.item if prev else None), None
    before = mine.filter(Q(created_at__lt=here.created_at) | Q(created_at=here.created_at, id__lt=here.id))
    prev = before.order_by("-created_at", "-id").first()
    if last is not None and last.pk == here.pk:
        return (prev.item if prev else None), None
    after = mine.filter(Q(created_at__gt=here.created_at) | Q(created_at=here.created_at, id__gt=here.id))
    nxt = after.order_by("created_at", "id").first()
    return (prev.item if prev else None), (nxt.item if nxt else None)


# --- agreement -------------------------------------------------------------------


@dataclass
class PairAgreement:
    reviewer_a: str
    reviewer_b: str
    items: int = 0
    decision_pairs: list[tuple[str, str]] = field(default_factory=list)
    tag_pairs: list[tuple[bool, bool]] = field(default_factory=list)

    @property
    def percent_agree(self) -> float | None:
        if not self.decision_pairs:
            return None
        return 100 * sum(a == b for a, b in self.decision_pairs) / len(self.decision_pairs)

    @property
    def kappa_decisions(self) -> float | None:
        return cohen_kappa(self.decision_pairs)

    @property
    def kappa_tags(self) -> float | None:
        return cohen_kappa(self.tag_pairs)


def independent_reviews(items: QuerySet[ReviewItem] | None = None) -> list[tuple[int, int, str, str]]:
    """(review id, item id, reviewer, decision) of the first independent decisions.

    Per item: the decisions (not skips) each reviewer held at the first moment two
    reviewers' decisions were in at once. A decision undone before that moment was the
    reviewer's own second thought; one changed after it may follow the other reviewer,
    so the one held at that moment counts (undone or not).
    """
    reviews = Review.objects.filter(decision__in=DECIDING)
    if items is not None:
        reviews = reviews.filter(item__in=items)
    multi = (
        reviews.values("item_id")
        .annotate(n=Count("reviewer_id", distinct=True))
        .filter(n__gte=2)
        .values("item_id")
    )
    by_item: dict[int, list] = defaultdict(list)
    for row in reviews.filter(item_id__in=multi).values_list(
        "id", "item_id", "reviewer__username", "decision", "created_at", "undone_at"
    ):
        by_item[row[1]].append(row)
    out = []
    for rows in by_item.values():
        for when in sorted(r[4] for r in rows):
            live = [r for r in rows if _live_at(when, r[4], r[5])]
            if len({r[2] for r in live}) >= 2:
                out.extend(r[:4] for r in live)
                break
    return out


def agreement(items: QuerySet[ReviewItem] | None = None) -> list[PairAgreement]:
    """Cohen's kappa per reviewer pair, on decisions and on error tags.

    Items decided (not skipped) by both reviewers count, with the first independent
    decisions (`independent_reviews`): an undo and a re-decision after both were in
    changes nothing here. Tags are scored per (item, error type) as tagged / not tagged
    by each reviewer, pooled over the whole taxonomy.
    """
    rows = independent_reviews(items)
    tags: dict[int, set[str]] = defaultdict(set)
    for review_id, slug in Review.error_types.through.objects.filter(
        review_id__in=[r[0] for r in rows]
    ).values_list("review_id", "errortype__slug"):
        tags[review_id].add(slug)
    taxonomy = list(ErrorType.objects.values_list("slug", flat=True))
    by_item: dict[int, dict[str, tuple[str, set[str]]]] = defaultdict(dict)
    for review_id, item_id, username, decision in rows:
        by_item[item_id][username] = (decision, tags[review_id])
    pairs: dict[tuple[str, str], PairAgreement] = {}
    for reviewers in by_item.values():
        for a, b in combinations(sorted(reviewers), 2):
            pair = pairs.setdefault((a, b), PairAgreement(a, b))
            (da, ta), (db, tb) = reviewers[a], reviewers[b]
            pair.items += 1
            pair.decision_pairs.append((da, db))
            pair.tag_pairs.extend((slug in ta, slug in tb) for slug in taxonomy)
    return sorted(pairs.values(), key=lambda p: (p.reviewer_a, p.reviewer_b))
