"""Error-type audit dashboards (issue 7): the numbers, as plain dicts and lists.

Where does the teacher reason wrongly while agreeing with the label, and is it
getting better? Everything here answers from the summary tables
(annotations/dashboard_models.py), rebuilt by `refresh_summaries`, except the
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
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import reduce
from itertools import repeat
from operator import or_
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    Aggregate,
    Avg,
    Case,
    Count,
    Exists,
    F,
    FloatField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    When,
)
from django.db.models.expressions import RawSQL
from django.utils import timezone

from inference.core.metrics import cohen_kappa, wilson_interval
from inference.core.stats import percentile
from inference.models import Critique, GenerationRun

from .dashboard_models import (
    OUTCOMES,
    REVIEWED,
    DashboardCell,
    DashboardPair,
    DashboardQueue,
    DashboardRefresh,
    DashboardReviewRun,
    DashboardSignal,
    DashboardSteps,
)
from .models import Adjudication, ErrorType, LabelCorrection, Review, ReviewItem, Step

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


def rate(k: int, n: int) -> dict[str, Any]:
    """k of n with its Wilson 95% interval; rate and interval are None when n == 0."""
    if n == 0:
        return {"k": k, "n": 0, "rate": None, "lo": None, "hi": None}
    lo, hi = wilson_interval(k, n)
    return {"k": k, "n": n, "rate": k / n, "lo": lo, "hi": hi}


def _label_group(label: str) -> str:
    return label if label in ("correct", "incorrect") else "other"


@dataclass(frozen=True)
class Slice:
    """Which critiques: by teacher (endpoint id), template, dataset, run, last N weeks."""

    teacher: int | None = None
    template: int | None = None
    dataset: int | None = None
    run: int | None = None
    weeks: int | None = None

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
            return None
        return list(GenerationRun.objects.filter(**filters).order_by("id").values_list("id", flat=True))

    def since(self, today: date | None = None) -> date | None:
        if not self.weeks:
            return None
        today = today or timezone.now().date()
        return monday(today) - timedelta(weeks=self.weeks - 1)

    def side(self, kind: str, pk: int) -> Slice:
        """This slice narrowed to one teacher / template / dataset / run (a compare side)."""
        if kind not in SLICE_KINDS:
            raise ValueError(f"unknown slice kind {kind!r}")
        return replace(self, **{kind: pk})


def _run_q(run_ids: list[int] | None, field_name: str = "run_id") -> Q:
    return Q() if run_ids is None else Q(**{f"{field_name}__in": run_ids})


def cohort_q(a_runs: list[int], b_runs: list[int]) -> Q:
    """Summary rows whose step was critiqued by a run of each side ("the same steps")."""

    def any_of(runs: list[int]) -> Q:
        return reduce(or_, (Q(runs__contains=f",{r},") for r in runs), Q(pk__in=[]))

    return any_of(a_runs) & any_of(b_runs)


@dataclass
class Tally:
    """Counts of one group of critiques, folded from summary rows."""

    critiques: int = 0
    labelled: int = 0
    agree: int = 0
    outcomes: Counter = field(default_factory=Counter)
    matched: Counter = field(default_factory=Counter)

    def add(self, matches: bool | None, outcome: str, n: int) -> None:
        self.critiques += n
        self.outcomes[outcome] += n
        if matches is not None:
            self.labelled += n
            if matches:
                self.agree += n
                self.matched[outcome] += n

    def summary(self) -> dict[str, Any]:
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


def _types() -> list[ErrorType]:
    return list(ErrorType.objects.all())


# --- error types ----------------------------------------------------------------------


# The functions below take `run_ids=False` to mean "resolve them from the slice"; a view
# that calls several passes the list once (None: every run).


def _cells(run_ids, since, cohort: Q | None) -> QuerySet[DashboardCell]:
    qs = DashboardCell.objects.filter(_run_q(run_ids))
    if since:
        qs = qs.filter(week__gte=since)
    if cohort is not None:
        qs = qs.filter(cohort)
    return qs.order_by()


def error_type_table(
    slc: Slice,
    basis: str = "either",
    *,
    run_ids: list[int] | None | bool = False,
    cohort: Q | None = None,
    types: list[ErrorType] | None = None,
    today: date | None = None,
) -> dict[str, Any]:
    """One row per error type of the taxonomy (taxonomy order), the "no error type"
    row and the total: steps, critiques, agreement, reviewed, PBW and label-wrong rates."""
    via = VIA[basis]
    if run_ids is False:
        run_ids = slc.run_ids()
    since = slc.since(today)
    types = _types() if types is None else types
    tallies: dict[int, Tally] = defaultdict(Tally)
    total, untyped = Tally(), Tally()
    rows = (
        _cells(run_ids, since, cohort)
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
    steps_qs = DashboardSteps.objects.filter(_run_q(run_ids), basis__in=[basis, "all"])
    if since:
        steps_qs = steps_qs.filter(week__gte=since)
    if cohort is not None:
        steps_qs = steps_qs.filter(cohort)
    steps = dict(steps_qs.order_by().values_list("error_type_id").annotate(n=Sum("n_steps")))
    out = []
    for et in types:
        out.append(
            {
                "id": et.id,
                "slug": et.slug,
                "name": et.name,
                "dimension": et.dimension,
                "definition": et.definition,
                "steps": steps.get(et.id, 0),
                **tallies[et.id].summary(),
            }
        )
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
    run_ids: list[int] | None | bool = False,
    cohort: Q | None = None,
    today: date | None = None,
) -> list[dict[str, Any]]:
    """Per week (Monday, UTC) of the critiques' creation: agreement, PBW and label-wrong
    rates. Weeks without critiques inside the range are listed with zero counts."""
    if run_ids is False:
        run_ids = slc.run_ids()
    since = slc.since(today)
    qs = _cells(run_ids, since, cohort)
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
    out = []
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
    run_ids: list[int] | None | bool = False,
    today: date | None = None,
) -> dict[str, Any]:
    """Label x teacher verdict, each cell split by review outcome."""
    if run_ids is False:
        run_ids = slc.run_ids()
    qs = _cells(run_ids, slc.since(today), None)
    if error_type is None:
        qs = qs.filter(error_type__isnull=True)
    else:
        qs = qs.filter(error_type=error_type, via__in=VIA[basis])
    grid: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for label, verdict, outcome, n in qs.values_list("label", "verdict", "outcome").annotate(n=Sum("n")):
        grid[(_label_group(label), verdict)][outcome] += n
    rows = []
    for label in LABELS:
        cells = []
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
) -> dict[str, Any]:
    """Two slices side by side (e.g. two teachers), optionally on the steps both critiqued."""
    sa, sb = slc.side(*a), slc.side(*b)
    ra, rb = sa.run_ids() or [], sb.run_ids() or []
    cohort = cohort_q(ra, rb) if same_steps else None
    types = _types() if types is None else types
    ta = error_type_table(sa, basis, run_ids=ra, cohort=cohort, types=types, today=today)
    tb = error_type_table(sb, basis, run_ids=rb, cohort=cohort, types=types, today=today)
    rows = []
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


def _align_weeks(ta: list[dict], tb: list[dict]) -> list[dict[str, Any]]:
    by_a = {r["week"]: r for r in ta}
    by_b = {r["week"]: r for r in tb}
    weeks = sorted(by_a.keys() | by_b.keys())
    if not weeks:
        return []
    out, week = [], weeks[0]
    empty = {"week": None, **Tally().summary()}
    while week <= weeks[-1]:
        out.append({"week": week, "a": by_a.get(week, empty), "b": by_b.get(week, empty)})
        week += timedelta(weeks=1)
    return out


# --- evaluation runs next to the teacher ------------------------------------------------


def evaluation_comparison(
    slc: Slice, *, run_ids: list[int] | None | bool = False, limit: int = 3, today: date | None = None
) -> dict[str, Any] | None:
    """PRM step error rate per PRMBench class (latest succeeded PRMBench evaluation per
    name, up to `limit`) next to the teacher's disagreement rate per class. None when the
    evaluation models are absent or no PRMBench evaluation has succeeded."""
    from inference import models as inference_models

    EvaluationRun = getattr(inference_models, "EvaluationRun", None)
    if EvaluationRun is None:
        return None
    runs, seen = [], set()
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
    through = EvaluationRun.datasets.through
    dataset_ids = sorted(set(through.objects.filter(run__in=runs).values_list("dataset_id", flat=True)))
    # The teacher on the evaluated datasets (class basis: PRMBench classes are solution
    # classes); the whole slice when the teacher never critiqued those datasets.
    if run_ids is False:
        run_ids = slc.run_ids()
    scoped = list(
        GenerationRun.objects.filter(_run_q(run_ids, "id"), dataset_id__in=dataset_ids).values_list(
            "id", flat=True
        )
    )
    teacher_scope = "evaluated datasets" if scoped else "whole slice"
    teacher = error_type_table(slc, "class", run_ids=scoped or run_ids, today=today)
    rows = []
    for row in teacher["rows"]:
        evals = []
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
                "definition": row["definition"],
                "teacher": row["disagreement"],
                "critiques": row["critiques"],
                "evals": evals,
            }
        )
    return {"runs": runs, "rows": rows, "teacher_scope": teacher_scope, "dataset_ids": dataset_ids}


# --- review operations ------------------------------------------------------------------


def queue_progress(slc: Slice) -> list[dict[str, Any]]:
    """Per review queue (matched / disagreed / other, and the flagged queue across them):
    critiques, outcome counts, share settled."""
    rows = (
        DashboardQueue.objects.filter(_run_q(slc.run_ids()))
        .order_by()
        .values_list("matches", "flagged", "outcome")
        .annotate(n=Sum("n"))
    )
    queues = {q: Counter() for q in ("matched", "disagreed", "other", "flagged")}
    for matches, flagged, outcome, n in rows:
        q = "other" if matches is None else "matched" if matches else "disagreed"
        queues[q][outcome] += n
        if flagged:
            queues["flagged"][outcome] += n
    names = {
        "matched": "matched the label",
        "disagreed": "disagreed with the label",
        "other": "no label or unparseable",
        "flagged": "flagged by signals (any queue)",
    }
    out = []
    for q, c in queues.items():
        n = sum(c.values())
        reviewed = sum(c[o] for o in REVIEWED)
        out.append(
            {
                "queue": q,
                "name": names[q],
                "critiques": n,
                "reviewed": reviewed,
                "awaiting": c["partial"] + c["adjudication"],
                "open": c["open"],
                "unqueued": c["unqueued"],
                "outcomes": {o: c[o] for o in OUTCOMES},
                "progress": rate(reviewed, n),
            }
        )
    return out


class PercentileCont(Aggregate):
    """Postgres `percentile_cont(f) WITHIN GROUP (ORDER BY x)`: linear interpolation."""

    function = "percentile_cont"
    output_field = FloatField()

    def __init__(self, expression, fraction: float, **extra):
        self.fraction = float(fraction)
        super().__init__(expression, **extra)

    def as_sql(self, compiler, connection, **extra):
        template = f"percentile_cont({self.fraction!r}) WITHIN GROUP (ORDER BY %(expressions)s)"
        return super().as_sql(compiler, connection, template=template, **extra)


def percentile_cont(values: list[float], fraction: float) -> float | None:
    """Same rule as Postgres percentile_cont (position (n-1)*f, linear interpolation)."""
    return percentile(values, fraction)


@contextmanager
def _no_jit():
    """Postgres JIT-compiles a query whose estimated cost is high; for this ~70 ms
    aggregate over the review rows, compiling took ~0.5 s (bench_dashboards)."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL jit = off")
        yield


