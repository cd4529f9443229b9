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
from typing import Any

from django.http import HttpResponse

from review.models import Review
from rprm_web.spreadsheet import csv_writer

from . import models

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


def decorate(obj: Any) -> Any:
    """Adds display strings to every rate dict (`pct` "12.5%", `ci` "4.1–30.2")."""
    if isinstance(obj, dict):
        if {"k", "n", "rate", "lo", "hi"} <= obj.keys():
            if obj["rate"] is not None:
                obj["pct"] = f"{100 * obj['rate']:.1f}%"
                obj["ci"] = f"{100 * obj['lo']:.1f}–{100 * obj['hi']:.1f}"
            else:
                obj["pct"], obj["ci"] = None, ""
        for value in obj.values():
            decorate(value)
    elif isinstance(obj, list | tuple):
        for value in obj:
            decorate(value)
    return obj


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
    *[Col(o, get=lambda c, o=o: c["outcomes"][o]) for o in models.OUTCOMES],
]


def error_types_csv(
    which: str | None,
    *,
    basis: str,
    table: dict,
    trend: list[dict],
    trend_type,
    matrix: dict,
    evaluation: dict | None,
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
                Rate(f"prm_error[{run.name}]", get=lambda r, i=i: r["evals"][i])
                for i, run in enumerate(evaluation["runs"])
            ],
        ]
        return csv_response("prm-vs-teacher.csv", cols, evaluation["rows"])
    return None


# --- compare ---------------------------------------------------------------------------------

COMPARE_WEEK_RATES = [Col("critiques"), Rate("pbw"), Rate("agreement")]


def compare_csv(which: str | None, result: dict, name_a: str, name_b: str) -> HttpResponse | None:
    if which == "compare":
        # One line per side and error type: (side, slice name, that side's numbers).
        rows = [
            (side, name, r[key])
            for r in [*result["rows"], result["untyped"], result["total"]]
            for side, name, key in (("A", name_a, "a"), ("B", name_b, "b"))
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
            *[c.within(lambda w, s=s: w[s], f"{s}_") for s in ("a", "b") for c in COMPARE_WEEK_RATES],
        ]
        return csv_response("compare-trend.csv", cols, result["trend"])
    return None


# --- review operations -------------------------------------------------------------------------

PROGRESS_COLS = [
    Col("queue"),
    Col("critiques"),
    Col("reviewed"),
    Col("awaiting"),
    *[Col(o, get=lambda q, o=o: q["outcomes"][o]) for o in models.OUTCOMES],
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
    Col("critique", get=lambda c: str(c.uuid)),
    Col("dataset", get=lambda c: c.step.solution.dataset.name),
    Col("solution", get=lambda c: c.step.solution.source_id),
    Col("step", get=lambda c: c.step.index + 1),
    Col("sample", get=lambda c: c.sample_index),
    Col("run", get=lambda c: c.run_id),
    Col("teacher", get=lambda c: c.run.endpoint.name),
    Col("template", get=lambda c: str(c.run.template)),
    Col("label", get=lambda c: c.step.label),
    Col("verdict", get=lambda c: c.verdict),
    Col("p_yes", get=lambda c: c.p_yes),
    Col("error_class", get=lambda c: c.step.solution.error_type.slug if c.step.solution.error_type else ""),
    Col("tags", get=lambda c: ";".join(c.tag_names)),
    Col("outcome", get=lambda c: c.outcome),
    Col("written", get=lambda c: c.created_at.isoformat()),
]


def critiques_csv(which: str | None, rows: Iterable[Any]) -> HttpResponse | None:
    """The drill-down's critiques (every page), tags as the final decision has them."""
    if which == "critiques":
        return csv_response("critiques.csv", CRITIQUE_COLS, rows)
    return None


def reviewer_cols(weeks: list) -> list[Col]:
    return [
        Col("reviewer"),
        Col("reviews"),
        Col("per_week"),
        *[Col(d, get=lambda r, d=d: r["decisions"][d]) for d in Review.Decision.values],
        Col("undone"),
        Col("median_s"),
        Col("p25_s"),
        Col("p75_s"),
        Col("mean_s"),
        *[Col(f"week_{w.isoformat()}", get=lambda r, i=i: r["weeks"][i]) for i, w in enumerate(weeks)],
    ]


def review_csv(
    which: str | None,
    *,
    progress: list[dict],
    activity: dict,
    pairs: list[dict],
    signals: dict,
    backlog: dict,
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
