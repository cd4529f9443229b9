"""Reviewers measured against known answers (issue 18, item 4).

Gold items (`GoldItem`) are adjudicated items, critiques an admin marked gold with
their answer, and seeded copies of sound, matched critiques with one planted flaw
(review/seeding.py). They are served blind at `REVIEW_GOLD_RATE` (default 5%) of the
claims to reviewers who have not seen them: each reviewer gets a fresh copy of the
critique (`Critique.gold_copy`) with its own review item, so it looks exactly like any
other item. Copies never enter training data, exports, agreement or the dashboards.
A reviewer's answer is their review of the copy; `accuracy` scores them (Wilson 95%
intervals), by the gold answer and by error type, and flags those below
`REVIEW_GOLD_MIN_ACCURACY` once they have `REVIEW_GOLD_MIN_N` answers.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from annotations.models import ErrorType
from inference.core.metrics import wilson_interval
from inference.core.verdict import missing_sections, parse_sections
from inference.models import Critique

from .audit import AUDIT_VERSION, CritiqueFacts, audit_facts, find_equations, suspicion
from .models import Adjudication, CritiqueAudit, GoldItem, GoldServing, Review, ReviewEvent, ReviewItem
from .queue import (
    DECIDING,
    FLAG_THRESHOLD,
    QueueFilter,
    ReviewError,
    _release,
    build_review_items,
    lease_minutes,
    record,
)
from .queue import claim_next as queue_claim_next
from .seeding import plant

# --- settings ---------------------------------------------------------------------


def gold_rate() -> float:
    return float(settings.REVIEW_GOLD_RATE)


def min_accuracy() -> float:
    return float(settings.REVIEW_GOLD_MIN_ACCURACY)


def min_answers() -> int:
    return int(settings.REVIEW_GOLD_MIN_N)


# --- making gold ------------------------------------------------------------------


def mark_gold(
    critique: Critique,
    admin: User | None,
    answer: str,
    *,
    error_type: ErrorType | None = None,
    source: str = GoldItem.Source.MARKED,
) -> GoldItem:
    """Make a critique gold with its answer (again: the answer is updated)."""
    if answer not in DECIDING:
        raise ReviewError("A gold answer is sound, flawed or label wrong.")
    if critique.gold_copy:
        raise ReviewError("A gold copy cannot itself be gold.")
    gold, _ = GoldItem.objects.update_or_create(
        critique=critique,
        flaw=GoldItem.Flaw.NONE,
        defaults={
            "source": source,
            "answer": answer,
            "error_type": error_type,
            "text": critique.text,
            "created_by": admin,
            "active": True,
        },
    )
    return gold


def gold_from_adjudication(adjudication: Adjudication) -> GoldItem:
    """An adjudicated item is gold: the adjudicator's decision and first tag are its answer."""
    item = adjudication.item
    tag = adjudication.error_types.order_by("order", "id").first()
    critique = Critique.objects.get(pk=item.critique_id)
    return mark_gold(
        critique,
        adjudication.decided_by,
        adjudication.decision,
        error_type=tag,
        source=GoldItem.Source.ADJUDICATED,
    )


def seed_flaw(critique: Critique, kind: str, admin: User | None = None) -> GoldItem | None:
    """From a sound, matched critique, a gold copy with one planted flaw of `kind`.
    None when this critique offers no place for that flaw."""
    item = ReviewItem.objects.filter(critique=critique).first()
    if not critique.matches_label or item is None or item.final_decision != Review.Decision.SOUND:
        raise ReviewError("Seed flaws from sound critiques whose verdict matches the label.")
    step = critique.step
    planted = plant(
        kind,
        critique.text,
        verdict=critique.verdict,
        now_step=step.text,
        question=step.solution.problem.question,
    )
    if planted is None:
        return None
    gold, _ = GoldItem.objects.update_or_create(
        critique=critique,
        flaw=planted.flaw,
        defaults={
            "source": GoldItem.Source.SEEDED,
            "answer": Review.Decision.FLAWED,
            "error_type": ErrorType.objects.filter(slug=planted.error_type).first(),
            "flaw_detail": planted.detail,
            "text": planted.text,
            "created_by": admin,
            "active": True,
        },
    )
    return gold


