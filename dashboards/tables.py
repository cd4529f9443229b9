"""Table column specs: the CSV download of every dashboard table, and the display
strings of rates the HTML tables show.

A `Col` names a CSV column and reads it from a row; a `Rate` column is a rate dict
(k, n, rate, 95% Wilson interval) and becomes five columns `<name>_k, _n, _rate,
_ci_low, _ci_high`. Each page's `*_csv(which, ...)` answers `?csv=<table>` (None when
the page has no such table): the rows are the ones the page shows, so a download
always carries the page's numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date
from operator import itemgetter
from typing import Any

from django.http import HttpResponse

from annotations.models import ErrorType
from review.models import Review
from rprm_web.spreadsheet import csv_writer

from . import models
from .by_type import Comparison, Confusion, EvaluationComparison, TypeTable, Week
from .critique_list import ListedCritique
from .operations import Activity, Backlog, PairRow, QueueRow, SignalTable

RATE_PARTS = ("k", "n", "rate", "lo", "hi")
RATE_SUFFIXES = ("k", "n", "rate", "ci_low", "ci_high")


@dataclass(frozen=True)
class Col:
    """One CSV column: `get(row)`, or `row[key]` (key defaults to the name)."""

    name: str
    key: str | None = None
    get: Callable[[Any], Any] | None = None

    def read(self, row: Any) -> Any:
        return self.get(row) if self.get else row[self.key or self.name]

    def within(self, part: Callable[[Any], Any], prefix: str = "") -> Col:
        """This column read from a part of the row (one side of a compare row)."""
        return replace(self, name=prefix + self.name, get=lambda row: self.read(part(row)))

    def headers(self) -> list[str]:
        return [self.name]

    def values(self, row: Any) -> list[Any]:
        return [self.read(row)]


@dataclass(frozen=True)
class Rate(Col):
    """A rate dict as five columns; None (no such rate) leaves them empty."""

    def headers(self) -> list[str]:
        return [f"{self.name}_{s}" for s in RATE_SUFFIXES]

    def values(self, row: Any) -> list[Any]:
        r = self.read(row)
        return [r[p] for p in RATE_PARTS] if r else [None] * len(RATE_PARTS)


def outcome_count(outcome: str) -> Callable[[Any], Any]:
    """Reads one outcome's count from a row's `outcomes`."""
    return lambda row: row["outcomes"][outcome]


def decision_count(decision: str) -> Callable[[Any], Any]:
    """Reads one decision's count from a reviewer row's `decisions`."""
    return lambda row: row["decisions"][decision]


def nth(key: str, i: int) -> Callable[[Any], Any]:
    """Reads the i-th item of a row's list `key` (one column per evaluation run or week)."""
    return lambda row: row[key][i]


def header(cols: list[Col]) -> list[str]:
    return [h for c in cols for h in c.headers()]


def values(cols: list[Col], row: Any) -> list[Any]:
    return [v for c in cols for v in c.values(row)]


