"""Chart.js specs: plain dicts that static/js/dashboards.js draws from a json_script element.

Rates are charted in percent with their 95% Wilson interval as whiskers; every bar or
point carries the drill-down link of its number (set on the rows by `links`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from . import slices
from .by_type import EvaluationComparison
from .links import (
    LinkedCell,
    LinkedCompareRow,
    LinkedComparison,
    LinkedConfusion,
    LinkedPairRow,
    LinkedReview,
    LinkedReviewerRow,
    LinkedSide,
    LinkedTypeRow,
    LinkedWeek,
)
from .operations import Backlog
from .palette import COLORS, FLAWED_FIRST, OUTCOME_COLORS, SOUND_FIRST, palette
from .slices import OUTCOME_NAMES, RateDict

# A Chart.js spec as static/js/dashboards.js reads it (JSON).
Spec = dict[str, Any]

WILSON = "(95% Wilson interval)"


def pct(r: RateDict | None, key: Literal["rate", "lo", "hi"] = "rate") -> float | None:
    value = r[key] if r else None
    return None if value is None else round(100 * value, 2)


def series(label: str, rates: Sequence[RateDict], color: str, links: list[str] | None = None) -> Spec:
    return {
        "label": label,
        "data": [pct(r) for r in rates],
        "intervals": [None if r["rate"] is None else [pct(r, "lo"), pct(r, "hi")] for r in rates],
        "counts": [[r["k"], r["n"]] for r in rates],
        "color": color,
        "links": links or [],
    }


def rate_chart(
    labels: list[str],
    series: list[dict],
    *,
    title: str,
    horizontal: bool = True,
    kind: str = "bar",
    max_pct: float | None = 100,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "horizontal": horizontal,
        "labels": labels,
        "datasets": series,
        "axis": title,
        "max": max_pct,
        "percent": True,
    }


def stacked_chart(
    labels: list[str], series: list[dict], *, title: str, horizontal: bool = False
) -> dict[str, Any]:
    return {
        "kind": "bar",
        "stacked": True,
        "horizontal": horizontal,
        "labels": labels,
        "datasets": series,
        "axis": title,
        "percent": False,
    }


def sized(charts: dict[str, dict | None]) -> dict[str, dict | None]:
    """Horizontal bar charts grow with their categories so labels never overlap."""
    for spec in charts.values():
        if not spec:
            continue
        n = len(spec["labels"])
        if spec.get("horizontal"):
            per = 18 if spec.get("stacked") else 12 * max(1, len(spec["datasets"])) + 8
            spec["height"] = max(200, min(900, 90 + per * n))
        else:
            spec["height"] = 300
    return charts


# --- the error-type page ----------------------------------------------------------------


def _type_rate_charts(rows: list[LinkedTypeRow]) -> tuple[Spec, Spec]:
    """Per error type: PBW and label-wrong rates, and agreement with the label."""
    names = [r["name"] for r in rows]
    pbw = rate_chart(
        names,
        [
            series(
                "plausible-but-wrong",
                [r["pbw"] for r in rows],
                COLORS["bad"],
                [r["links"]["pbw_k"] for r in rows],
            ),
            series(
                "label wrong",
                [r["label_wrong"] for r in rows],
                COLORS["neutral"],
                [r["links"]["label_wrong"] for r in rows],
            ),
        ],
        title=f"% of reviewed critiques {WILSON}",
    )
    agreement = rate_chart(
        names,
        [
            series(
                "agreement with the label",
                [r["agreement"] for r in rows],
                COLORS["a"],
                [r["links"]["critiques"] for r in rows],
            )
        ],
        title=f"% of labelled critiques {WILSON}",
    )
    return pbw, agreement


def _trend_chart(trend: list[LinkedWeek]) -> Spec:
    return rate_chart(
        [w["week"].isoformat() if w["week"] else "" for w in trend],
        [
            series(
                "plausible-but-wrong",
                [w["pbw"] for w in trend],
                COLORS["bad"],
                [w["chart_links"]["pbw"] for w in trend],
            ),
            series(
                "agreement with the label",
                [w["agreement"] for w in trend],
                COLORS["a"],
                [w["chart_links"]["agreement"] for w in trend],
            ),
            series(
                "label wrong",
                [w["label_wrong"] for w in trend],
                COLORS["neutral"],
                [w["chart_links"]["label_wrong"] for w in trend],
            ),
        ],
        title=f"% {WILSON}",
        horizontal=False,
        kind="line",
    )


def _confusion_chart(cells: list[LinkedCell]) -> Spec:
    shown = [c for c in cells if c["n"]]
    return stacked_chart(
        [f"{c['label']} · {c['verdict']}" for c in shown],
        [
            {
                "label": OUTCOME_NAMES[o],
                "data": [c["outcomes"][o] for c in shown],
                "color": OUTCOME_COLORS[o],
                "links": [c["outcome_links"][o] for c in shown],
            }
            for o in FLAWED_FIRST
        ],
        title="critiques (label · teacher verdict)",
        horizontal=True,
    )


def error_type_charts(
    rows: list[LinkedTypeRow],
    trend: list[LinkedWeek],
    matrix: LinkedConfusion,
    evaluation: EvaluationComparison | None,
) -> dict[str, Spec | None]:
    pbw, agreement = _type_rate_charts(rows)
    charts = {
        "pbw": pbw,
        "agreement": agreement,
        "trend": _trend_chart(trend),
        "confusion": _confusion_chart([c for row in matrix["rows"] for c in row["cells"]]),
        "evaluation": evaluation_chart(evaluation) if evaluation else None,
    }
    return sized(charts)


def evaluation_chart(evaluation: EvaluationComparison) -> Spec:
    """PRM error rate per class next to the teacher's, one series per evaluation run."""
    rows = evaluation["rows"]
    return rate_chart(
        [r["name"] for r in rows],
        [series("teacher: verdict ≠ label", [r["teacher"] for r in rows], COLORS["a"])]
        + [
            series(
                f"PRM: {run.name}",
                [e or slices.rate(0, 0) for e in (r["evals"][i] for r in rows)],
                [COLORS["b"], COLORS["purple"], COLORS["teal"]][i % 3],
            )
            for i, run in enumerate(evaluation["runs"])
        ],
        title=f"% of steps judged wrongly {WILSON}",
    )


