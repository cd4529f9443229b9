"""The drill-down link behind every number: the page's filters plus the cell's coordinates.

Each function adds `links` (or `link`) to the rows a page shows; the templates and the
chart specs read them from there, so a bar and its table cell open the same list.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from annotations.models import ErrorType

from . import models
from .filters import Side


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


def type_rows(table: dict, base: dict[str, str]) -> None:
    for r in [*table["rows"], table["untyped"], table["total"]]:
        t = r["slug"] or None
        r["links"] = {
            "critiques": drill_url(base, type=t),
            "agree": drill_url(base, type=t, matches="1"),
            "labelled": drill_url(base, type=t, matches="labelled"),
            "reviewed": drill_url(base, type=t, outcome="reviewed"),
            "awaiting": drill_url(base, type=t, outcome="awaiting"),
            "pbw_k": drill_url(base, type=t, matches="1", outcome="flawed"),
            "pbw_n": drill_url(base, type=t, matches="1", outcome="reviewed"),
            "label_wrong": drill_url(base, type=t, outcome="label_wrong"),
        }


def trend_weeks(trend: list[dict], tbase: dict[str, str]) -> None:
    """`chart_*`: where the trend chart's points lead (its PBW point: all reviewed matches)."""
    for w in trend:
        w["links"] = {
            "critiques": drill_url(tbase, week=w["week"]),
            "pbw_k": drill_url(tbase, week=w["week"], matches="1", outcome="flawed"),
            "reviewed": drill_url(tbase, week=w["week"], outcome="reviewed"),
        }
        w["chart_links"] = {
            "pbw": drill_url(tbase, week=w["week"], matches="1", outcome="reviewed"),
            "agreement": w["links"]["critiques"],
            "label_wrong": drill_url(tbase, week=w["week"], outcome="label_wrong"),
        }


def matrix_cells(matrix: dict, tbase: dict[str, str]) -> list[dict]:
    """The confusion matrix's cells, flattened, each with its links."""
    cells = [c for row in matrix["rows"] for c in row["cells"]]
    for c in cells:
        c["link"] = drill_url(tbase, label=c["label"], verdict=c["verdict"])
        c["outcome_links"] = {
            o: drill_url(tbase, label=c["label"], verdict=c["verdict"], outcome=o) for o in models.OUTCOMES
        }
    return cells


# --- compare ---------------------------------------------------------------------------


def compare_rows(result: dict, base: dict[str, str], a: Side, b: Side, same: bool) -> None:
    """Each side's numbers lead to that side's slice (and, with `same`, the shared steps)."""
    side_params = {}
    for side, (kind, pk) in (("a", a), ("b", b)):
        p = {k: v for k, v in base.items() if k != kind}
        p[kind] = str(pk)
        if same:
            p["same"] = f"{a[0]}:{a[1]},{b[0]}:{b[1]}"
        side_params[side] = p
    for r in [*result["rows"], result["untyped"], result["total"]]:
        t = r["slug"] or None
        for side in ("a", "b"):
            p = side_params[side]
            r[side]["links"] = {
                "critiques": drill_url(p, type=t),
                "reviewed": drill_url(p, type=t, outcome="reviewed"),
                "pbw_k": drill_url(p, type=t, matches="1", outcome="flawed"),
                "pbw_n": drill_url(p, type=t, matches="1", outcome="reviewed"),
            }


# --- review operations -------------------------------------------------------------------

QUEUE_NAMES = {"matched": "matched", "disagreed": "disagreed", "flagged": "flagged", "other": None}


def review_rows(
    base: dict[str, str],
    progress: list[dict],
    activity: dict,
    pairs: list[dict],
    signals: dict,
    *,
    matched_only: bool,
) -> None:
    for q in progress:
        name = QUEUE_NAMES[q["queue"]]
        q["queue_url"] = f"{reverse('review:queue')}?queue={name}" if name else None
        matches = {"matched": "1", "disagreed": "0", "other": "null"}.get(q["queue"], "")
        extra = {"signal": "flagged"} if q["queue"] == "flagged" else {"matches": matches}
        q["links"] = {
            o: drill_url(base, outcome=o, **extra) for o in ("reviewed", "awaiting", "open", "unqueued")
        }
        q["links"]["all"] = drill_url(base, **extra)
    for r in activity["rows"]:
        r["link"] = drill_url(base, reviewer=r["reviewer"])
    for p in pairs:
        p["link"] = drill_url(base, pair=f"{p['a']},{p['b']}")
    sig_base = {**base, **({"matches": "1"} if matched_only else {})}
    for s in signals["rows"]:
        s["links"] = {
            "tp": drill_url(sig_base, signal=s["signal"], outcome="flawed"),
            "fired_reviewed": drill_url(sig_base, signal=s["signal"], outcome="reviewed"),
            "fired": drill_url(sig_base, signal=s["signal"]),
        }
