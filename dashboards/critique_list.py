"""The drill-down page's rows: one page of the critiques behind a number, newest first,
each with its review outcome and the error tags its reviewers gave.

No total count: the number on the dashboard is the count.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import QuerySet

from inference.models import Critique
from review.reviews import final_tags

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


CSV_LIMIT = 100_000


def _listed(d: Drill) -> QuerySet[Critique]:
    """The drill-down's critiques, newest first (a blind slice lists no sealed critique:
    `drill_queryset`)."""
    return (
        drill.drill_queryset(d)
        .select_related(
            "run__endpoint",
            "run__template",
            "step__solution__dataset",
            "step__solution__error_type",
            "review_item",
        )
        .order_by("-id")
    )


def page(d: Drill, number: int) -> tuple[list[Critique], bool]:
    """Page `number` (from 1) of the drill-down's critiques, and whether another follows."""
    qs = _listed(d)
    start = (number - 1) * PAGE_SIZE
    rows = list(qs[start : start + PAGE_SIZE + 1])
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    _annotate(rows)
    return rows, has_next


def every(d: Drill, *, chunk: int = 2_000) -> Iterator[Critique]:
    """Every critique the drill-down lists (up to CSV_LIMIT), newest first, annotated like
    a page: the CSV download."""
    qs = _listed(d)
    for start in range(0, CSV_LIMIT, chunk):
        rows = list(qs[start : start + chunk])
        _annotate(rows)
        yield from rows
        if len(rows) < chunk:
            return


def _annotate(rows: list[Critique]) -> None:
    """`outcome`, its names, and `tag_names` on each row: the error tags of the final
    decision (reviewers' tags, the adjudicator's, never an overruled reviewer's)."""
    tags = final_tags(c.id for c in rows)
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