# --- compare ------------------------------------------------------------------------------


def _side(row: LinkedCompareRow, s: str) -> LinkedSide:
    return row["a"] if s == "a" else row["b"]


def compare_charts(result: LinkedComparison, name_a: str, name_b: str) -> dict[str, Spec | None]:
    rows, trend = result["rows"], result["trend"]
    names = [r["name"] for r in rows]

    def sides(key: Literal["pbw", "agreement"], link: Literal["pbw_n", "critiques"]) -> list[Spec]:
        return [
            series(
                f"{s.upper()}: {name}",
                [_side(r, s)[key] for r in rows],
                COLORS[s],
                [_side(r, s)["links"][link] for r in rows],
            )
            for s, name in (("a", name_a), ("b", name_b))
        ]

    return sized(
        {
            "pbw": rate_chart(
                names,
                sides("pbw", "pbw_n"),
                title="plausible-but-wrong, % of reviewed label-matching critiques (95% interval)",
            ),
            "agreement": rate_chart(
                names,
                sides("agreement", "critiques"),
                title="agreement with the label, % of labelled critiques (95% interval)",
            ),
            "trend": rate_chart(
                [w["week"].isoformat() for w in trend],
                [
                    series(f"A: {name_a}", [w["a"]["pbw"] for w in trend], COLORS["a"]),
                    series(f"B: {name_b}", [w["b"]["pbw"] for w in trend], COLORS["b"]),
                ],
                title="plausible-but-wrong % per week (95% interval)",
                horizontal=False,
                kind="line",
            ),
        }
    )


# --- review operations ----------------------------------------------------------------------


def review_charts(linked: LinkedReview, backlog: Backlog) -> dict[str, Spec | None]:
    progress, activity, pairs, signals = (
        linked["progress"],
        linked["activity"],
        linked["pairs"],
        linked["signals"],
    )
    people = activity["rows"]
    return sized(
        {
            "progress": stacked_chart(
                [q["name"] for q in progress],
                [
                    {
                        "label": OUTCOME_NAMES[o],
                        "data": [q["outcomes"][o] for q in progress],
                        "color": OUTCOME_COLORS[o],
                        "links": [q["links"]["reviewed"] for q in progress],
                    }
                    for o in SOUND_FIRST
                ],
                title="critiques",
                horizontal=True,
            ),
            "throughput": stacked_chart(
                [w.isoformat() for w in activity["weeks"]],
                [
                    {
                        "label": r["reviewer"],
                        "data": r["weeks"],
                        "color": palette(i),
                        "links": [r["link"]] * len(r["weeks"]),
                    }
                    for i, r in enumerate(people)
                ],
                title="reviews per week",
            ),
            "time": time_chart(people),
            "signals": rate_chart(
                [s["title"] for s in signals["rows"]],
                [
                    series(
                        "precision (flawed / fired)",
                        [s["precision"] for s in signals["rows"]],
                        COLORS["bad"],
                        [s["links"]["fired_reviewed"] for s in signals["rows"]],
                    ),
                    series(
                        "recall (share of flawed caught)",
                        [s["recall"] for s in signals["rows"]],
                        COLORS["a"],
                        [s["links"]["tp"] for s in signals["rows"]],
                    ),
                ],
                title=f"% of reviewed critiques {WILSON}",
            ),
            "kappa": kappa_chart(pairs),
            "backlog": backlog_chart(backlog),
        }
    )


def time_chart(people: list[LinkedReviewerRow]) -> Spec:
    return {
        "kind": "bar",
        "horizontal": True,
        "labels": [r["reviewer"] for r in people],
        "axis": "seconds on task: median, whiskers = quartiles",
        "percent": False,
        "max": None,
        "datasets": [
            {
                "label": "median time on task (s)",
                "color": COLORS["teal"],
                "data": [r["median_s"] for r in people],
                "intervals": [None if r["p25_s"] is None else [r["p25_s"], r["p75_s"]] for r in people],
                "links": [r["link"] for r in people],
                "unit": " s",
            }
        ],
    }


def kappa_chart(pairs: list[LinkedPairRow]) -> Spec:
    return {
        "kind": "bar",
        "horizontal": True,
        "labels": [f"{p['a']} · {p['b']}" for p in pairs],
        "axis": "Cohen's kappa",
        "percent": False,
        "max": 1,
        "min": -1,
        "datasets": [
            {
                "label": "kappa, decisions",
                "color": COLORS["a"],
                "data": [p["kappa_decisions"] for p in pairs],
                "links": [p["link"] for p in pairs],
            },
            {
                "label": "kappa, error tags",
                "color": COLORS["b"],
                "data": [p["kappa_tags"] for p in pairs],
                "links": [p["link"] for p in pairs],
            },
        ],
    }


def backlog_chart(backlog: Backlog) -> Spec:
    return {
        "kind": "bar",
        "horizontal": True,
        "labels": ["under 1 day", "1–7 days", "over 7 days"],
        "axis": "items awaiting adjudication",
        "percent": False,
        "max": None,
        "datasets": [
            {
                "label": "waiting",
                "color": COLORS["purple"],
                "data": [backlog["under_1d"], backlog["d1_7"], backlog["over_7d"]],
            }
        ],
    }