def csv_response(filename: str, cols: list[Col], rows: Iterable[Any]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv_writer(response)
    writer.writerow(header(cols))
    for row in rows:
        writer.writerow(
            ["" if v is None else round(v, 6) if isinstance(v, float) else v for v in values(cols, row)]
        )
    return response


# --- the error-type page ------------------------------------------------------------------

TYPE_COLS = [
    Col("error_type", "slug"),
    Col("name"),
    Col("steps"),
    Col("critiques"),
    Rate("agreement"),
    Col("reviewed"),
    Col("awaiting"),
    Rate("pbw"),
    Rate("label_wrong"),
]
TREND_RATES = [Col("critiques"), Rate("agreement"), Col("reviewed"), Rate("pbw"), Rate("label_wrong")]
CONFUSION_COLS = [
    Col("label"),
    Col("verdict"),
    Col("critiques", "n"),
    Col("reviewed"),
    *[Col(o, get=outcome_count(o)) for o in models.OUTCOMES],
]


def error_types_csv(
    which: str | None,
    *,
    basis: str,
    table: TypeTable,
    trend: list[Week],
    trend_type: ErrorType | None,
    matrix: Confusion,
    evaluation: EvaluationComparison | None,
) -> HttpResponse | None:
    if which == "types":
        cols = [Col("basis", get=lambda r: basis), *TYPE_COLS]
        return csv_response(
            f"error-types-{basis}.csv", cols, [*table["rows"], table["untyped"], table["total"]]
        )
    if which == "trend":
        slug = trend_type.slug if trend_type else ""
        cols = [
            Col("week", get=lambda w: w["week"].isoformat()),
            Col("error_type", get=lambda w: slug),
            *TREND_RATES,
        ]
        return csv_response("weekly-trend.csv", cols, trend)
    if which == "confusion":
        return csv_response(
            "confusion.csv", CONFUSION_COLS, [c for row in matrix["rows"] for c in row["cells"]]
        )
    if which == "evaluation" and evaluation:
        cols = [
            Col("error_type", "slug"),
            Rate("teacher_disagreement", "teacher"),
            *[
                Rate(f"prm_error[{run.name}]", get=nth("evals", i))
                for i, run in enumerate(evaluation["runs"])
            ],
        ]
        return csv_response("prm-vs-teacher.csv", cols, evaluation["rows"])
    return None


# --- compare ---------------------------------------------------------------------------------

COMPARE_WEEK_RATES = [Col("critiques"), Rate("pbw"), Rate("agreement")]


def compare_csv(which: str | None, result: Comparison, name_a: str, name_b: str) -> HttpResponse | None:
    if which == "compare":
        # One line per side and error type: (side, slice name, that side's numbers).
        rows = [
            (side, name, half)
            for r in [*result["rows"], result["untyped"], result["total"]]
            for side, name, half in (("A", name_a, r["a"]), ("B", name_b, r["b"]))
        ]
        cols = [
            Col("side", get=lambda t: t[0]),
            Col("slice", get=lambda t: t[1]),
            *[c.within(lambda t: t[2]) for c in TYPE_COLS],
        ]
        return csv_response("compare.csv", cols, rows)
    if which == "trend":
        cols = [
            Col("week", get=lambda w: w["week"].isoformat()),
            *[c.within(itemgetter(s), f"{s}_") for s in ("a", "b") for c in COMPARE_WEEK_RATES],
        ]
        return csv_response("compare-trend.csv", cols, result["trend"])
    return None


# --- review operations -------------------------------------------------------------------------

PROGRESS_COLS = [
    Col("queue"),
    Col("critiques"),
    Col("reviewed"),
    Col("awaiting"),
    *[Col(o, get=outcome_count(o)) for o in models.OUTCOMES],
]
PAIR_COLS = [
    Col("reviewer_a", "a"),
    Col("reviewer_b", "b"),
    Col("critiques", "items"),
    Col("percent_agree"),
    Col("kappa_decisions"),
    Col("kappa_decisions_ci_low", get=lambda p: p["decisions"]["lo"]),
    Col("kappa_decisions_ci_high", get=lambda p: p["decisions"]["hi"]),
    Col("kappa_tags"),
    Col("kappa_tags_ci_low", get=lambda p: p["tags"]["lo"]),
    Col("kappa_tags_ci_high", get=lambda p: p["tags"]["hi"]),
    Col("under_30_items", get=lambda p: p["decisions"]["few"]),
]
SIGNAL_COLS = [
    Col("signal"),
    Col("fired"),
    Col("fired_reviewed"),
    Col("tp"),
    Col("fp"),
    Col("fn"),
    Rate("precision"),
    Rate("recall"),
    Col("lift"),
]
BACKLOG_COLS = [
    Col(k)
    for k in (
        "n",
        "label_disputes",
        "disagreements",
        "under_1d",
        "d1_7",
        "over_7d",
        "oldest_days",
        "decided_7d",
    )
]


CRITIQUE_COLS = [
    Col("critique", get=lambda r: str(r.critique.uuid)),
    Col("dataset", get=lambda r: r.critique.step.solution.dataset.name),
    Col("solution", get=lambda r: r.critique.step.solution.source_id),
    Col("step", get=lambda r: r.critique.step.index + 1),
    Col("sample", get=lambda r: r.critique.sample_index),
    Col("run", get=lambda r: r.critique.run_id),
    Col("teacher", get=lambda r: r.critique.run.endpoint.name),
    Col("template", get=lambda r: str(r.critique.run.template)),
    Col("label", get=lambda r: r.critique.step.label),
    Col("verdict", get=lambda r: r.critique.verdict),
    Col("p_yes", get=lambda r: r.critique.p_yes),
    Col(
        "error_class",
        get=lambda r: r.critique.step.solution.error_type.slug if r.critique.step.solution.error_type else "",
    ),
    Col("tags", get=lambda r: ";".join(r.tag_names)),
    Col("outcome", get=lambda r: r.outcome),
    Col("written", get=lambda r: r.critique.created_at.isoformat()),
]


def critiques_csv(which: str | None, rows: Iterable[ListedCritique]) -> HttpResponse | None:
    """The drill-down's critiques (every page), tags as the final decision has them."""
    if which == "critiques":
        return csv_response("critiques.csv", CRITIQUE_COLS, rows)
    return None


def reviewer_cols(weeks: list[date]) -> list[Col]:
    return [
        Col("reviewer"),
        Col("reviews"),
        Col("per_week"),
        *[Col(d, get=decision_count(d)) for d in Review.Decision.values],
        Col("undone"),
        Col("median_s"),
        Col("p25_s"),
        Col("p75_s"),
        Col("mean_s"),
        *[Col(f"week_{w.isoformat()}", get=nth("weeks", i)) for i, w in enumerate(weeks)],
    ]


def review_csv(
    which: str | None,
    *,
    progress: list[QueueRow],
    activity: Activity,
    pairs: list[PairRow],
    signals: SignalTable,
    backlog: Backlog,
) -> HttpResponse | None:
    if which == "progress":
        return csv_response("queue-progress.csv", PROGRESS_COLS, progress)
    if which == "reviewers":
        return csv_response("reviewers.csv", reviewer_cols(activity["weeks"]), activity["rows"])
    if which == "pairs":
        return csv_response("kappa.csv", PAIR_COLS, pairs)
    if which == "signals":
        return csv_response("signals.csv", SIGNAL_COLS, signals["rows"])
    if which == "backlog":
        return csv_response("adjudication-backlog.csv", BACKLOG_COLS, [backlog])
    return None
