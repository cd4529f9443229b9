"""Which critiques a dashboard shows: its GET parameters parsed (and put into words).

The slice form is shared by every page; compare adds two sides, review operations a
period, the drill-down page a cell's coordinates (`drill_from`). Invalid values fall
back to "all" rather than erroring: these are links people edit and share.
"""

from __future__ import annotations

from datetime import date
from typing import Any, cast

from django import forms
from django.http import QueryDict

from annotations.models import ErrorType
from inference.models import GenerationRun
from rprm_web import inputs

from . import drill, slices
from .drill import Drill
from .slices import BASES, OUTCOME_NAMES, Slice

WEEK_CHOICES = [
    ("", "all time"),
    ("4", "last 4 weeks"),
    ("8", "last 8 weeks"),
    ("12", "last 12 weeks"),
    ("26", "last 26 weeks"),
    ("52", "last 52 weeks"),
]
PERIODS = [4, 8, 12, 26, 52]


def run_label(run: GenerationRun) -> str:
    return f"#{run.id} {run.endpoint.name} · {run.template} · {run.dataset.name}"


# Teacher critiques by default: the dashboards audit the teacher (seed runs and imported
# critiques); student samples only when asked.
ROLE_CHOICES = [("", "Teacher critiques"), ("student", "Student samples"), ("all", "All critiques")]


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
    role = forms.ChoiceField(choices=ROLE_CHOICES, required=False, label="Critiques")

    def __init__(self, *args: Any, runs: list[GenerationRun] | None = None, **kwargs: Any) -> None:
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
            "run": {r.id: run_label(r) for r in runs},
        }
        empty = {
            "teacher": "All teachers",
            "template": "All templates",
            "dataset": "All datasets",
            "run": "All runs",
        }
        for key, names in self.names.items():
            ordered = names.items() if key == "run" else sorted(names.items(), key=lambda kv: kv[1])
            cast(forms.ChoiceField, self.fields[key]).choices = [("", empty[key]), *ordered]

    def clean_basis(self) -> str:
        return self.cleaned_data.get("basis") or "either"

    def role_runs(self) -> tuple[int, ...] | None:
        """The runs of the chosen role, from the runs already loaded (no query); None when
        the role leaves no run out (then every query stays unfiltered)."""
        role = (self.cleaned_data.get("role") if self.is_bound and self.is_valid() else "") or "teacher"
        if role == "all":
            return None
        wanted = [
            r.id for r in self.runs if (r.kind == GenerationRun.Kind.STUDENT_SAMPLE) == (role == "student")
        ]
        return None if len(wanted) == len(self.runs) else tuple(wanted)

    def slice(self, *, blind: bool = False) -> Slice:
        """The chosen slice; `blind` for a reviewer's page (see `Slice`)."""
        if not self.is_valid():
            return Slice(blind=blind, role_runs=self.role_runs())
        role = self.cleaned_data.get("role") or ""
        d = self.cleaned_data
        return Slice(
            teacher=d["teacher"],
            template=d["template"],
            dataset=d["dataset"],
            run=d["run"],
            weeks=d["weeks"],
            blind=blind,
            role_runs=self.role_runs(),
            role=role,
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


def slice_params(slc: Slice, basis: str) -> dict[str, str]:
    """The slice as query parameters: the base of every drill-down link on a page."""
    params = {
        k: str(getattr(slc, k))
        for k in ("teacher", "template", "dataset", "run", "weeks", "role")
        if getattr(slc, k)
    }
    if basis != "either":
        params["basis"] = basis
    return params


def error_type_choice(get: QueryDict, types: list[ErrorType], key: str = "trend") -> ErrorType | None:
    slug = get.get(key) or ""
    return next((t for t in types if t.slug == slug), None)


def period(get: QueryDict, default: int = 8) -> int:
    """Review operations: weeks of reviewer activity, 1–52."""
    try:
        return max(1, min(52, int(get.get("period") or default)))
    except ValueError:
        return default


def page_number(get: QueryDict) -> int:
    return inputs.page_number(get.get("page"))


# --- compare: two sides -------------------------------------------------------------


Side = tuple[str, int]


def side_choices(runs: list[GenerationRun]) -> list[tuple[str, list[tuple[str, str]]]]:
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
        ("Runs", [(f"run:{r.id}", run_label(r)) for r in runs]),
    ]


