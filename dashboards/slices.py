"""Error-type audit dashboards (issue 7): the vocabulary every number uses (bases,
outcomes, the Slice a page shows, rates and tallies). The numbers are in
by_type.py, operations.py and drill.py; summaries.py rebuilds the summary tables.

Where does the teacher reason wrongly while agreeing with the label, and is it
getting better? Everything here answers from the summary tables
(dashboards/models.py), rebuilt by `refresh_summaries`, except the
review-operations numbers that must be live (throughput, agreement, backlog) and
the drill-down lists, which read the source rows with the same definitions.

Definitions (also shown on the pages):

* **Error type of a critique.** The step's solution class (`Solution.error_type`,
  e.g. a PRMBench classification; every step of that solution has it) and/or the
  error types tagged by reviewers (active reviews) or by the adjudicating admin.
  The *basis* picks which: `class`, `tag`, or `either` (the union, the default). A
  critique counts once per error type it has, so the type rows can add up to more
  than the total; critiques with none under the basis form the "no error type" row.
* **Agreement**: verdict matches the step's label, among critiques whose step has a
  correct/incorrect label and whose verdict parsed.
* **Reviewed**: the review item has a settled decision (sound, flawed or label
  wrong: single review, two agreeing reviews, or adjudication). Items awaiting a
  second review or adjudication are *awaiting*, not reviewed.
* **Plausible-but-wrong (PBW) rate**: flawed / reviewed, among critiques whose
  verdict matched the label; Wilson 95% interval.
* **Label-wrong rate**: label wrong / reviewed, among all reviewed critiques.
* **Weeks** start Monday 00:00 UTC; a critique's week is the one it was written in.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import reduce
from operator import or_
from typing import Any, TypedDict

from django.db.models import (
    Q,
)
from django.utils import timezone

from annotations.models import ErrorType
from inference.core.metrics import wilson_interval
from inference.models import GenerationRun

from .models import (
    OUTCOMES,
    REVIEWED,
)

log = logging.getLogger(__name__)


BASES = {
    "either": "solution class or reviewer tag",
    "class": "solution class only",
    "tag": "reviewer / adjudicator tags only",
}
# DashboardCell.via values that put a critique under an error type, per basis.
VIA = {"class": ("class", "both"), "tag": ("tag", "both"), "either": ("class", "tag", "both")}
AWAITING = ("partial", "adjudication")
LABELS = ("correct", "incorrect", "other")
VERDICTS = ("yes", "no", "unparseable")
OUTCOME_NAMES = {
    "sound": "sound",
    "flawed": "flawed (plausible but wrong)",
    "label_wrong": "label wrong",
    "partial": "awaiting 2nd review",
    "adjudication": "awaiting adjudication",
    "open": "not reviewed yet",
    "unqueued": "not audited yet",
}
SLICE_KINDS = ("teacher", "template", "dataset", "run")


# --- small helpers -------------------------------------------------------------------


WEEK = timedelta(weeks=1)


def monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


def week_start(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


class RateDict(TypedDict):
    """k of n with its Wilson 95% interval, and the strings the tables show."""

    k: int
    n: int
    rate: float | None
    lo: float | None
    hi: float | None
    pct: str | None  # "12.5%"
    ci: str  # "4.1–30.2"; "" without a rate


def rate(k: int, n: int) -> RateDict:
    """k of n with its Wilson 95% interval; rate and interval are None when n == 0."""
    if n == 0:
        return {"k": k, "n": 0, "rate": None, "lo": None, "hi": None, "pct": None, "ci": ""}
    lo, hi = wilson_interval(k, n)
    return {
        "k": k,
        "n": n,
        "rate": k / n,
        "lo": lo,
        "hi": hi,
        "pct": f"{100 * (k / n):.1f}%",
        "ci": f"{100 * lo:.1f}–{100 * hi:.1f}",
    }


def label_group(label: str) -> str:
    return label if label in ("correct", "incorrect") else "other"


@dataclass(frozen=True)
class Slice:
    """Which critiques: by teacher (endpoint id), template, dataset, run, last N weeks.

    `blind`: the page is for a reviewer, so critiques in blind double review (sealed:
    awaiting a second review or adjudication) are left out of every number: a reviewer
    may be the second one on any of them (docs/blind-review.md)."""

    teacher: int | None = None
    template: int | None = None
    dataset: int | None = None
    run: int | None = None
    weeks: int | None = None
    blind: bool = False
    # The runs of the chosen role (teacher by default: the dashboards audit the teacher);
    # None when the role leaves no run out. A run picked by id is shown whatever its role.
    role_runs: tuple[int, ...] | None = None
    role: str = ""  # "" (teacher), "student" or "all": carried by the drill-down links

    def scope_q(self) -> Q:
        """Summary rows (cells, queues, signals) this slice may count."""
        return Q(sealed=False) if self.blind else Q()

    def steps_q(self) -> Q:
        """DashboardSteps rows this slice counts (distinct steps are stored both ways)."""
        return Q(blind=self.blind)

    def run_ids(self) -> list[int] | None:
        """Run ids of the slice (runs are few), or None for every run."""
        filters = {
            "endpoint_id": self.teacher,
            "template_id": self.template,
            "dataset_id": self.dataset,
            "id": self.run,
        }
        filters = {k: v for k, v in filters.items() if v is not None}
        if not filters:
            return None if self.role_runs is None else list(self.role_runs)
        rows = GenerationRun.objects.filter(**filters)
        if self.role_runs is not None and self.run is None:
            rows = rows.filter(id__in=self.role_runs)
        return list(rows.order_by("id").values_list("id", flat=True))

    def since(self, today: date | None = None) -> date | None:
        if not self.weeks:
            return None
        today = today or timezone.now().date()
        return monday(today) - timedelta(weeks=self.weeks - 1)

    def side(self, kind: str, pk: int) -> Slice:
        """This slice narrowed to one teacher / template / dataset / run (a compare side)."""
        if kind not in SLICE_KINDS:
            raise ValueError(f"unknown slice kind {kind!r}")
        narrowed: dict[str, Any] = {kind: pk}
        return replace(self, **narrowed)


def run_q(run_ids: list[int] | None, field_name: str = "run_id") -> Q:
    return Q() if run_ids is None else Q(**{f"{field_name}__in": run_ids})


def cohort_q(a_runs: list[int], b_runs: list[int]) -> Q:
    """Summary rows whose step was critiqued by a run of each side ("the same steps")."""

    def any_of(runs: list[int]) -> Q:
        return reduce(or_, (Q(runs__contains=f",{r},") for r in runs), Q(pk__in=[]))

    return any_of(a_runs) & any_of(b_runs)


class Summary(TypedDict):
    """The numbers of one group of critiques (a Tally's summary): every row's base."""

    critiques: int
    agreement: RateDict
    disagreement: RateDict
    reviewed: int
    awaiting: int
    unreviewed: int
    matched_reviewed: int
    matched_flawed: int
    flawed: int
    sound: int
    pbw: RateDict
    label_wrong: RateDict
    outcomes: dict[str, int]


@dataclass
class Tally:
    """Counts of one group of critiques, folded from summary rows."""

    critiques: int = 0
    labelled: int = 0
    agree: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    matched: Counter[str] = field(default_factory=Counter)

    def add(self, matches: bool | None, outcome: str, n: int) -> None:
        self.critiques += n
        self.outcomes[outcome] += n
        if matches is not None:
            self.labelled += n
            if matches:
                self.agree += n
                self.matched[outcome] += n

    def summary(self) -> Summary:
        reviewed = sum(self.outcomes[o] for o in REVIEWED)
        matched_reviewed = sum(self.matched[o] for o in REVIEWED)
        return {
            "critiques": self.critiques,
            "agreement": rate(self.agree, self.labelled),
            "disagreement": rate(self.labelled - self.agree, self.labelled),
            "reviewed": reviewed,
            "awaiting": sum(self.outcomes[o] for o in AWAITING),
            "unreviewed": self.outcomes["open"] + self.outcomes["unqueued"],
            "matched_reviewed": matched_reviewed,
            "matched_flawed": self.matched["flawed"],
            "flawed": self.outcomes["flawed"],
            "sound": self.outcomes["sound"],
            "pbw": rate(self.matched["flawed"], matched_reviewed),
            "label_wrong": rate(self.outcomes["label_wrong"], reviewed),
            "outcomes": {o: self.outcomes[o] for o in OUTCOMES},
        }


def taxonomy() -> list[ErrorType]:
    return list(ErrorType.objects.all())
