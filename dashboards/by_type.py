"""Error-type numbers: the per-type table, weekly trends, confusion, side-by-side
comparison and evaluation runs next to the teacher (from the summary tables)."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from datetime import date, timedelta
from typing import Any, Literal, NotRequired, TypedDict

from django.db.models import (
    Q,
    QuerySet,
    Sum,
)
from django.utils import timezone

from annotations.models import ErrorType
from evaluation.models import EvaluationDataset, EvaluationRun
from inference.models import GenerationRun

from .models import (
    OUTCOMES,
    REVIEWED,
    DashboardCell,
    DashboardSteps,
)
from .slices import (
    LABELS,
    VERDICTS,
    VIA,
    RateDict,
    Slice,
    Summary,
    Tally,
    cohort_q,
    label_group,
    monday,
    rate,
    run_q,
    taxonomy,
)

log = logging.getLogger(__name__)


# --- the shapes (built once here; `links` makes linked copies) -----------------------------


class TypeRow(Summary):
    """An error type's numbers; the "no error type" and total rows lack the type's fields."""

    slug: str  # "none" for the untyped row, "" for the total
    name: str
    steps: int | None
    id: NotRequired[int]
    dimension: NotRequired[str]
    definition: NotRequired[str]


class TypeTable(TypedDict):
    basis: str
    rows: list[TypeRow]
    untyped: TypeRow
    total: TypeRow


class Week(Summary):
    week: date | None  # None: the empty side of a compare week


class ConfusionCell(TypedDict):
    label: str
    verdict: str
    matches: bool | None
    n: int
    reviewed: int
    outcomes: dict[str, int]
    flawed: RateDict


class ConfusionRow(TypedDict):
    label: str
    cells: list[ConfusionCell]


class Confusion(TypedDict):
    rows: list[ConfusionRow]
    verdicts: tuple[str, ...]


class CompareRow(TypedDict):
    slug: str
    name: str
    definition: str
    a: TypeRow
    b: TypeRow
    pbw_diff: float | None
    pbw_diff_pct: str | None  # "+12.5 pts"


class CompareWeek(TypedDict):
    week: date
    a: Week
    b: Week


class Comparison(TypedDict):
    rows: list[CompareRow]
    untyped: CompareRow
    total: CompareRow
    runs_a: list[int]
    runs_b: list[int]
    same_steps: bool
    trend: list[CompareWeek]


class EvalRate(RateDict):
    prmscore: Any  # as the evaluation stored it


class EvalRow(TypedDict):
    slug: str
    name: str
    definition: str
    teacher: RateDict
    critiques: int
    evals: list[EvalRate | None]


class EvaluationComparison(TypedDict):
    runs: list[Any]  # EvaluationRun (imported lazily: evaluation is a later app)
    rows: list[EvalRow]
    teacher_scope: str
    dataset_ids: list[int]


# --- error types ----------------------------------------------------------------------


# The functions below take `run_ids=False` to mean "resolve them from the slice"; a view
# that calls several passes the list once (None: every run).


def _cells(
    slc: Slice, run_ids: list[int] | None, since: date | None, cohort: Q | None
) -> QuerySet[DashboardCell]:
    qs = DashboardCell.objects.filter(run_q(run_ids), slc.scope_q())
    if since:
        qs = qs.filter(week__gte=since)
    if cohort is not None:
        qs = qs.filter(cohort)
    return qs.order_by()


def error_type_table(
    slc: Slice,
    basis: str = "either",
    *,
    run_ids: list[int] | None | Literal[False] = False,
    cohort: Q | None = None,
    types: list[ErrorType] | None = None,
    today: date | None = None,
) -> TypeTable:
    """One row per error type of the taxonomy (taxonomy order), the "no error type"
    row and the total: steps, critiques, agreement, reviewed, PBW and label-wrong rates."""
    via = VIA[basis]
    run_ids = slc.run_ids() if run_ids is False else run_ids
    since = slc.since(today)
    types = taxonomy() if types is None else types
    tallies: dict[int, Tally] = defaultdict(Tally)
    total, untyped = Tally(), Tally()
    rows = (
        _cells(slc, run_ids, since, cohort)
        .values_list("error_type_id", "via", "matches", "outcome")
        .annotate(n=Sum("n"))
    )
    for type_id, row_via, matches, outcome, n in rows:
        if type_id is None:
            total.add(matches, outcome, n)
            if row_via not in via:
                untyped.add(matches, outcome, n)
        elif row_via in via:
            tallies[type_id].add(matches, outcome, n)
    steps_qs = DashboardSteps.objects.filter(run_q(run_ids), slc.steps_q(), basis__in=[basis, "all"])
    if since:
        steps_qs = steps_qs.filter(week__gte=since)
    if cohort is not None:
        steps_qs = steps_qs.filter(cohort)
    steps = dict(steps_qs.order_by().values_list("error_type_id").annotate(n=Sum("n_steps")))
    out: list[TypeRow] = [
        {
            "id": et.id,
            "slug": et.slug,
            "name": et.name,
            "dimension": et.dimension,
            "definition": et.definition,
            "steps": steps.get(et.id, 0),
            **tallies[et.id].summary(),
        }
        for et in types
    ]
    return {
        "basis": basis,
        "rows": out,
        "untyped": {"slug": "none", "name": "No error type", "steps": None, **untyped.summary()},
        "total": {"slug": "", "name": "All critiques", "steps": steps.get(None, 0), **total.summary()},
    }


def weekly_trend(
    slc: Slice,
    basis: str = "either",
    error_type: ErrorType | None = None,
    *,
    run_ids: list[int] | None | Literal[False] = False,
    cohort: Q | None = None,
    today: date | None = None,
) -> list[Week]:
    """Per week (Monday, UTC) of the critiques' creation: agreement, PBW and label-wrong
    rates. Weeks without critiques inside the range are listed with zero counts."""
    run_ids = slc.run_ids() if run_ids is False else run_ids
    since = slc.since(today)
    qs = _cells(slc, run_ids, since, cohort)
    if error_type is None:
        qs = qs.filter(error_type__isnull=True)
    else:
        qs = qs.filter(error_type=error_type, via__in=VIA[basis])
    weeks: dict[date, Tally] = defaultdict(Tally)
    for week, matches, outcome, n in qs.values_list("week", "matches", "outcome").annotate(n=Sum("n")):
        weeks[week].add(matches, outcome, n)
    if not weeks:
        return []
    first = since or min(weeks)
    last = max(weeks)
    if since:
        last = max(last, monday(today or timezone.now().date()))
    out: list[Week] = []
    week = first
    while week <= last:
        out.append({"week": week, **weeks[week].summary()})
        week += timedelta(weeks=1)
    return out


def confusion(
    slc: Slice,
    basis: str = "either",
    error_type: ErrorType | None = None,
    *,
    run_ids: list[int] | None | Literal[False] = False,
    today: date | None = None,
) -> Confusion:
    """Label x teacher verdict, each cell split by review outcome."""
    run_ids = slc.run_ids() if run_ids is False else run_ids
    qs = _cells(slc, run_ids, slc.since(today), None)
    if error_type is None:
        qs = qs.filter(error_type__isnull=True)
    else:
        qs = qs.filter(error_type=error_type, via__in=VIA[basis])
    grid: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for label, verdict, outcome, n in qs.values_list("label", "verdict", "outcome").annotate(n=Sum("n")):
        grid[(label_group(label), verdict)][outcome] += n
    rows: list[ConfusionRow] = []
    for label in LABELS:
        cells: list[ConfusionCell] = []
        for verdict in VERDICTS:
            c = grid[(label, verdict)]
            n = sum(c.values())
            reviewed = sum(c[o] for o in REVIEWED)
            matches = (
                None
                if label == "other" or verdict == "unparseable"
                else (label == "correct") == (verdict == "yes")
            )
            cells.append(
                {
                    "label": label,
                    "verdict": verdict,
                    "matches": matches,
                    "n": n,
                    "reviewed": reviewed,
                    "outcomes": {o: c[o] for o in OUTCOMES},
                    "flawed": rate(c["flawed"], reviewed),
                }
            )
        rows.append({"label": label, "cells": cells})
    return {"rows": rows, "verdicts": VERDICTS}


def compare(
    slc: Slice,
    a: tuple[str, int],
    b: tuple[str, int],
    basis: str = "either",
    *,
    same_steps: bool = False,
    trend_type: ErrorType | None = None,
    types: list[ErrorType] | None = None,
    today: date | None = None,
) -> Comparison:
    """Two slices side by side (e.g. two teachers), optionally on the steps both critiqued."""
    sa, sb = slc.side(*a), slc.side(*b)
    ra, rb = sa.run_ids() or [], sb.run_ids() or []
    cohort = cohort_q(ra, rb) if same_steps else None
    types = taxonomy() if types is None else types
    ta = error_type_table(sa, basis, run_ids=ra, cohort=cohort, types=types, today=today)
    tb = error_type_table(sb, basis, run_ids=rb, cohort=cohort, types=types, today=today)
    rows: list[CompareRow] = []
    for row_a, row_b in zip(
        [*ta["rows"], ta["untyped"], ta["total"]], [*tb["rows"], tb["untyped"], tb["total"]], strict=True
    ):
        diff = None
        if row_a["pbw"]["rate"] is not None and row_b["pbw"]["rate"] is not None:
            diff = row_b["pbw"]["rate"] - row_a["pbw"]["rate"]
        rows.append(
            {
                "slug": row_a["slug"],
                "name": row_a["name"],
                "definition": row_a.get("definition", ""),
                "a": row_a,
                "b": row_b,
                "pbw_diff": diff,
                "pbw_diff_pct": None if diff is None else f"{100 * diff:+.1f} pts",
            }
        )
    trend_a = weekly_trend(sa, basis, trend_type, run_ids=ra, cohort=cohort, today=today)
    trend_b = weekly_trend(sb, basis, trend_type, run_ids=rb, cohort=cohort, today=today)
    return {
        "rows": rows[:-2],
        "untyped": rows[-2],
        "total": rows[-1],
        "runs_a": ra,
        "runs_b": rb,
        "same_steps": same_steps,
        "trend": _align_weeks(trend_a, trend_b),
    }


def _align_weeks(ta: list[Week], tb: list[Week]) -> list[CompareWeek]:
    by_a = {r["week"]: r for r in ta if r["week"]}
    by_b = {r["week"]: r for r in tb if r["week"]}
    weeks = sorted(by_a.keys() | by_b.keys())
    if not weeks:
        return []
    out: list[CompareWeek] = []
    week = weeks[0]
    empty: Week = {"week": None, **Tally().summary()}
    while week <= weeks[-1]:
        out.append({"week": week, "a": by_a.get(week, empty), "b": by_b.get(week, empty)})
        week += timedelta(weeks=1)
    return out


# --- evaluation runs next to the teacher ------------------------------------------------


def evaluation_comparison(
    slc: Slice,
    *,
    run_ids: list[int] | None | Literal[False] = False,
    limit: int = 3,
    today: date | None = None,
) -> EvaluationComparison | None:
    """PRM step error rate per PRMBench class (latest succeeded PRMBench evaluation per
    name, up to `limit`) next to the teacher's disagreement rate per class. None when the
    evaluation models are absent or no PRMBench evaluation has succeeded."""
    runs: list[EvaluationRun] = []
    seen: set[str] = set()
    for run in (
        EvaluationRun.objects.filter(benchmark="prmbench", status="succeeded")
        .only("id", "uuid", "name", "results", "created_at", "threshold")
        .order_by("-created_at")[:50]
    ):
        classes = ((run.results or {}).get("prmbench") or {}).get("classes")
        if run.name in seen or not isinstance(classes, dict):
            continue
        seen.add(run.name)
        runs.append(run)
        if len(runs) == limit:
            break
    if not runs:
        return None
    dataset_ids = sorted(
        set(EvaluationDataset.objects.filter(run__in=runs).values_list("dataset_id", flat=True))
    )
    # The teacher on the evaluated datasets (class basis: PRMBench classes are solution
    # classes); the whole slice when the teacher never critiqued those datasets.
    run_ids = slc.run_ids() if run_ids is False else run_ids
    scoped = list(
        GenerationRun.objects.filter(run_q(run_ids, "id"), dataset_id__in=dataset_ids).values_list(
            "id", flat=True
        )
    )
    teacher_scope = "evaluated datasets" if scoped else "whole slice"
    teacher = error_type_table(slc, "class", run_ids=scoped or run_ids, today=today)
    rows: list[EvalRow] = []
    for row in teacher["rows"]:
        evals: list[EvalRate | None] = []
        for run in runs:
            c = run.results["prmbench"]["classes"].get(row["slug"])
            if not c:
                evals.append(None)
                continue
            n = int(c.get("tp", 0)) + int(c.get("fn", 0)) + int(c.get("fp", 0)) + int(c.get("tn", 0))
            evals.append(
                {**rate(int(c.get("fp", 0)) + int(c.get("fn", 0)), n), "prmscore": c.get("prmscore")}
            )
        rows.append(
            {
                "slug": row["slug"],
                "name": row["name"],
                "definition": row.get("definition", ""),
                "teacher": row["disagreement"],
                "critiques": row["critiques"],
                "evals": evals,
            }
        )
    return {"runs": runs, "rows": rows, "teacher_scope": teacher_scope, "dataset_ids": dataset_ids}