def reviewer_activity(slc: Slice, *, weeks: int = 8, now: datetime | None = None) -> dict[str, Any]:
    """Per reviewer, over the last `weeks` weeks (by review time): decisions, reviews per
    week, time on task (median and quartiles, seconds), undos. Active reviews only,
    skips included (a skip is time spent too). Live: one aggregate over the period."""
    now = now or timezone.now()
    since = monday(now.date()) - timedelta(weeks=weeks - 1)
    week_list = [since + timedelta(weeks=i) for i in range(weeks)]
    base = Review.objects.filter(created_at__gte=week_start(since)).order_by()
    run_ids = slc.run_ids()
    if run_ids is not None:
        # Reviews known to the last refresh by its narrow review -> run map; newer ones
        # (few) through their item.
        mapped = DashboardReviewRun.objects.aggregate(last=Max("review_id"))["last"] or 0
        newer = ReviewItem.objects.filter(id=OuterRef("item_id"), run_id__in=run_ids)
        base = base.filter(
            Q(id__in=DashboardReviewRun.objects.filter(run_id__in=run_ids).values("review_id"))
            | Q(id__gt=mapped) & Q(Exists(newer))
        )
    active = Q(undone_at__isnull=True)
    # NULL for undone reviews, which AVG and percentile_cont skip.
    active_ms = Case(When(active, then=F("time_on_task_ms")), output_field=FloatField())
    aggregates: dict[str, Any] = {
        "n": Count("id", filter=active),
        "undone": Count("id", filter=~active),
        "mean_ms": Avg(active_ms),
        "last": Max("created_at", filter=active),
        **{d: Count("id", filter=active & Q(decision=d)) for d in Review.Decision.values},
        **{
            f"w{i}": Count(
                "id", filter=active & Q(created_at__gte=week_start(w), created_at__lt=week_start(w + WEEK))
            )
            for i, w in enumerate(week_list)
        },
    }
    postgres = connection.vendor == "postgresql"
    if postgres:
        aggregates.update({f"p{int(f * 100)}": PercentileCont(active_ms, f) for f in (0.25, 0.5, 0.75)})
    with _no_jit():
        people = {
            r["reviewer__username"]: r for r in base.values("reviewer__username").annotate(**aggregates)
        }
    if not postgres:
        times: dict[str, list[int]] = defaultdict(list)
        for username, ms in base.filter(active).values_list("reviewer__username", "time_on_task_ms"):
            times[username].append(ms)
        for username, r in people.items():
            for f in (0.25, 0.5, 0.75):
                r[f"p{int(f * 100)}"] = percentile_cont(times[username], f)
    rows = []
    for username in sorted(people):
        r = people[username]
        if not r["n"] and not r["undone"]:
            continue
        rows.append(
            {
                "reviewer": username,
                "reviews": r["n"],
                "per_week": r["n"] / weeks,
                "decisions": {d: r[d] for d in Review.Decision.values},
                "undone": r["undone"],
                "mean_s": None if r["mean_ms"] is None else r["mean_ms"] / 1000,
                "p25_s": None if r["p25"] is None else r["p25"] / 1000,
                "median_s": None if r["p50"] is None else r["p50"] / 1000,
                "p75_s": None if r["p75"] is None else r["p75"] / 1000,
                "last": r["last"],
                "weeks": [r[f"w{i}"] for i in range(weeks)],
            }
        )
    return {"weeks": week_list, "rows": rows, "since": since}


