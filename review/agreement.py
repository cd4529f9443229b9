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
from inference.core.metrics import cohen_kappa

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
