"""Audit dashboards (issue 7): error types, two slices side by side, review operations,
and the drill-down list behind every number.

Every view starts with `require_reviewer`. The numbers come from slices, by_type, operations, drill and summaries
as plain dicts; this module only shapes them for templates, Chart.js specs (read by
static/js/dashboards.js from a json_script element) and CSV downloads of the same
rows (`?csv=<table>`). Filters are GET forms: with htmx the page body swaps in place
(`#dash-body` partial, URL pushed); without JavaScript they submit normally.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import date
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from annotations.models import ErrorType
from inference.models import Critique, GenerationRun
from review.models import Review
from review.reviews import sealed_q
from rprm_web.access import AppRequest, require_reviewer

from . import by_type, drill, models, operations, slices, summaries
from .drill import Drill
from .slices import BASES, OUTCOME_NAMES, Slice

COLORS = {
    "a": "#2456c7",
    "b": "#d9822b",
    "bad": "#c0392b",
    "ok": "#1a7f4b",
    "neutral": "#b7791f",
    "muted": "#8a94a3",
    "purple": "#5b2fa6",
    "teal": "#138a8a",
}
OUTCOME_COLORS = {
    "sound": COLORS["ok"],
    "flawed": COLORS["bad"],
    "label_wrong": COLORS["neutral"],
    "partial": "#7aa2ff",
    "adjudication": COLORS["purple"],
    "open": "#c5ccd6",
    "unqueued": "#e6e9ee",
}
WEEK_CHOICES = [
    ("", "all time"),
    ("4", "last 4 weeks"),
    ("8", "last 8 weeks"),
    ("12", "last 12 weeks"),
    ("26", "last 26 weeks"),
    ("52", "last 52 weeks"),
]
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


# --- filters -------------------------------------------------------------------------


def _run_label(run: GenerationRun) -> str:
    return f"#{run.id} {run.endpoint.name} · {run.template} · {run.dataset.name}"


class SliceForm(forms.Form):
    """Which critiques: shared by every dashboard. Invalid values fall back to "all".

    The choices come from one query of the runs (few) with their teacher, template and
    dataset; only what has critiques is offered."""

    teacher = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    template = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Prompt template")
    dataset = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    run = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    weeks = forms.TypedChoiceField(
        choices=WEEK_CHOICES, coerce=int, required=False, empty_value=None, label="Period"
    )
    basis = forms.ChoiceField(choices=list(BASES.items()), required=False, label="Error type from")

    def __init__(self, *args, runs: list[GenerationRun] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if runs is None:
            runs = list(
                GenerationRun.objects.select_related("endpoint", "template", "dataset").order_by("-id")
            )
        self.runs = runs
        self.names: dict[str, dict[int, str]] = {
            "teacher": {r.endpoint_id: r.endpoint.name for r in runs},
            "template": {r.template_id: str(r.template) for r in runs},
            "dataset": {r.dataset_id: r.dataset.name for r in runs},
            "run": {r.id: _run_label(r) for r in runs},
        }
        empty = {
            "teacher": "All teachers",
            "template": "All templates",
            "dataset": "All datasets",
            "run": "All runs",
        }
        for key, names in self.names.items():
            ordered = names.items() if key == "run" else sorted(names.items(), key=lambda kv: kv[1])
            self.fields[key].choices = [("", empty[key]), *ordered]

    def clean_basis(self) -> str:
        return self.cleaned_data.get("basis") or "either"

    def slice(self) -> Slice:
        if not self.is_valid():
            return Slice()
        d = self.cleaned_data
        return Slice(
            teacher=d["teacher"], template=d["template"], dataset=d["dataset"], run=d["run"], weeks=d["weeks"]
        )

    def chosen_basis(self) -> str:
        return self.cleaned_data.get("basis", "either") if self.is_valid() else "either"

    def described(self) -> list[str]:
        """The chosen filters in words (the drill-down page's heading)."""
        if not self.is_valid():
            return []
        d = self.cleaned_data
        out = [
            f"{key} {self.names[key][d[key]]}" for key in ("teacher", "template", "dataset", "run") if d[key]
        ]
        if d["weeks"]:
            out.append(f"last {d['weeks']} weeks")
        return out


def _slice_params(slc: Slice, basis: str) -> dict[str, str]:
    params = {
        k: str(getattr(slc, k)) for k in ("teacher", "template", "dataset", "run", "weeks") if getattr(slc, k)
    }
    if basis != "either":
        params["basis"] = basis
    return params


def drill_url(base: dict[str, str], **cell: Any) -> str:
    """The drill-down list for one number: the page's filters plus the cell's coordinates."""
    params = dict(base)
    for key, value in cell.items():
        if value is None or value == "":
            continue
        params[key] = value.isoformat() if isinstance(value, date) else str(value)
    return f"{reverse('dashboards:critiques')}?{urlencode(params)}"


def _error_type_choice(request: AppRequest, types: list[ErrorType], key: str = "trend") -> ErrorType | None:
    slug = request.GET.get(key) or ""
    return next((t for t in types if t.slug == slug), None)


# --- CSV ---------------------------------------------------------------------------------


def _pct(r: dict | None, key: str = "rate") -> float | None:
    if not r or r.get(key) is None:
        return None
    return round(100 * r[key], 2)


def _csv(filename: str, header: list[str], rows: Iterable[list[Any]]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else round(v, 6) if isinstance(v, float) else v for v in row])
    return response


