"""The drill-down page's rows: one page of the critiques behind a number, newest first,
each with its review outcome and the error tags its reviewers gave.

No total count: the number on the dashboard is the count.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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


@dataclass(frozen=True)
class ListedCritique:
    """A drill-down row: the critique, its review outcome and the error tags of the final
    decision (reviewers' tags, the adjudicator's, never an overruled reviewer's)."""

    critique: Critique
    outcome: str
    tag_names: list[str]

    @property
    def outcome_name(self) -> str:
        return OUTCOME_NAMES[self.outcome]

    @property
    def outcome_short(self) -> str:
        return SHORT_OUTCOMES[self.outcome]


def page(d: Drill, number: int) -> tuple[list[ListedCritique], bool]:
    """Page `number` (from 1) of the drill-down's critiques, and whether another follows."""
    qs = _listed(d)
    start = (number - 1) * PAGE_SIZE
    rows = list(qs[start : start + PAGE_SIZE + 1])
    return _listed_rows(rows[:PAGE_SIZE]), len(rows) > PAGE_SIZE


def every(d: Drill, *, chunk: int = 2_000) -> Iterator[ListedCritique]:
    """Every critique the drill-down lists (up to CSV_LIMIT), newest first, as a page
    lists them: the CSV download."""
    qs = _listed(d)
    for start in range(0, CSV_LIMIT, chunk):
        rows = list(qs[start : start + chunk])
        yield from _listed_rows(rows)
        if len(rows) < chunk:
            return


def _outcome(c: Critique) -> str:
    item = getattr(c, "review_item", None)
    if item is None:
        return "unqueued"
    return item.final_decision or (
        "adjudication" if item.state == "adjudication" else "partial" if item.reviews_done else "open"
    )


def _listed_rows(rows: list[Critique]) -> list[ListedCritique]:
    tags = final_tags(c.id for c in rows)
    return [ListedCritique(c, _outcome(c), sorted(tags.get(c.id, ()))) for c in rows]
