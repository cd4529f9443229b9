"""The drill-down link behind every number: the page's filters plus the cell's coordinates.

Each function returns linked copies of the rows a page shows (the numbers' shapes plus
`links` or `link`); the templates and the chart specs read them from there, so a bar and
its table cell open the same list.
"""

from __future__ import annotations

from datetime import date
from typing import Any, TypedDict
from urllib.parse import urlencode

from django.urls import reverse

from annotations.models import ErrorType

from . import models
from .by_type import (
    CompareRow,
    CompareWeek,
    Comparison,
    Confusion,
    ConfusionCell,
    TypeRow,
    TypeTable,
    Week,
)
from .filters import Side
from .operations import Activity, PairRow, QueueRow, ReviewerRow, SignalRow, SignalTable
from .palette import Segment, minibar
from .slices import RateDict


def drill_url(base: dict[str, str], **cell: Any) -> str:
    """The drill-down list for one number: the page's filters plus the cell's coordinates."""
    params = dict(base)
    for key, value in cell.items():
        if value is None or value == "":
            continue
        params[key] = value.isoformat() if isinstance(value, date) else str(value)
    return f"{reverse('dashboards:critiques')}?{urlencode(params)}"


def with_type(base: dict[str, str], error_type: ErrorType | None) -> dict[str, str]:
    return {**base, **({"type": error_type.slug} if error_type else {})}


# --- error types ----------------------------------------------------------------------


class TypeLinks(TypedDict):
    critiques: str
    agree: str
    labelled: str
    reviewed: str
    awaiting: str
    pbw_k: str
    pbw_n: str
    label_wrong: str


class LinkedTypeRow(TypeRow):
    links: TypeLinks


class LinkedTypeTable(TypedDict):
    basis: str
    rows: list[LinkedTypeRow]
    untyped: LinkedTypeRow
    total: LinkedTypeRow


def _type_row(r: TypeRow, base: dict[str, str]) -> LinkedTypeRow:
    t = r["slug"] or None
    links: TypeLinks = {
        "critiques": drill_url(base, type=t),
        "agree": drill_url(base, type=t, matches="1"),
        "labelled": drill_url(base, type=t, matches="labelled"),
        "reviewed": drill_url(base, type=t, outcome="reviewed"),
        "awaiting": drill_url(base, type=t, outcome="awaiting"),
        "pbw_k": drill_url(base, type=t, matches="1", outcome="flawed"),
        "pbw_n": drill_url(base, type=t, matches="1", outcome="reviewed"),
        "label_wrong": drill_url(base, type=t, outcome="label_wrong"),
    }
    return {**r, "links": links}


def type_rows(table: TypeTable, base: dict[str, str]) -> LinkedTypeTable:
    return {
        "basis": table["basis"],
        "rows": [_type_row(r, base) for r in table["rows"]],
        "untyped": _type_row(table["untyped"], base),
        "total": _type_row(table["total"], base),
    }


class WeekLinks(TypedDict):
    critiques: str
    pbw_k: str
    reviewed: str


class WeekChartLinks(TypedDict):
    pbw: str
    agreement: str
    label_wrong: str


class LinkedWeek(Week):
    links: WeekLinks
    chart_links: WeekChartLinks


def trend_weeks(trend: list[Week], tbase: dict[str, str]) -> list[LinkedWeek]:
    """`chart_links`: where the trend chart's points lead (its PBW point: all reviewed matches)."""
    out: list[LinkedWeek] = []
    for w in trend:
        critiques = drill_url(tbase, week=w["week"])
        links: WeekLinks = {
            "critiques": critiques,
            "pbw_k": drill_url(tbase, week=w["week"], matches="1", outcome="flawed"),
            "reviewed": drill_url(tbase, week=w["week"], outcome="reviewed"),
        }
        chart_links: WeekChartLinks = {
            "pbw": drill_url(tbase, week=w["week"], matches="1", outcome="reviewed"),
            "agreement": critiques,
            "label_wrong": drill_url(tbase, week=w["week"], outcome="label_wrong"),
        }
        out.append({**w, "links": links, "chart_links": chart_links})
    return out


class LinkedCell(ConfusionCell):
    link: str
    outcome_links: dict[str, str]
    bar: list[Segment]


class LinkedConfusionRow(TypedDict):
    label: str
    cells: list[LinkedCell]


class LinkedConfusion(TypedDict):
    rows: list[LinkedConfusionRow]
    verdicts: tuple[str, ...]


def _cell(c: ConfusionCell, tbase: dict[str, str]) -> LinkedCell:
    outcome_links = {
        o: drill_url(tbase, label=c["label"], verdict=c["verdict"], outcome=o) for o in models.OUTCOMES
    }
    return {
        **c,
        "link": drill_url(tbase, label=c["label"], verdict=c["verdict"]),
        "outcome_links": outcome_links,
        "bar": minibar(c["outcomes"], outcome_links),
    }


def matrix_cells(matrix: Confusion, tbase: dict[str, str]) -> LinkedConfusion:
    """The confusion matrix with each cell's links and outcome bar."""
    return {
        "rows": [
            {"label": row["label"], "cells": [_cell(c, tbase) for c in row["cells"]]}
            for row in matrix["rows"]
        ],
        "verdicts": matrix["verdicts"],
    }