def _rate_cols(prefix: str) -> list[str]:
    return [f"{prefix}_k", f"{prefix}_n", f"{prefix}_rate", f"{prefix}_ci_low", f"{prefix}_ci_high"]


def _rate_vals(r: dict) -> list[Any]:
    return [r["k"], r["n"], r["rate"], r["lo"], r["hi"]]


TYPE_HEADER = [
    "error_type",
    "name",
    "steps",
    "critiques",
    *_rate_cols("agreement"),
    "reviewed",
    "awaiting",
    *_rate_cols("pbw"),
    *_rate_cols("label_wrong"),
]


def _type_csv_row(r: dict) -> list[Any]:
    return [
        r["slug"],
        r["name"],
        r["steps"],
        r["critiques"],
        *_rate_vals(r["agreement"]),
        r["reviewed"],
        r["awaiting"],
        *_rate_vals(r["pbw"]),
        *_rate_vals(r["label_wrong"]),
    ]


# --- chart specs ---------------------------------------------------------------------------


def _series(label: str, rates: list[dict], color: str, links: list[str] | None = None) -> dict[str, Any]:
    return {
        "label": label,
        "data": [_pct(r) for r in rates],
        "intervals": [None if r["rate"] is None else [_pct(r, "lo"), _pct(r, "hi")] for r in rates],
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


def _height(spec: dict[str, Any]) -> dict[str, Any]:
    """Horizontal bar charts grow with their categories so labels never overlap."""
    n = len(spec["labels"])
    if spec.get("horizontal"):
        per = 18 if spec.get("stacked") else 12 * max(1, len(spec["datasets"])) + 8
        spec["height"] = max(200, min(900, 90 + per * n))
    else:
        spec["height"] = 300
    return spec


def _decorate(obj: Any) -> Any:
    """Adds display strings to every rate dict (`pct` "12.5%", `ci` "4.1–30.2")."""
    if isinstance(obj, dict):
        if {"k", "n", "rate", "lo", "hi"} <= obj.keys():
            if obj["rate"] is not None:
                obj["pct"] = f"{100 * obj['rate']:.1f}%"
                obj["ci"] = f"{100 * obj['lo']:.1f}–{100 * obj['hi']:.1f}"
            else:
                obj["pct"], obj["ci"] = None, ""
        for value in obj.values():
            _decorate(value)
    elif isinstance(obj, list | tuple):
        for value in obj:
            _decorate(value)
    return obj


def _bar(outcomes: dict[str, int], links: dict[str, str] | None = None) -> list[dict[str, Any]]:
    total = sum(outcomes.values()) or 1
    order = ("flawed", "sound", "label_wrong", "adjudication", "partial", "open", "unqueued")
    return [
        {
            "outcome": o,
            "name": OUTCOME_NAMES[o],
            "n": outcomes[o],
            "width": round(100 * outcomes[o] / total, 2),
            "color": OUTCOME_COLORS[o],
            "link": (links or {}).get(o),
        }
        for o in order
        if outcomes.get(o)
    ]


# --- pages --------------------------------------------------------------------------------


def _render(request: AppRequest, template: str, context: dict) -> HttpResponse:
    if request.htmx and request.htmx.target == "dash-body":
        return render(request, f"{template}#body", context)
    return render(request, template, context)


def error_types(request: AppRequest):
    require_reviewer(request)
    fresh = summaries.freshness()
    form = SliceForm(request.GET or None)
    slc, basis = form.slice(), form.chosen_basis()
    base = _slice_params(slc, basis)
    types = list(ErrorType.objects.all())
    trend_type = _error_type_choice(request, types)
    run_ids = slc.run_ids()
    table = by_type.error_type_table(slc, basis, run_ids=run_ids, types=types)
    trend = by_type.weekly_trend(slc, basis, trend_type, run_ids=run_ids)
    matrix = by_type.confusion(slc, basis, trend_type, run_ids=run_ids)
    evaluation = by_type.evaluation_comparison(slc, run_ids=run_ids)

    which = request.GET.get("csv")
    if which == "types":
        rows = [_type_csv_row(r) for r in [*table["rows"], table["untyped"], table["total"]]]
        return _csv(f"error-types-{basis}.csv", ["basis", *TYPE_HEADER], ([basis, *r] for r in rows))
    if which == "trend":
        return _csv(
            "weekly-trend.csv",
            [
                "week",
                "error_type",
                "critiques",
                *_rate_cols("agreement"),
                "reviewed",
                *_rate_cols("pbw"),
                *_rate_cols("label_wrong"),
            ],
            (
                [
                    w["week"].isoformat(),
                    trend_type.slug if trend_type else "",
                    w["critiques"],
                    *_rate_vals(w["agreement"]),
                    w["reviewed"],
                    *_rate_vals(w["pbw"]),
                    *_rate_vals(w["label_wrong"]),
                ]
                for w in trend
            ),
        )
    if which == "confusion":
        return _csv(
            "confusion.csv",
            ["label", "verdict", "critiques", "reviewed", *models.OUTCOMES],
            (
                [c["label"], c["verdict"], c["n"], c["reviewed"], *c["outcomes"].values()]
                for row in matrix["rows"]
                for c in row["cells"]
            ),
        )
    if which == "evaluation" and evaluation:
        return _csv(
            "prm-vs-teacher.csv",
            [
                "error_type",
                *_rate_cols("teacher_disagreement"),
                *[col for run in evaluation["runs"] for col in _rate_cols(f"prm_error[{run.name}]")],
            ],
            (
                [
                    r["slug"],
                    *_rate_vals(r["teacher"]),
                    *[v for e in r["evals"] for v in (_rate_vals(e) if e else [None] * 5)],
                ]
                for r in evaluation["rows"]
            ),
        )

    rows = table["rows"]
    names = [r["name"] for r in rows]
    for r in [*rows, table["untyped"], table["total"]]:
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
    pbw_chart = rate_chart(
        names,
        [
            _series(
                "plausible-but-wrong",
                [r["pbw"] for r in rows],
                COLORS["bad"],
                [r["links"]["pbw_k"] for r in rows],
            ),
            _series(
                "label wrong",
                [r["label_wrong"] for r in rows],
                COLORS["neutral"],
                [r["links"]["label_wrong"] for r in rows],
            ),
        ],
        title="% of reviewed critiques (95% Wilson interval)",
    )
    agree_chart = rate_chart(
        names,
        [
            _series(
                "agreement with the label",
                [r["agreement"] for r in rows],
                COLORS["a"],
                [r["links"]["critiques"] for r in rows],
            )
        ],
        title="% of labelled critiques (95% Wilson interval)",
    )
    tbase = {**base, **({"type": trend_type.slug} if trend_type else {})}
    trend_chart = rate_chart(
        [w["week"].isoformat() for w in trend],
        [
            _series(
                "plausible-but-wrong",
                [w["pbw"] for w in trend],
                COLORS["bad"],
                [drill_url(tbase, week=w["week"], matches="1", outcome="reviewed") for w in trend],
            ),
            _series(
                "agreement with the label",
                [w["agreement"] for w in trend],
                COLORS["a"],
                [drill_url(tbase, week=w["week"]) for w in trend],
            ),
            _series(
                "label wrong",
                [w["label_wrong"] for w in trend],
                COLORS["neutral"],
                [drill_url(tbase, week=w["week"], outcome="label_wrong") for w in trend],
            ),
        ],
        title="% (95% Wilson interval)",
        horizontal=False,
        kind="line",
    )
    for w in trend:
        w["links"] = {
            "critiques": drill_url(tbase, week=w["week"]),
            "pbw_k": drill_url(tbase, week=w["week"], matches="1", outcome="flawed"),
            "reviewed": drill_url(tbase, week=w["week"], outcome="reviewed"),
        }
    cells = [c for row in matrix["rows"] for c in row["cells"]]
    for c in cells:
        c["link"] = drill_url(tbase, label=c["label"], verdict=c["verdict"])
        c["outcome_links"] = {
            o: drill_url(tbase, label=c["label"], verdict=c["verdict"], outcome=o) for o in models.OUTCOMES
        }
    confusion_chart = stacked_chart(
        [f"{c['label']} · {c['verdict']}" for c in cells if c["n"]],
        [
            {
                "label": OUTCOME_NAMES[o],
                "data": [c["outcomes"][o] for c in cells if c["n"]],
                "color": OUTCOME_COLORS[o],
                "links": [c["outcome_links"][o] for c in cells if c["n"]],
            }
            for o in ("flawed", "sound", "label_wrong", "adjudication", "partial", "open", "unqueued")
        ],
        title="critiques (label · teacher verdict)",
        horizontal=True,
    )
    eval_chart = None
    if evaluation:
        eval_chart = rate_chart(
            [r["name"] for r in evaluation["rows"]],
            [_series("teacher: verdict ≠ label", [r["teacher"] for r in evaluation["rows"]], COLORS["a"])]
            + [
                _series(
                    f"PRM: {run.name}",
                    [e or slices.rate(0, 0) for e in (r["evals"][i] for r in evaluation["rows"])],
                    [COLORS["b"], COLORS["purple"], COLORS["teal"]][i % 3],
                )
                for i, run in enumerate(evaluation["runs"])
            ],
            title="% of steps judged wrongly (95% Wilson interval)",
        )
    for c in cells:
        c["bar"] = _bar(c["outcomes"], c["outcome_links"])
    charts = {
        "pbw": pbw_chart,
        "agreement": agree_chart,
        "trend": trend_chart,
        "confusion": confusion_chart,
        "evaluation": eval_chart,
    }
    for spec in charts.values():
        if spec:
            _height(spec)
    _decorate([table, trend, evaluation["rows"] if evaluation else None])
    context = {
        "form": form,
        "slice": slc,
        "basis": basis,
        "basis_name": BASES[basis],
        "query": urlencode(request.GET),
        "base_query": urlencode(base),
        "fresh": fresh,
        "table": table,
        "types": types,
        "trend_type": trend_type,
        "trend": trend,
        "matrix": matrix,
        "evaluation": evaluation,
        "charts": charts,
        "tab": "types",
    }
    return _render(request, "dashboards/error_types.html", context)


# --- compare ------------------------------------------------------------------------------


def _side_choices(runs: list[GenerationRun]) -> list[tuple[str, list[tuple[str, str]]]]:
    teachers = {r.endpoint_id: r.endpoint.name for r in runs}
    templates = {r.template_id: str(r.template) for r in runs}
    datasets = {r.dataset_id: r.dataset.name for r in runs}
    return [
        ("Teachers", [(f"teacher:{k}", v) for k, v in sorted(teachers.items(), key=lambda kv: kv[1])]),
        (
            "Prompt templates",
            [(f"template:{k}", v) for k, v in sorted(templates.items(), key=lambda kv: kv[1])],
        ),
        ("Datasets", [(f"dataset:{k}", v) for k, v in sorted(datasets.items(), key=lambda kv: kv[1])]),
        ("Runs", [(f"run:{r.id}", _run_label(r)) for r in runs]),
    ]


def _parse_side(value: str | None, choices) -> tuple[str, int] | None:
    valid = {v for _, group in choices for v, _ in group}
    if not value or value not in valid:
        return None
    kind, pk = value.split(":")
    return kind, int(pk)


def compare(request: AppRequest):
    require_reviewer(request)
    fresh = summaries.freshness()
    form = SliceForm(request.GET or None)
    slc, basis = form.slice(), form.chosen_basis()
    choices = _side_choices(form.runs)
    a = _parse_side(request.GET.get("a"), choices)
    b = _parse_side(request.GET.get("b"), choices)
    if a is None or b is None:  # default: the first two teachers (else the two latest runs)
        for group in (choices[0][1], choices[3][1]):
            if len(group) >= 2:
                a, b = a or _parse_side(group[0][0], choices), b or _parse_side(group[1][0], choices)
                break
    same = request.GET.get("same") == "1"
    types = list(ErrorType.objects.all())
    trend_type = _error_type_choice(request, types)
    labels = {v: label for _, group in choices for v, label in group}
    result = None
    if a and b:
        result = by_type.compare(slc, a, b, basis, same_steps=same, trend_type=trend_type, types=types)
    base = _slice_params(slc, basis)
    if result:
        name_a, name_b = labels[f"{a[0]}:{a[1]}"], labels[f"{b[0]}:{b[1]}"]
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
        if request.GET.get("csv") == "compare":
            header = ["side", "slice", *TYPE_HEADER]
            out = []
            for r in [*result["rows"], result["untyped"], result["total"]]:
                out.append(["A", name_a, *_type_csv_row(r["a"])])
                out.append(["B", name_b, *_type_csv_row(r["b"])])
            return _csv("compare.csv", header, out)
        if request.GET.get("csv") == "trend":
            return _csv(
                "compare-trend.csv",
                [
                    "week",
                    *[
                        f"{s}_{c}"
                        for s in ("a", "b")
                        for c in ["critiques", *_rate_cols("pbw"), *_rate_cols("agreement")]
                    ],
                ],
                (
                    [
                        w["week"].isoformat(),
                        *[
                            v
                            for s in ("a", "b")
                            for v in [
                                w[s]["critiques"],
                                *_rate_vals(w[s]["pbw"]),
                                *_rate_vals(w[s]["agreement"]),
                            ]
                        ],
                    ]
                    for w in result["trend"]
                ),
            )
        rows = result["rows"]
        names = [r["name"] for r in rows]
        result["charts"] = {
            "pbw": rate_chart(
                names,
                [
                    _series(
                        f"A: {name_a}",
                        [r["a"]["pbw"] for r in rows],
                        COLORS["a"],
                        [r["a"]["links"]["pbw_n"] for r in rows],
                    ),
                    _series(
                        f"B: {name_b}",
                        [r["b"]["pbw"] for r in rows],
                        COLORS["b"],
                        [r["b"]["links"]["pbw_n"] for r in rows],
                    ),
                ],
                title="plausible-but-wrong, % of reviewed label-matching critiques (95% interval)",
            ),
            "agreement": rate_chart(
                names,
                [
                    _series(
                        f"A: {name_a}",
                        [r["a"]["agreement"] for r in rows],
                        COLORS["a"],
                        [r["a"]["links"]["critiques"] for r in rows],
                    ),
                    _series(
                        f"B: {name_b}",
                        [r["b"]["agreement"] for r in rows],
                        COLORS["b"],
                        [r["b"]["links"]["critiques"] for r in rows],
                    ),
                ],
                title="agreement with the label, % of labelled critiques (95% interval)",
            ),
            "trend": rate_chart(
                [w["week"].isoformat() for w in result["trend"]],
                [
                    _series(f"A: {name_a}", [w["a"]["pbw"] for w in result["trend"]], COLORS["a"]),
                    _series(f"B: {name_b}", [w["b"]["pbw"] for w in result["trend"]], COLORS["b"]),
                ],
                title="plausible-but-wrong % per week (95% interval)",
                horizontal=False,
                kind="line",
            ),
        }
        result["name_a"], result["name_b"] = name_a, name_b
        for r in [*result["rows"], result["untyped"], result["total"]]:
            r["pbw_diff_pct"] = None if r["pbw_diff"] is None else f"{100 * r['pbw_diff']:+.1f} pts"
        for spec in result["charts"].values():
            _height(spec)
        _decorate(result)
    context = {
        "form": form,
        "basis": basis,
        "basis_name": BASES[basis],
        "choices": choices,
        "a": f"{a[0]}:{a[1]}" if a else "",
        "b": f"{b[0]}:{b[1]}" if b else "",
        "same": same,
        "same_possible": bool(a and b and a[0] != "dataset" and b[0] != "dataset"),
        "types": types,
        "trend_type": trend_type,
        "result": result,
        "extra_rows": [result["untyped"], result["total"]] if result else [],
        "query": urlencode(request.GET),
        "fresh": fresh,
        "tab": "compare",
    }
    return _render(request, "dashboards/compare.html", context)


# --- review operations ----------------------------------------------------------------------


def review_ops(request: AppRequest):
    require_reviewer(request)
    fresh = summaries.freshness()
    form = SliceForm(request.GET or None)
    slc = form.slice()
    base = _slice_params(slc, "either")
    try:
        period = max(1, min(52, int(request.GET.get("period") or 8)))
    except ValueError:
        period = 8
    matched_only = request.GET.get("signals") != "all"
    progress = operations.queue_progress(slc)
    activity = operations.reviewer_activity(slc, weeks=period)
    # Blind double review: pair agreement moves with each decision (and anyone can refresh),
    # so it would tell a reviewer whether the other one agreed. Admins only.
    pairs = operations.reviewer_pairs(slc) if request.user.is_staff else []
    backlog = operations.adjudication_backlog(slc)
    signals = operations.signal_table(slc, matched_only=matched_only)

    which = request.GET.get("csv")
    if which == "progress":
        return _csv(
            "queue-progress.csv",
            ["queue", "critiques", "reviewed", "awaiting", *models.OUTCOMES],
            (
                [q["queue"], q["critiques"], q["reviewed"], q["awaiting"], *q["outcomes"].values()]
                for q in progress
            ),
        )
    if which == "reviewers":
        return _csv(
            "reviewers.csv",
            [
                "reviewer",
                "reviews",
                "per_week",
                *Review.Decision.values,
                "undone",
                "median_s",
                "p25_s",
                "p75_s",
                "mean_s",
                *[f"week_{w.isoformat()}" for w in activity["weeks"]],
            ],
            (
                [
                    r["reviewer"],
                    r["reviews"],
                    r["per_week"],
                    *r["decisions"].values(),
                    r["undone"],
                    r["median_s"],
                    r["p25_s"],
                    r["p75_s"],
                    r["mean_s"],
                    *r["weeks"],
                ]
                for r in activity["rows"]
            ),
        )
    if which == "pairs":
        return _csv(
            "kappa.csv",
            ["reviewer_a", "reviewer_b", "critiques", "percent_agree", "kappa_decisions", "kappa_tags"],
            (
                [p["a"], p["b"], p["items"], p["percent_agree"], p["kappa_decisions"], p["kappa_tags"]]
                for p in pairs
            ),
        )
    if which == "signals":
        return _csv(
            "signals.csv",
            [
                "signal",
                "fired",
                "fired_reviewed",
                "tp",
                "fp",
                "fn",
                *_rate_cols("precision"),
                *_rate_cols("recall"),
                "lift",
            ],
            (
                [
                    s["signal"],
                    s["fired"],
                    s["fired_reviewed"],
                    s["tp"],
                    s["fp"],
                    s["fn"],
                    *_rate_vals(s["precision"]),
                    *_rate_vals(s["recall"]),
                    s["lift"],
                ]
                for s in signals["rows"]
            ),
        )
    if which == "backlog":
        keys = [
            "n",
            "label_disputes",
            "disagreements",
            "under_1d",
            "d1_7",
            "over_7d",
            "oldest_days",
            "decided_7d",
        ]
        return _csv("adjudication-backlog.csv", keys, [[backlog[k] for k in keys]])

    queue_names = {"matched": "matched", "disagreed": "disagreed", "flagged": "flagged", "other": None}
    for q in progress:
        q["queue_url"] = (
            f"{reverse('review:queue')}?queue={queue_names[q['queue']]}" if queue_names[q["queue"]] else None
        )
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
    charts = {
        "progress": stacked_chart(
            [q["name"] for q in progress],
            [
                {
                    "label": OUTCOME_NAMES[o],
                    "data": [q["outcomes"][o] for q in progress],
                    "color": OUTCOME_COLORS[o],
                    "links": [q["links"]["reviewed"] for q in progress],
                }
                for o in ("sound", "flawed", "label_wrong", "adjudication", "partial", "open", "unqueued")
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
                    "color": _palette(i),
                    "links": [r["link"]] * len(r["weeks"]),
                }
                for i, r in enumerate(activity["rows"])
            ],
            title="reviews per week",
        ),
        "time": {
            "kind": "bar",
            "horizontal": True,
            "labels": [r["reviewer"] for r in activity["rows"]],
            "axis": "seconds on task: median, whiskers = quartiles",
            "percent": False,
            "max": None,
            "datasets": [
                {
                    "label": "median time on task (s)",
                    "color": COLORS["teal"],
                    "data": [r["median_s"] for r in activity["rows"]],
                    "intervals": [
                        None if r["p25_s"] is None else [r["p25_s"], r["p75_s"]] for r in activity["rows"]
                    ],
                    "links": [r["link"] for r in activity["rows"]],
                    "unit": " s",
                }
            ],
        },
        "signals": rate_chart(
            [s["title"] for s in signals["rows"]],
            [
                _series(
                    "precision (flawed / fired)",
                    [s["precision"] for s in signals["rows"]],
                    COLORS["bad"],
                    [s["links"]["fired_reviewed"] for s in signals["rows"]],
                ),
                _series(
                    "recall (share of flawed caught)",
                    [s["recall"] for s in signals["rows"]],
                    COLORS["a"],
                    [s["links"]["tp"] for s in signals["rows"]],
                ),
            ],
            title="% of reviewed critiques (95% Wilson interval)",
        ),
        "kappa": {
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
        },
        "backlog": {
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
        },
    }
    for spec in charts.values():
        _height(spec)
    _decorate([progress, signals])
    context = {
        "form": form,
        "period": period,
        "periods": [4, 8, 12, 26, 52],
        "matched_only": matched_only,
        "progress": progress,
        "activity": activity,
        "pairs": pairs,
        "backlog": backlog,
        "signals": signals,
        "charts": charts,
        "query": urlencode(request.GET),
        "fresh": fresh,
        "tab": "reviews",
        "adjudication_url": drill_url(base, outcome="adjudication"),
    }
    return _render(request, "dashboards/reviews.html", context)


