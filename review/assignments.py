"""Who is served what: assigned work first, unassigned work to anyone.

An assignment (review.models.Assignment) gives a dataset or a run to a reviewer. Claiming
(review/queue.py) tries the tiers in order: the reviewer's own assigned scopes, then every
item nobody else is assigned to. Work assigned to others is theirs, with one exception
so that no double review waits for ever: in a scope with a single assignee, an item whose
first review is in may be taken by anyone for its second (independent) review.
Deactivated reviewers' assignments reserve nothing.

Assignments are a handful of rows: they are read whole and turned into plain
`dataset_id IN (...)` / `run_id IN (...)` filters, which the open-queue indexes serve.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import reduce
from operator import or_

from django.contrib.auth.models import User
from django.db.models import Q

from .models import Assignment


@dataclass(frozen=True)
class Scopes:
    datasets: frozenset[int] = field(default_factory=frozenset)
    runs: frozenset[int] = field(default_factory=frozenset)

    def __bool__(self) -> bool:
        return bool(self.datasets or self.runs)

    def q(self) -> Q:
        """Items inside these scopes (only for a non-empty Scopes)."""
        parts = []
        if self.datasets:
            parts.append(Q(dataset_id__in=sorted(self.datasets)))
        if self.runs:
            parts.append(Q(run_id__in=sorted(self.runs)))
        return reduce(or_, parts)


def _active_rows() -> list[tuple[int, int | None, int | None]]:
    return list(
        Assignment.objects.filter(reviewer__is_active=True).values_list("reviewer_id", "dataset_id", "run_id")
    )


def scopes_of(reviewer_id: int, rows: list[tuple[int, int | None, int | None]] | None = None) -> Scopes:
    rows = _active_rows() if rows is None else rows
    return Scopes(
        frozenset(d for r, d, _ in rows if r == reviewer_id and d),
        frozenset(u for r, _, u in rows if r == reviewer_id and u),
    )


def serving_tiers(reviewer: User) -> list[Q]:
    """The filters `claim_next` tries in order for this reviewer."""
    rows = _active_rows()
    mine = scopes_of(reviewer.id, rows)
    others = [(d, u) for r, d, u in rows if r != reviewer.id]
    if not others:
        return [mine.q(), Q()] if mine else [Q()]
    assignees = Counter((d, u) for _r, d, u in rows)
    shared = Scopes(
        frozenset(d for d, u in others if d and d not in mine.datasets and assignees[(d, u)] > 1),
        frozenset(u for d, u in others if u and u not in mine.runs and assignees[(d, u)] > 1),
    )
    single = Scopes(
        frozenset(d for d, u in others if d and d not in mine.datasets and assignees[(d, u)] == 1),
        frozenset(u for d, u in others if u and u not in mine.runs and assignees[(d, u)] == 1),
    )
    reserved = [shared.q()] if shared else []
    if single:
        reserved.append(single.q() & Q(reviews_done=0))
    tiers = [mine.q()] if mine else []
    return [*tiers, ~reduce(or_, reserved) if reserved else Q()]