# --- compare ---------------------------------------------------------------------------


class SideLinks(TypedDict):
    critiques: str
    reviewed: str
    pbw_k: str
    pbw_n: str


class LinkedSide(TypeRow):
    links: SideLinks


class LinkedCompareRow(TypedDict):
    slug: str
    name: str
    definition: str
    a: LinkedSide
    b: LinkedSide
    pbw_diff: float | None
    pbw_diff_pct: str | None


class LinkedComparison(TypedDict):
    rows: list[LinkedCompareRow]
    untyped: LinkedCompareRow
    total: LinkedCompareRow
    runs_a: list[int]
    runs_b: list[int]
    same_steps: bool
    trend: list[CompareWeek]


def _side(r: TypeRow, p: dict[str, str]) -> LinkedSide:
    t = r["slug"] or None
    links: SideLinks = {
        "critiques": drill_url(p, type=t),
        "reviewed": drill_url(p, type=t, outcome="reviewed"),
        "pbw_k": drill_url(p, type=t, matches="1", outcome="flawed"),
        "pbw_n": drill_url(p, type=t, matches="1", outcome="reviewed"),
    }
    return {**r, "links": links}


def compare_rows(result: Comparison, base: dict[str, str], a: Side, b: Side, same: bool) -> LinkedComparison:
    """Each side's numbers lead to that side's slice (and, with `same`, the shared steps)."""
    side_params = {}
    for side, (kind, pk) in (("a", a), ("b", b)):
        p = {k: v for k, v in base.items() if k != kind}
        p[kind] = str(pk)
        if same:
            p["same"] = f"{a[0]}:{a[1]},{b[0]}:{b[1]}"
        side_params[side] = p

    def row(r: CompareRow) -> LinkedCompareRow:
        return {**r, "a": _side(r["a"], side_params["a"]), "b": _side(r["b"], side_params["b"])}

    return {
        **result,
        "rows": [row(r) for r in result["rows"]],
        "untyped": row(result["untyped"]),
        "total": row(result["total"]),
    }


# --- review operations -------------------------------------------------------------------

QUEUE_NAMES = {"matched": "matched", "disagreed": "disagreed", "flagged": "flagged", "other": None}


class QueueLinks(TypedDict):
    reviewed: str
    awaiting: str
    open: str
    unqueued: str
    all: str


class LinkedQueueRow(QueueRow):
    queue_url: str | None
    links: QueueLinks


class LinkedReviewerRow(ReviewerRow):
    link: str


class LinkedActivity(TypedDict):
    weeks: list[date]
    rows: list[LinkedReviewerRow]
    since: date


class LinkedPairRow(PairRow):
    link: str


class SignalLinks(TypedDict):
    tp: str
    fired_reviewed: str
    fired: str


class LinkedSignalRow(SignalRow):
    links: SignalLinks


class LinkedSignalTable(TypedDict):
    rows: list[LinkedSignalRow]
    audited: int
    reviewed: int
    flawed: int
    base_rate: RateDict
    matched_only: bool


class LinkedReview(TypedDict):
    """The review-operations page's linked tables."""

    progress: list[LinkedQueueRow]
    activity: LinkedActivity
    pairs: list[LinkedPairRow]
    signals: LinkedSignalTable


def _queue_row(q: QueueRow, base: dict[str, str]) -> LinkedQueueRow:
    name = QUEUE_NAMES[q["queue"]]
    matches = {"matched": "1", "disagreed": "0", "other": "null"}.get(q["queue"], "")
    extra = {"signal": "flagged"} if q["queue"] == "flagged" else {"matches": matches}
    links: QueueLinks = {
        "reviewed": drill_url(base, outcome="reviewed", **extra),
        "awaiting": drill_url(base, outcome="awaiting", **extra),
        "open": drill_url(base, outcome="open", **extra),
        "unqueued": drill_url(base, outcome="unqueued", **extra),
        "all": drill_url(base, **extra),
    }
    return {**q, "queue_url": f"{reverse('review:queue')}?queue={name}" if name else None, "links": links}


def _signal_row(s: SignalRow, sig_base: dict[str, str]) -> LinkedSignalRow:
    links: SignalLinks = {
        "tp": drill_url(sig_base, signal=s["signal"], outcome="flawed"),
        "fired_reviewed": drill_url(sig_base, signal=s["signal"], outcome="reviewed"),
        "fired": drill_url(sig_base, signal=s["signal"]),
    }
    return {**s, "links": links}


def review_rows(
    base: dict[str, str],
    progress: list[QueueRow],
    activity: Activity,
    pairs: list[PairRow],
    signals: SignalTable,
    *,
    matched_only: bool,
) -> LinkedReview:
    sig_base = {**base, **({"matches": "1"} if matched_only else {})}
    return {
        "progress": [_queue_row(q, base) for q in progress],
        "activity": {
            **activity,
            "rows": [{**r, "link": drill_url(base, reviewer=r["reviewer"])} for r in activity["rows"]],
        },
        "pairs": [{**p, "link": drill_url(base, pair=f"{p['a']},{p['b']}")} for p in pairs],
        "signals": {**signals, "rows": [_signal_row(s, sig_base) for s in signals["rows"]]},
    }