def _palette(i: int) -> str:
    order = ["a", "b", "teal", "purple", "ok", "neutral", "bad", "muted"]
    return COLORS[order[i % len(order)]]


# --- drill-down -------------------------------------------------------------------------------


def _drill_from(request: AppRequest, form: SliceForm) -> Drill:
    g = request.GET
    week = None
    if g.get("week"):
        try:
            week = slices.monday(date.fromisoformat(g["week"]))
        except ValueError:
            week = None
    pair = tuple(g["pair"].split(",", 1)) if "," in g.get("pair", "") else None
    same = None
    if g.get("same"):
        try:
            sides = [s.split(":") for s in g["same"].split(",")]
            same = tuple((k, int(pk)) for k, pk in sides)
            if len(same) != 2 or any(k not in slices.SLICE_KINDS for k, _ in same):
                same = None
        except ValueError:
            same = None
    outcome = g.get("outcome", "")
    return Drill(
        slice=form.slice(),
        basis=form.chosen_basis(),
        type=g.get("type", "")
        if g.get("type", "") in {"none", *ErrorType.objects.values_list("slug", flat=True)}
        else "",
        label=g.get("label", "") if g.get("label") in slices.LABELS else "",
        verdict=g.get("verdict", "") if g.get("verdict") in slices.VERDICTS else "",
        matches=g.get("matches", "") if g.get("matches") in ("1", "0", "null", "labelled") else "",
        outcome=outcome if outcome in drill.OUTCOME_Q else "",
        week=week,
        signal=g.get("signal", "")[:40],
        reviewer=g.get("reviewer", "")[:150],
        pair=pair,
        same=same,
    )