def seed_flaws(limit: int = 20, admin: User | None = None, *, seed: int = 0) -> list[GoldItem]:
    """Seed each kind of flaw in up to `limit` sound, matched critiques (picked at random)."""
    ids = list(
        ReviewItem.objects.filter(
            final_decision=Review.Decision.SOUND, critique__matches_label=True, critique__gold_copy=False
        ).values_list("critique_id", flat=True)
    )
    random.Random(seed).shuffle(ids)
    made = []
    for critique in Critique.objects.filter(id__in=ids[:limit]).select_related("step__solution__problem"):
        for kind in ("arithmetic", "premise", "contradiction"):
            gold = seed_flaw(critique, kind, admin)
            if gold is not None:
                made.append(gold)
    return made


# --- serving ----------------------------------------------------------------------

# Critique fields a copy does not take from its source.
_NOT_COPIED = {"id", "uuid", "created_at", "gold_copy", "text", "sections", "missing_sections"}


def unseen(reviewer: User, flt: QueueFilter | None = None):
    """Active gold items this reviewer has neither been served nor reviewed, within the
    queue filter (by their source critique's review item)."""
    reviewed = Review.objects.filter(reviewer=reviewer).values("critique_id")
    qs = GoldItem.objects.filter(active=True).exclude(servings__reviewer=reviewer)
    qs = qs.exclude(critique_id__in=reviewed)
    if flt is not None:
        qs = qs.filter(critique_id__in=flt.apply(ReviewItem.objects.all()).values("critique_id"))
    return qs


def _copy(gold: GoldItem) -> Critique:
    source = gold.critique
    values = {
        f.attname: getattr(source, f.attname)
        for f in Critique._meta.concrete_fields
        if f.attname not in _NOT_COPIED
    }
    sections = parse_sections(gold.text)
    return Critique.objects.create(
        **values,
        text=gold.text,
        sections=sections,
        missing_sections=missing_sections(sections),
        gold_copy=True,
    )


def _audit_copy(copy: Critique, source: Critique) -> CritiqueAudit | None:
    """The copy audited as the run's own critiques are (a planted false equation shows up
    as it would on any critique), when the source was; None when the run is not audited."""
    if not CritiqueAudit.objects.filter(critique=source).exists():
        return None
    siblings = Critique.objects.filter(run_id=copy.run_id, step_id=copy.step_id, gold_copy=False).exclude(
        pk=source.pk
    )
    facts = CritiqueFacts(
        verdict=copy.verdict,
        text=copy.text,
        sections=copy.sections or {},
        missing_sections=copy.missing_sections or [],
        p_yes=copy.p_yes,
        now_step_text=copy.step.text,
        now_step_number=copy.step.index + 1,
        sibling_verdicts=list(siblings.values_list("verdict", flat=True)),
        format_problem=copy.format_problem,
    )
    signals = audit_facts(facts, find_equations(copy.step.text))
    return CritiqueAudit.objects.create(
        critique=copy,
        signals=[s.as_json() for s in signals],
        suspicion=suspicion(signals),
        version=AUDIT_VERSION,
        computed_at=timezone.now(),
    )


