"""The drill-down page's rows: one page of the critiques behind a number, newest first,
each with its review outcome and the error tags its reviewers gave.

No total count: the number on the dashboard is the count.
"""

from __future__ import annotations

from inference.models import Critique
from review.models import Review
from review.reviews import sealed_q

from . import drill
from .drill import Drill
from .slices import OUTCOME_NAMES

PAGE_SIZE = 50
SHORT_OUTCOMES = {
    "sound": "sound",
    "flawed": "flawed",
    "label_wrong": "label wrong",
    "partial": "2nd review due",
    "adjudication": "in adjudication",
    "open": "open",
    "unqueued": "not audited",
}


def page(d: Drill, number: int, *, hide_sealed: bool) -> tuple[list[Critique], bool]:
    """Page `number` (from 1) of the drill-down's critiques, and whether another follows."""
    qs = drill.drill_queryset(d)
    if hide_sealed:
        # Blind double review: a reviewer may be the second one on any item still waiting for
        # its second review or adjudication, so those are not listed (nor their tags) to them.
        qs = qs.exclude(sealed_q("review_item__"))
    qs = qs.select_related(
        "run__endpoint",
        "run__template",
        "step__solution__dataset",
        "step__solution__error_type",
        "review_item",
    ).order_by("-id")
    start = (number - 1) * PAGE_SIZE
    rows = list(qs[start : start + PAGE_SIZE + 1])
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    _annotate(rows)
    return rows, has_next


def _annotate(rows: list[Critique]) -> None:
    """`outcome`, its names, and `tag_names` (active reviews' error tags) on each row."""
    tags: dict[int, set[str]] = {}
    for critique_id, name in Review.error_types.through.objects.filter(
        review__critique_id__in=[c.id for c in rows], review__undone_at__isnull=True
    ).values_list("review__critique_id", "errortype__name"):
        tags.setdefault(critique_id, set()).add(name)
    for c in rows:
        item = getattr(c, "review_item", None)
        c.outcome = (
            "unqueued"
            if item is None
            else item.final_decision
            or (
                "adjudication" if item.state == "adjudication" else "partial" if item.reviews_done else "open"
            )
        )
        c.outcome_name = OUTCOME_NAMES[c.outcome]
        c.outcome_short = SHORT_OUTCOMES[c.outcome]
        c.tag_names = sorted(tags.get(c.id, ()))