def _describe(d: Drill) -> list[str]:
    parts = []
    if d.type == "none":
        parts.append(f"no error type ({BASES[d.basis]})")
    elif d.type:
        parts.append(f"error type {d.type} ({BASES[d.basis]})")
    if d.label:
        parts.append(f"label {d.label}")
    if d.verdict:
        parts.append(f"teacher verdict {d.verdict}")
    if d.matches:
        parts.append(
            {
                "1": "verdict matches the label",
                "0": "verdict disagrees with the label",
                "null": "no label or unparseable",
                "labelled": "labelled step, parsed verdict",
            }[d.matches]
        )
    if d.outcome:
        parts.append(
            {"reviewed": "reviewed (settled)", "awaiting": "awaiting a 2nd review or adjudication"}.get(
                d.outcome, OUTCOME_NAMES.get(d.outcome, d.outcome)
            )
        )
    if d.week:
        parts.append(f"week of {d.week.isoformat()}")
    if d.signal:
        parts.append(f"signal {d.signal}")
    if d.reviewer:
        parts.append(f"reviewed by {d.reviewer}")
    if d.pair:
        parts.append(f"reviewed by both {d.pair[0]} and {d.pair[1]}")
    if d.same:
        parts.append("steps critiqued by both compared slices")
    return parts


