"""Agreement between reviewers: Cohen's kappa per reviewer pair over double-reviewed
items, on decisions and on error-type tags. Each reviewer's first independent decision
counts (docs/blind-review.md): an undo and re-decision cannot inflate agreement.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations

from django.db.models import Count, QuerySet

from annotations.models import ErrorType
from inference.core.stats import KappaEstimate, cohen_kappa, kappa_estimate

from .models import Review, ReviewItem
from .queue import DECIDING
from .reviews import _live_at

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

    @property
    def decisions(self) -> KappaEstimate:
        """Kappa on decisions with its bootstrap interval, over `items`."""
        return kappa_estimate(self.decision_pairs)

    @property
    def tags(self) -> KappaEstimate:
        """Kappa on tags (pooled over error types): its n is the items, not the pairs.
        The interval resamples (item, type) pairs, so it is somewhat too narrow."""
        e = kappa_estimate(self.tag_pairs)
        return KappaEstimate(e.kappa, e.lo, e.hi, self.items)


@dataclass
class TypeAgreement:
    """Whether two reviewers of an item both tag one error type, over every pair."""

    slug: str
    name: str
    pairs: list[tuple[bool, bool]] = field(default_factory=list)

    @property
    def estimate(self) -> KappaEstimate:
        return kappa_estimate(self.pairs)

    @property
    def tagged(self) -> int:
        return sum(a or b for a, b in self.pairs)


def independent_reviews(items: QuerySet[ReviewItem] | None = None) -> list[tuple[int, int, str, str]]:
    """(review id, item id, reviewer, decision) of the first independent decisions.

    Per item: the decisions (not skips) each reviewer held at the first moment two
    reviewers' decisions were in at once. A decision undone before that moment was the
    reviewer's own second thought; one changed after it may follow the other reviewer,
    so the one held at that moment counts (undone or not).
    """
    reviews = Review.objects.filter(decision__in=DECIDING, critique__gold_copy=False)
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
    return agreement_tables(items)[0]


def agreement_tables(
    items: QuerySet[ReviewItem] | None = None,
) -> tuple[list[PairAgreement], list[TypeAgreement]]:
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
    taxonomy = dict(ErrorType.objects.values_list("slug", "name"))
    by_type = {slug: TypeAgreement(slug, name) for slug, name in taxonomy.items()}
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
            for slug in taxonomy:
                pair.tag_pairs.append((slug in ta, slug in tb))
                by_type[slug].pairs.append((slug in ta, slug in tb))
    return sorted(pairs.values(), key=lambda p: (p.reviewer_a, p.reviewer_b)), list(by_type.values())