def reviewer_pairs(slc: Slice) -> list[dict[str, Any]]:
    """Cohen's kappa per reviewer pair on decisions and on error tags, from the summed
    agreement counts (DashboardPair): the same definition as annotations.reviews.agreement
    (items both decided, skips and undone reviews left out; tags per item and error type,
    tagged or not)."""
    rows = (
        DashboardPair.objects.filter(_run_q(slc.run_ids()))
        .order_by()
        .values_list("reviewer_a__username", "reviewer_b__username", "kind", "a", "b")
        .annotate(n=Sum("n"))
    )
    pairs: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: {"decision": [], "tag": []})
    for a, b, kind, va, vb, n in rows:
        pairs[(a, b)][kind].extend(repeat((va, vb), n))
    out = []
    for (a, b), p in sorted(pairs.items()):
        decisions = p["decision"]
        out.append(
            {
                "a": a,
                "b": b,
                "items": len(decisions),
                "percent_agree": 100 * sum(x == y for x, y in decisions) / len(decisions)
                if decisions
                else None,
                "kappa_decisions": cohen_kappa(decisions),
                "kappa_tags": cohen_kappa(p["tag"]),
            }
        )
    return out


def adjudication_backlog(slc: Slice, *, now: datetime | None = None) -> dict[str, Any]:
    """Items awaiting an admin: how many, why (a label dispute or reviewers who
    disagree), how long they have waited (since the item last changed), and how many
    were adjudicated in the last 7 days."""
    now = now or timezone.now()
    run_ids = slc.run_ids()
    waiting = ReviewItem.objects.filter(_run_q(run_ids), state=ReviewItem.State.ADJUDICATION)
    dispute = Exists(
        LabelCorrection.objects.filter(step_id=OuterRef("step_id"), status=LabelCorrection.Status.PENDING)
    )
    day, week = now - timedelta(days=1), now - timedelta(days=7)
    agg = waiting.aggregate(
        n=Count("id"),
        oldest=Min("updated_at"),
        label_disputes=Count("id", filter=dispute),
        under_1d=Count("id", filter=Q(updated_at__gte=day)),
        d1_7=Count("id", filter=Q(updated_at__lt=day, updated_at__gte=week)),
        over_7d=Count("id", filter=Q(updated_at__lt=week)),
    )
    decided = Adjudication.objects.filter(created_at__gte=week)
    if run_ids is not None:
        decided = decided.filter(item__run_id__in=run_ids)
    agg["disagreements"] = agg["n"] - agg["label_disputes"]
    agg["decided_7d"] = decided.count()
    agg["oldest_days"] = None if agg["oldest"] is None else (now - agg["oldest"]).total_seconds() / 86400
    return agg