def critiques(request: AppRequest):
    """The critiques behind a dashboard number, newest first, 50 a page (no total count:
    the number on the dashboard is the count)."""
    require_reviewer(request)
    form = SliceForm(request.GET or None)
    d = _drill_from(request, form)
    try:
        page = max(1, int(request.GET.get("page") or 1))
    except ValueError:
        page = 1
    qs = drill.drill_queryset(d)
    if not request.user.is_staff:
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
    start = (page - 1) * PAGE_SIZE
    rows = list(qs[start : start + PAGE_SIZE + 1])
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
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
    params = request.GET.copy()
    params.pop("page", None)
    query = params.urlencode()
    context = {
        "form": form,
        "drill": d,
        "described": _describe(d) + form.described(),
        "rows": rows,
        "page": page,
        "has_next": has_next,
        "query": query,
        "tab": "",
    }
    return render(request, "dashboards/critiques.html", context)


# --- refresh ---------------------------------------------------------------------------------


@require_POST
def refresh(request: AppRequest):
    """Rebuild the summaries now (small installs) or queue the rebuild (large ones)."""
    require_reviewer(request)
    small = Critique.objects.order_by()[: summaries.sync_limit() + 1].count() <= summaries.sync_limit()
    if small:
        summaries.refresh_now(request.user)
    else:
        summaries.request_refresh(request.user)
    back = request.POST.get("next") or ""
    if not back.startswith("/dashboards/"):
        back = reverse("dashboards:error_types")
    return redirect(back)


def refresh_status(request: AppRequest):
    """Polled while a rebuild is pending: the page reloads when fresher numbers exist."""
    require_reviewer(request)
    fresh = summaries.freshness(auto=False)
    shown = request.GET.get("shown") or ""
    done = fresh["done"]
    if done is not None and str(done.id) != shown:
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    response = render(
        request, "dashboards/_freshness.html", {"fresh": fresh, "next": request.GET.get("next", "")}
    )
    return response if fresh["pending"] else HttpResponseStopPolling(response.content)