def serve(reviewer: User, flt: QueueFilter | None = None, *, now=None) -> ReviewItem | None:
    """Lease a fresh copy of an unseen gold item to `reviewer` (None when there is none).
    The copy's item is theirs alone (`gold_for`), one review, never double."""
    now = now or timezone.now()
    with transaction.atomic():
        gold = unseen(reviewer, flt).select_related("critique").order_by("?").first()
        if gold is None:
            return None
        mine = ReviewItem.objects.select_for_update().filter(lease_holder=reviewer).first()
        if mine is not None:
            _release(mine, reviewer, reason="moved on")
        copy = _copy(gold)
        item = build_review_items([copy.id])[0]
        item.needs_double_review, item.reviews_needed, item.gold_for = False, 1, reviewer
        audit = _audit_copy(copy, gold.critique)
        if audit is not None:
            item.suspicion, item.flagged = audit.suspicion, audit.suspicion >= FLAG_THRESHOLD
        item.lease_holder, item.leased_at = reviewer, now
        item.lease_expires_at = now + timedelta(minutes=lease_minutes())
        item.save()
        GoldServing.objects.create(gold=gold, reviewer=reviewer, copy=copy)
        record(ReviewEvent.Kind.CLAIMED, reviewer, item, expires_at=item.lease_expires_at.isoformat())
        return item


def claim_next(reviewer: User, flt: QueueFilter | None = None, *, now=None, rng=random) -> ReviewItem | None:
    """The next item for `reviewer`: at `gold_rate()` of the claims an unseen gold item,
    else (or when none is left) the queue's next item (review.queue.claim_next)."""
    rate = gold_rate()
    if rate > 0 and rng.random() < rate:
        mine = ReviewItem.objects.filter(lease_holder=reviewer, state=ReviewItem.State.OPEN).first()
        if mine is None or mine.lease_expires_at is None or mine.lease_expires_at <= (now or timezone.now()):
            served = serve(reviewer, flt, now=now)
            if served is not None:
                return served
    return queue_claim_next(reviewer, flt, now=now)


# --- accuracy ---------------------------------------------------------------------


def _rate(k: int, n: int) -> dict[str, Any]:
    lo, hi = wilson_interval(k, n) if n else (None, None)
    return {"k": k, "n": n, "rate": k / n if n else None, "lo": lo, "hi": hi}


@dataclass
class Calibration:
    """One reviewer's answers on gold: overall, per gold answer, per planted-flaw error type."""

    reviewer: str
    right: int = 0
    answered: int = 0
    by_answer: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    by_type: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    served: int = 0

    @property
    def accuracy(self) -> dict[str, Any]:
        return _rate(self.right, self.answered)

    @property
    def flagged(self) -> bool:
        return self.answered >= min_answers() and self.right / self.answered < min_accuracy()

    def rows(self, table: dict[str, list[int]]) -> list[dict[str, Any]]:
        return [{"key": key, **_rate(k, n)} for key, (k, n) in sorted(table.items())]

    @property
    def answers(self) -> list[dict[str, Any]]:
        return self.rows(self.by_answer)

    @property
    def types(self) -> list[dict[str, Any]]:
        return self.rows(self.by_type)


def calibration() -> list[Calibration]:
    """Per reviewer: accuracy on gold (their active, non-skip review of the copy equals
    the gold answer), by answer (sound / flawed / label wrong), and the recall of planted
    flaws per error type (decided flawed). Served but not yet answered counts as served."""
    people: dict[str, Calibration] = {}
    servings = GoldServing.objects.values_list(
        "reviewer__username", "gold__answer", "gold__flaw", "gold__error_type__slug", "copy_id"
    )
    decided = dict(
        Review.objects.filter(
            critique__gold_copy=True, undone_at__isnull=True, decision__in=DECIDING
        ).values_list("critique_id", "decision")
    )
    for username, answer, flaw, type_slug, copy_id in servings:
        c = people.setdefault(username, Calibration(username))
        c.served += 1
        decision = decided.get(copy_id)
        if decision is None:
            continue
        right = int(decision == answer)
        c.right, c.answered = c.right + right, c.answered + 1
        c.by_answer[answer][0] += right
        c.by_answer[answer][1] += 1
        if flaw or answer == Review.Decision.FLAWED:
            key = type_slug or "untyped"
            c.by_type[key][0] += int(decision == Review.Decision.FLAWED)
            c.by_type[key][1] += 1
    return sorted(people.values(), key=lambda c: c.reviewer)