def signal_table(slc: Slice, *, matched_only: bool = True) -> dict[str, Any]:
    """Which audit signals predict "flawed": per signal, among reviewed (settled)
    critiques, precision = flawed / fired and recall = flawed with the signal / all
    flawed, each with a Wilson 95% interval. `matched_only`: label-matching critiques
    only (where plausible-but-wrong reasoning hides)."""
    from .audit import TITLES, WEIGHTS

    qs = DashboardSignal.objects.filter(_run_q(slc.run_ids()))
    if matched_only:
        qs = qs.filter(matches=True)
    counts: dict[str, Counter] = defaultdict(Counter)
    for signal, outcome, n in qs.order_by().values_list("signal", "outcome").annotate(n=Sum("n")):
        counts[signal][outcome] += n
    base = counts[""]
    flawed = base["flawed"]
    reviewed = sum(base[o] for o in REVIEWED)
    base_rate = rate(flawed, reviewed)
    kinds = ["flagged", *sorted(WEIGHTS, key=lambda k: -WEIGHTS[k])]
    rows = []
    for kind in kinds + sorted(k for k in counts if k and k not in kinds):
        c = counts[kind]
        fired_reviewed = sum(c[o] for o in REVIEWED)
        precision = rate(c["flawed"], fired_reviewed)
        rows.append(
            {
                "signal": kind,
                "title": "Flagged (suspicion ≥ threshold)" if kind == "flagged" else TITLES.get(kind, kind),
                "fired": sum(c.values()),
                "fired_reviewed": fired_reviewed,
                "tp": c["flawed"],
                "fp": fired_reviewed - c["flawed"],
                "fn": flawed - c["flawed"],
                "precision": precision,
                "recall": rate(c["flawed"], flawed),
                "lift": None
                if precision["rate"] is None or not base_rate["rate"]
                else precision["rate"] / base_rate["rate"],
            }
        )
    return {
        "rows": rows,
        "audited": sum(base.values()),
        "reviewed": reviewed,
        "flawed": flawed,
        "base_rate": base_rate,
        "matched_only": matched_only,
    }


# --- drill-down -----------------------------------------------------------------------


@dataclass(frozen=True)
class Drill:
    """The critiques behind one number: the slice plus the cell's coordinates."""

    slice: Slice = Slice()
    basis: str = "either"
    type: str = ""  # an ErrorType slug, "none" (no error type under the basis), "" (any)
    label: str = ""  # correct / incorrect / other
    verdict: str = ""
    matches: str = ""  # "1", "0", "null", "labelled" (1 or 0)
    outcome: str = ""  # an outcome, "reviewed" or "awaiting"
    week: date | None = None
    signal: str = ""  # a signal kind, "flagged", "audited"
    reviewer: str = ""
    pair: tuple[str, str] | None = None
    same: tuple[tuple[str, int], tuple[str, int]] | None = None


def _tag_exists(type_id: int | None = None) -> Q:
    tags = Review.error_types.through.objects.filter(
        review__critique_id=OuterRef("pk"), review__undone_at__isnull=True
    )
    adj = Adjudication.error_types.through.objects.filter(adjudication__item__critique_id=OuterRef("pk"))
    if type_id is not None:
        tags, adj = tags.filter(errortype_id=type_id), adj.filter(errortype_id=type_id)
    return Q(Exists(tags)) | Q(Exists(adj))


def _signal_q(kind: str) -> Q:
    if kind == "audited":
        return Q(audit__isnull=False)
    if kind == "flagged":
        return Q(review_item__flagged=True)
    if connection.vendor == "postgresql":
        return Q(audit__signals__contains=[{"kind": kind}])
    return Q(
        id__in=RawSQL(
            "SELECT a.critique_id FROM annotations_critiqueaudit a, json_each(a.signals) e "
            "WHERE json_extract(e.value, '$.kind') = %s",
            [kind],
        )
    )