def parse_side(value: str | None, choices: list[tuple[str, list[tuple[str, str]]]]) -> Side | None:
    valid = {v for _, group in choices for v, _ in group}
    if not value or value not in valid:
        return None
    kind, pk = value.split(":")
    return kind, int(pk)


def sides(
    get: QueryDict, choices: list[tuple[str, list[tuple[str, str]]]]
) -> tuple[Side | None, Side | None]:
    """Sides A and B; by default the first two teachers (else the two latest runs)."""
    a = parse_side(get.get("a"), choices)
    b = parse_side(get.get("b"), choices)
    if a is None or b is None:
        for group in (choices[0][1], choices[3][1]):
            if len(group) >= 2:
                a, b = a or parse_side(group[0][0], choices), b or parse_side(group[1][0], choices)
                break
    return a, b


def side_key(side: Side | None) -> str:
    return f"{side[0]}:{side[1]}" if side else ""


# --- drill-down: a cell's coordinates -----------------------------------------------


def _param(get: QueryDict, key: str) -> str:
    value = get.get(key, "")
    return value if isinstance(value, str) else ""


def drill_from(get: QueryDict, form: SliceForm, *, blind: bool = False) -> Drill:
    """The drill-down page's parameters; anything unknown is dropped."""
    g = get
    week = None
    if g.get("week"):
        try:
            week = slices.monday(date.fromisoformat(_param(g, "week")))
        except ValueError:
            week = None
    pair_ab = _param(g, "pair").split(",", 1)
    pair = (pair_ab[0], pair_ab[1]) if len(pair_ab) == 2 else None
    same = None
    if g.get("same"):
        try:
            sides_ = [(k, inputs.db_id(pk)) for k, pk in (s.split(":") for s in _param(g, "same").split(","))]
            if len(sides_) == 2 and all(k in slices.SLICE_KINDS for k, _ in sides_):
                same = (sides_[0], sides_[1])
        except ValueError:
            same = None
    outcome = g.get("outcome", "")
    return Drill(
        slice=form.slice(blind=blind),
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


def drill_controls(d: Drill, types: list[ErrorType]) -> dict[str, Any]:
    """The drill-down's own filter controls (besides the slice form): the choices of each
    coordinate, and the coordinates without a control kept as hidden fields."""
    outcomes = [("reviewed", OUTCOME_WORDS["reviewed"]), ("awaiting", OUTCOME_WORDS["awaiting"])]
    hidden = {
        "week": d.week.isoformat() if d.week else "",
        "signal": d.signal,
        "pair": ",".join(d.pair) if d.pair else "",
        "same": ",".join(f"{k}:{pk}" for k, pk in d.same) if d.same else "",
    }
    return {
        "types": [("none", "no error type"), *((t.slug, t.name) for t in types)],
        "outcomes": [*OUTCOME_NAMES.items(), *outcomes],
        "labels": [(x, x) for x in slices.LABELS],
        "verdicts": [(x, x) for x in slices.VERDICTS],
        "matches": list(MATCHES_WORDS.items()),
        "hidden": [(k, v) for k, v in hidden.items() if v],
    }


MATCHES_WORDS = {
    "1": "verdict matches the label",
    "0": "verdict disagrees with the label",
    "null": "no label or unparseable",
    "labelled": "labelled step, parsed verdict",
}
OUTCOME_WORDS = {"reviewed": "reviewed (settled)", "awaiting": "awaiting a 2nd review or adjudication"}


def describe(d: Drill) -> list[str]:
    """The drill-down's coordinates in words (the page's heading)."""
    parts: list[Any] = []
    if d.type == "none":
        parts.append(f"no error type ({BASES[d.basis]})")
    elif d.type:
        parts.append(f"error type {d.type} ({BASES[d.basis]})")
    if d.label:
        parts.append(f"label {d.label}")
    if d.verdict:
        parts.append(f"teacher verdict {d.verdict}")
    if d.matches:
        parts.append(MATCHES_WORDS[d.matches])
    if d.outcome:
        parts.append(OUTCOME_WORDS.get(d.outcome, OUTCOME_NAMES.get(d.outcome, d.outcome)))
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