OUTCOME_Q = {
    "unqueued": Q(review_item__isnull=True),
    "sound": Q(review_item__final_decision="sound"),
    "flawed": Q(review_item__final_decision="flawed"),
    "label_wrong": Q(review_item__final_decision="label_wrong"),
    "reviewed": Q(review_item__final_decision__in=REVIEWED),
    "adjudication": Q(review_item__final_decision="", review_item__state="adjudication"),
    "partial": Q(review_item__final_decision="", review_item__reviews_done__gt=0)
    & ~Q(review_item__state="adjudication"),
    "open": Q(review_item__final_decision="", review_item__reviews_done=0)
    & ~Q(review_item__state="adjudication"),
}
OUTCOME_Q["awaiting"] = OUTCOME_Q["partial"] | OUTCOME_Q["adjudication"]


def drill_queryset(d: Drill, *, today: date | None = None) -> QuerySet[Critique]:
    """Critiques matching a dashboard cell, by the summaries' definitions (tested to
    give the same counts)."""
    qs = Critique.objects.all()
    run_ids = d.slice.run_ids()
    if run_ids is not None:
        qs = qs.filter(run_id__in=run_ids)
    since = d.slice.since(today)
    if since:
        qs = qs.filter(created_at__gte=week_start(since))
    if d.week:
        qs = qs.filter(
            created_at__gte=week_start(d.week), created_at__lt=week_start(d.week + timedelta(weeks=1))
        )
    if d.label == "other":
        qs = qs.exclude(step__label__in=[Step.Label.CORRECT, Step.Label.INCORRECT])
    elif d.label:
        qs = qs.filter(step__label=d.label)
    if d.verdict:
        qs = qs.filter(verdict=d.verdict)
    if d.matches in ("null", "labelled"):
        qs = qs.filter(matches_label__isnull=d.matches == "null")
    elif d.matches:
        qs = qs.filter(matches_label=d.matches == "1")
    if d.outcome:
        qs = qs.filter(OUTCOME_Q[d.outcome])
    if d.type == "none":
        if d.basis in ("class", "either"):
            qs = qs.filter(step__solution__error_type__isnull=True)
        if d.basis in ("tag", "either"):
            qs = qs.exclude(_tag_exists())
    elif d.type:
        et = ErrorType.objects.get(slug=d.type)
        by_class = Q(step__solution__error_type_id=et.id)
        q = {"class": by_class, "tag": _tag_exists(et.id), "either": by_class | _tag_exists(et.id)}[d.basis]
        qs = qs.filter(q)
    if d.signal:
        qs = qs.filter(_signal_q(d.signal))
    if d.reviewer:
        qs = qs.filter(
            Exists(
                Review.objects.filter(
                    critique_id=OuterRef("pk"), reviewer__username=d.reviewer, undone_at__isnull=True
                )
            )
        )
    if d.pair:
        for username in d.pair:
            qs = qs.filter(
                Exists(
                    Review.objects.filter(
                        critique_id=OuterRef("pk"), reviewer__username=username, undone_at__isnull=True
                    ).exclude(decision="skip")
                )
            )
    if d.same:
        for kind, pk in d.same:
            side_runs = d.slice.side(kind, pk).run_ids() or []
            qs = qs.filter(Exists(Critique.objects.filter(step_id=OuterRef("step_id"), run_id__in=side_runs)))
    return qs


# --- refresh ----------------------------------------------------------------------------


def stale_after() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "DASHBOARD_STALE_SECONDS", 600)))


def sync_limit() -> int:
    """At most this many critiques, a stale summary is rebuilt in the request itself
    (well under a second), so small installs need no worker for fresh numbers."""
    return int(getattr(settings, "DASHBOARD_SYNC_LIMIT", 20_000))


# A queued refresh older than this has lost its worker; a new one may be queued.
QUEUED_GIVE_UP = timedelta(minutes=30)


def request_refresh(user=None, *, queue: bool = True, now: datetime | None = None) -> DashboardRefresh:
    """Queue a rebuild unless one is already queued or running (recently)."""
    from .tasks_dashboards import refresh_dashboards_task

    now = now or timezone.now()
    pending = (
        DashboardRefresh.objects.filter(
            status__in=[DashboardRefresh.Status.QUEUED, DashboardRefresh.Status.RUNNING],
            created_at__gte=now - QUEUED_GIVE_UP,
        )
        .order_by("-created_at")
        .first()
    )
    if pending is not None:
        return pending
    refresh = DashboardRefresh.objects.create(requested_by=user if getattr(user, "pk", None) else None)
    if queue:
        refresh_dashboards_task.delay_on_commit(refresh.id)
    return refresh


def run_refresh(refresh_id: int) -> DashboardRefresh | None:
    """Claim a queued refresh and rebuild. None when another worker already claimed it."""
    now = timezone.now()
    claimed = DashboardRefresh.objects.filter(id=refresh_id, status=DashboardRefresh.Status.QUEUED).update(
        status=DashboardRefresh.Status.RUNNING, started_at=now
    )
    if not claimed:
        return None
    refresh = DashboardRefresh.objects.get(id=refresh_id)
    t0 = time.perf_counter()
    try:
        counts = refresh_summaries()
    except Exception as exc:  # a failed rebuild leaves the old summaries in place
        log.exception("dashboard refresh %s failed", refresh_id)
        refresh.status, refresh.error = DashboardRefresh.Status.FAILED, f"{type(exc).__name__}: {exc}"
    else:
        refresh.status, refresh.counts = DashboardRefresh.Status.SUCCEEDED, counts
    refresh.finished_at = timezone.now()
    refresh.seconds = time.perf_counter() - t0
    refresh.save(update_fields=["status", "error", "counts", "finished_at", "seconds"])
    return refresh


def refresh_now(user=None) -> DashboardRefresh:
    """Rebuild in this process (tests, benchmarks, small installs)."""
    refresh = DashboardRefresh.objects.create(requested_by=user if getattr(user, "pk", None) else None)
    return run_refresh(refresh.id) or refresh


def freshness(*, now: datetime | None = None, auto: bool = True) -> dict[str, Any]:
    """What the pages show about the summaries' age; with `auto`, a stale summary is
    rebuilt (in the request when small, else by a queued task)."""
    now = now or timezone.now()
    done = (
        DashboardRefresh.objects.filter(status=DashboardRefresh.Status.SUCCEEDED)
        .order_by("-created_at")
        .first()
    )
    stale = done is None or done.finished_at < now - stale_after()
    pending = None
    if stale and auto:
        small = Critique.objects.order_by()[: sync_limit() + 1].count() <= sync_limit()
        if small:
            done = refresh_now()
            stale = False
        else:
            pending = request_refresh(now=now)
    elif stale or not auto:
        pending = (
            DashboardRefresh.objects.filter(
                status__in=[DashboardRefresh.Status.QUEUED, DashboardRefresh.Status.RUNNING],
                created_at__gte=now - QUEUED_GIVE_UP,
            )
            .order_by("-created_at")
            .first()
        )
    return {
        "done": done,
        "as_of": done.finished_at if done else None,
        "age_s": (now - done.finished_at).total_seconds() if done else None,
        "stale": stale,
        "pending": pending,
    }


def _vendor_sql() -> dict[str, str]:
    if connection.vendor == "postgresql":
        return {
            "week": "(date_trunc('week', c.created_at AT TIME ZONE 'UTC'))::date",
            # Byte order, as Python sorts usernames (reviews.agreement orders pairs so).
            "binary": 'COLLATE "C"',
            "cohort": "',' || string_agg(x.run_id::text, ',' ORDER BY x.run_id) || ','",
            "kinds": "SELECT DISTINCT a.critique_id, e.value ->> 'kind' AS signal "
            "FROM annotations_critiqueaudit a CROSS JOIN LATERAL jsonb_array_elements(a.signals) e",
        }
    return {
        "week": "date(c.created_at, 'weekday 0', '-6 days')",
        "binary": "",
        "cohort": "',' || group_concat(x.run_id, ',') || ','",
        "kinds": "SELECT DISTINCT a.critique_id, json_extract(e.value, '$.kind') AS signal "
        "FROM annotations_critiqueaudit a, json_each(a.signals) e",
    }


def refresh_summaries() -> dict[str, int]:
    """Rebuild every summary table from the source rows, in one transaction.

    Critique-level facts go to a temp table once (outcome, error-type class, whether
    reviewers tagged it, the runs that critiqued its step); each summary is a GROUP BY
    of it. Readers keep seeing the previous summaries until the commit.
    """
    t = {
        "critique": Critique._meta.db_table,
        "step": Step._meta.db_table,
        "solution": "annotations_solution",
        "item": ReviewItem._meta.db_table,
        "review": Review._meta.db_table,
        "review_tags": Review.error_types.through._meta.db_table,
        "adjudication": Adjudication._meta.db_table,
        "adj_tags": Adjudication.error_types.through._meta.db_table,
        "cell": DashboardCell._meta.db_table,
        "steps": DashboardSteps._meta.db_table,
        "signal": DashboardSignal._meta.db_table,
        "queue": DashboardQueue._meta.db_table,
        "pair": DashboardPair._meta.db_table,
        "review_run": DashboardReviewRun._meta.db_table,
        "user": Review._meta.get_field("reviewer").related_model._meta.db_table,
        "errortype": ErrorType._meta.db_table,
        **_vendor_sql(),
    }
    postgres = connection.vendor == "postgresql"
    temp = ("dash_cohort", "dash_tag", "dash_fact", "dash_pr", "dash_pp")
    statements = [
        (
            None,
            """CREATE TEMP TABLE dash_cohort AS
            SELECT x.step_id, {cohort} AS runs
            FROM (SELECT DISTINCT step_id, run_id FROM {critique}) x GROUP BY x.step_id""",
        ),
        (
            None,
            """CREATE TEMP TABLE dash_tag AS
            SELECT r.critique_id, rt.errortype_id AS type_id
            FROM {review} r JOIN {review_tags} rt ON rt.review_id = r.id WHERE r.undone_at IS NULL
            UNION
            SELECT ri.critique_id, adt.errortype_id
            FROM {adjudication} ad JOIN {item} ri ON ri.id = ad.item_id
            JOIN {adj_tags} adt ON adt.adjudication_id = ad.id""",
        ),
        (None, "CREATE INDEX dash_tag_critique ON dash_tag (critique_id, type_id)"),
        (
            "critiques",
            """CREATE TEMP TABLE dash_fact AS
            SELECT c.id, c.run_id, c.step_id, {week} AS week, st.label, c.verdict, c.matches_label AS matches,
                   sol.error_type_id AS class_id,
                   CASE WHEN ri.id IS NULL THEN 'unqueued'
                        WHEN ri.final_decision <> '' THEN ri.final_decision
                        WHEN ri.state = 'adjudication' THEN 'adjudication'
                        WHEN ri.reviews_done > 0 THEN 'partial'
                        ELSE 'open' END AS outcome,
                   COALESCE(ri.flagged, FALSE) AS flagged, co.runs,
                   EXISTS (SELECT 1 FROM dash_tag t WHERE t.critique_id = c.id) AS tagged,
                   EXISTS (SELECT 1 FROM dash_tag t WHERE t.critique_id = c.id AND t.type_id = sol.error_type_id)
                       AS tagged_class
            FROM {critique} c
            JOIN {step} st ON st.id = c.step_id
            JOIN {solution} sol ON sol.id = st.solution_id
            JOIN dash_cohort co ON co.step_id = c.step_id
            LEFT JOIN {item} ri ON ri.critique_id = c.id""",
        ),
        (None, "CREATE INDEX dash_fact_id ON dash_fact (id)"),
        (None, "DELETE FROM {cell}"),
        (None, "DELETE FROM {steps}"),
        (None, "DELETE FROM {signal}"),
        (None, "DELETE FROM {queue}"),
        (None, "DELETE FROM {pair}"),
        (None, "DELETE FROM {review_run}"),
        (
            "review_runs",
            """INSERT INTO {review_run} (review_id, run_id)
            SELECT r.id, ri.run_id FROM {review} r JOIN {item} ri ON ri.id = r.item_id""",
        ),
        (
            "cells",
            """INSERT INTO {cell} (run_id, week, error_type_id, via, label, verdict, matches, outcome, runs, n)
            SELECT run_id, week, class_id, CASE WHEN tagged_class THEN 'both' ELSE 'class' END,
                   label, verdict, matches, outcome, runs, COUNT(*)
            FROM dash_fact WHERE class_id IS NOT NULL
            GROUP BY run_id, week, class_id, tagged_class, label, verdict, matches, outcome, runs""",
        ),
        (
            "cells",
            """INSERT INTO {cell} (run_id, week, error_type_id, via, label, verdict, matches, outcome, runs, n)
            SELECT f.run_id, f.week, t.type_id, 'tag', f.label, f.verdict, f.matches, f.outcome, f.runs, COUNT(*)
            FROM dash_tag t JOIN dash_fact f ON f.id = t.critique_id
            WHERE f.class_id IS NULL OR f.class_id <> t.type_id
            GROUP BY f.run_id, f.week, t.type_id, f.label, f.verdict, f.matches, f.outcome, f.runs""",
        ),
        (
            "cells",
            """INSERT INTO {cell} (run_id, week, error_type_id, via, label, verdict, matches, outcome, runs, n)
            SELECT run_id, week, NULL, via, label, verdict, matches, outcome, runs, COUNT(*)
            FROM (SELECT run_id, week, label, verdict, matches, outcome, runs,
                         CASE WHEN class_id IS NOT NULL AND tagged THEN 'both'
                              WHEN class_id IS NOT NULL THEN 'class'
                              WHEN tagged THEN 'tag' ELSE 'none' END AS via
                  FROM dash_fact) x
            GROUP BY run_id, week, via, label, verdict, matches, outcome, runs""",
        ),
        (
            "steps",
            """INSERT INTO {steps} (run_id, week, error_type_id, basis, label, runs, n_steps)
            SELECT run_id, week, class_id, 'class', label, runs, COUNT(DISTINCT step_id)
            FROM dash_fact WHERE class_id IS NOT NULL GROUP BY run_id, week, class_id, label, runs""",
        ),
        (
            "steps",
            """INSERT INTO {steps} (run_id, week, error_type_id, basis, label, runs, n_steps)
            SELECT f.run_id, f.week, t.type_id, 'tag', f.label, f.runs, COUNT(DISTINCT f.step_id)
            FROM dash_tag t JOIN dash_fact f ON f.id = t.critique_id
            GROUP BY f.run_id, f.week, t.type_id, f.label, f.runs""",
        ),
        (
            "steps",
            """INSERT INTO {steps} (run_id, week, error_type_id, basis, label, runs, n_steps)
            SELECT run_id, week, type_id, 'either', label, runs, COUNT(DISTINCT step_id)
            FROM (SELECT run_id, week, class_id AS type_id, label, runs, step_id
                  FROM dash_fact WHERE class_id IS NOT NULL
                  UNION ALL
                  SELECT f.run_id, f.week, t.type_id, f.label, f.runs, f.step_id
                  FROM dash_tag t JOIN dash_fact f ON f.id = t.critique_id) x
            GROUP BY run_id, week, type_id, label, runs""",
        ),
        (
            "steps",
            """INSERT INTO {steps} (run_id, week, error_type_id, basis, label, runs, n_steps)
            SELECT run_id, week, NULL, 'all', label, runs, COUNT(DISTINCT step_id)
            FROM dash_fact GROUP BY run_id, week, label, runs""",
        ),
        (
            "signals",
            """INSERT INTO {signal} (run_id, signal, matches, outcome, n)
            SELECT f.run_id, s.signal, f.matches, f.outcome, COUNT(*)
            FROM (SELECT critique_id, '' AS signal FROM annotations_critiqueaudit
                  UNION ALL SELECT id, 'flagged' FROM dash_fact WHERE flagged
                  UNION ALL {kinds}) s
            JOIN dash_fact f ON f.id = s.critique_id
            GROUP BY f.run_id, s.signal, f.matches, f.outcome""",
        ),
        (
            "queues",
            """INSERT INTO {queue} (run_id, matches, flagged, outcome, n)
            SELECT run_id, matches, flagged, outcome, COUNT(*) FROM dash_fact
            GROUP BY run_id, matches, flagged, outcome""",
        ),
        # Reviewer agreement, as annotations.reviews.agreement defines it: active deciding
        # reviews of items with two or more of them; pairs ordered by username.
        (
            None,
            """CREATE TEMP TABLE dash_pr AS
            SELECT r.id, r.item_id, r.reviewer_id, u.username, r.decision, ri.run_id
            FROM {review} r JOIN {user} u ON u.id = r.reviewer_id JOIN {item} ri ON ri.id = r.item_id
            WHERE r.undone_at IS NULL AND r.decision <> 'skip' AND r.item_id IN (
                SELECT item_id FROM {review} WHERE undone_at IS NULL AND decision <> 'skip'
                GROUP BY item_id HAVING COUNT(*) >= 2)""",
        ),
        (
            None,
            """CREATE TEMP TABLE dash_pp AS
            SELECT x.run_id, x.id AS ra, y.id AS rb, x.reviewer_id AS ua, y.reviewer_id AS ub,
                   x.decision AS da, y.decision AS db
            FROM dash_pr x JOIN dash_pr y ON y.item_id = x.item_id AND x.username < y.username {binary}""",
        ),
        (
            "pairs",
            """INSERT INTO {pair} (run_id, reviewer_a_id, reviewer_b_id, kind, a, b, n)
            SELECT run_id, ua, ub, 'decision', da, db, COUNT(*) FROM dash_pp GROUP BY run_id, ua, ub, da, db""",
        ),
        (
            "pairs",
            """INSERT INTO {pair} (run_id, reviewer_a_id, reviewer_b_id, kind, a, b, n)
            SELECT p.run_id, p.ua, p.ub, 'tag', 'yes', 'yes', COUNT(*)
            FROM dash_pp p JOIN {review_tags} ta ON ta.review_id = p.ra
            JOIN {review_tags} tb ON tb.review_id = p.rb AND tb.errortype_id = ta.errortype_id
            GROUP BY p.run_id, p.ua, p.ub""",
        ),
        (
            "pairs",
            """INSERT INTO {pair} (run_id, reviewer_a_id, reviewer_b_id, kind, a, b, n)
            SELECT p.run_id, p.ua, p.ub, 'tag', 'yes', 'no', COUNT(*)
            FROM dash_pp p JOIN {review_tags} ta ON ta.review_id = p.ra
            WHERE NOT EXISTS (SELECT 1 FROM {review_tags} tb WHERE tb.review_id = p.rb
                              AND tb.errortype_id = ta.errortype_id)
            GROUP BY p.run_id, p.ua, p.ub""",
        ),
        (
            "pairs",
            """INSERT INTO {pair} (run_id, reviewer_a_id, reviewer_b_id, kind, a, b, n)
            SELECT p.run_id, p.ua, p.ub, 'tag', 'no', 'yes', COUNT(*)
            FROM dash_pp p JOIN {review_tags} tb ON tb.review_id = p.rb
            WHERE NOT EXISTS (SELECT 1 FROM {review_tags} ta WHERE ta.review_id = p.ra
                              AND ta.errortype_id = tb.errortype_id)
            GROUP BY p.run_id, p.ua, p.ub""",
        ),
        (
            "pairs",
            """INSERT INTO {pair} (run_id, reviewer_a_id, reviewer_b_id, kind, a, b, n)
            SELECT run_id, ua, ub, 'tag', 'no', 'no', SUM(k) FROM (
                SELECT p.run_id, p.ua, p.ub,
                       (SELECT COUNT(*) FROM {errortype}) - (SELECT COUNT(DISTINCT t.errortype_id)
                           FROM {review_tags} t WHERE t.review_id IN (p.ra, p.rb)) AS k
                FROM dash_pp p) x
            GROUP BY run_id, ua, ub HAVING SUM(k) > 0""",
        ),
    ]
    counts: Counter = Counter()
    with transaction.atomic(), connection.cursor() as cur:
        if postgres:
            # Serialises refreshes (two interleaved rebuilds would duplicate rows); SELECTs
            # are not blocked. Bigger sort memory for the COUNT(DISTINCT)s, this transaction only.
            cur.execute(f"LOCK TABLE {t['cell']} IN EXCLUSIVE MODE")
            cur.execute("SET LOCAL work_mem = '128MB'")
        for name in temp:
            cur.execute(f"DROP TABLE IF EXISTS {name}")
        for key, sql in statements:
            cur.execute(sql.format(**t))
            if key == "critiques":
                if postgres:
                    cur.execute("ANALYZE dash_fact")
                cur.execute("SELECT COUNT(*) FROM dash_fact")
                counts["critiques"] = cur.fetchone()[0]
            elif key:
                counts[key] += max(cur.rowcount, 0)
            if postgres and sql.lstrip().startswith("CREATE TEMP TABLE dash_tag"):
                cur.execute("ANALYZE dash_tag")
        for name in temp:
            cur.execute(f"DROP TABLE IF EXISTS {name}")
        if postgres:  # fresh statistics for the dashboards' plans (autovacuum may lag)
            cur.execute("ANALYZE {cell}, {steps}, {signal}, {queue}, {pair}, {review_run}".format(**t))
    return dict(counts)
