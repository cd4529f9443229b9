"""Review operations, live: queue progress, reviewer activity and agreement, the
adjudication backlog and the audit signals' precision against review outcomes."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from contextlib import contextmanager
from datetime import datetime, timedelta
from itertools import repeat
from typing import Any

from django.contrib.postgres.fields import ArrayField
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
    Sum,
    When,
)
from django.utils import timezone

from inference.core.stats import cohen_kappa, kappa_estimate, percentile
from review.models import Adjudication, LabelCorrection, Review, ReviewItem
from review.reviews import sealed_q

from .models import (
    OUTCOMES,
    REVIEWED,
    DashboardPair,
    DashboardQueue,
    DashboardReviewRun,
    DashboardSignal,
)
from .slices import WEEK, Slice, _run_q, monday, rate, week_start

log = logging.getLogger(__name__)


# --- review operations ------------------------------------------------------------------


def queue_progress(slc: Slice) -> list[dict[str, Any]]:
    """Per review queue (matched / disagreed / other, and the flagged queue across them):
    critiques, outcome counts, share settled."""
    rows = (
        DashboardQueue.objects.filter(_run_q(slc.run_ids()), slc.scope_q())
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


class PercentilesCont(Aggregate):
    """Postgres `percentile_cont(ARRAY[f, ...]) WITHIN GROUP (ORDER BY x)`: several quantiles
    from one sort of the group (three separate percentile_cont calls sort it three times)."""

    function = "percentile_cont"
    output_field = ArrayField(FloatField())

    def __init__(self, expression, fractions: tuple[float, ...], **extra):
        self.fractions = tuple(float(f) for f in fractions)
        super().__init__(expression, **extra)

    def as_sql(self, compiler, connection, **extra):
        array = ", ".join(repr(f) for f in self.fractions)
        template = f"percentile_cont(ARRAY[{array}]::float8[]) WITHIN GROUP (ORDER BY %(expressions)s)"
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


QUARTILES = (0.25, 0.5, 0.75)


def reviewer_activity(slc: Slice, *, weeks: int = 8, now: datetime | None = None) -> dict[str, Any]:
    """Per reviewer, over the last `weeks` weeks (by review time): decisions, reviews per
    week, time on task (median and quartiles, seconds), undos. Active reviews only,
    skips included (a skip is time spent too). Live: one aggregate over the period."""
    now = now or timezone.now()
    since = monday(now.date()) - timedelta(weeks=weeks - 1)
    week_list = [since + timedelta(weeks=i) for i in range(weeks)]
    base = Review.objects.filter(created_at__gte=week_start(since)).order_by()
    if slc.blind:  # a decision on a sealed item would tell the other reviewer it is in
        base = base.exclude(Exists(ReviewItem.objects.filter(sealed_q(), id=OuterRef("item_id"))))
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
        aggregates["quartiles"] = PercentilesCont(active_ms, QUARTILES)
    with _no_jit():
        people = {
            r["reviewer__username"]: r for r in base.values("reviewer__username").annotate(**aggregates)
        }
    for r in people.values():
        quartiles = r.pop("quartiles", None) or [None] * len(QUARTILES)
        r.update({f"p{int(f * 100)}": q for f, q in zip(QUARTILES, quartiles, strict=True)})
    if not postgres:
        times: dict[str, list[int]] = defaultdict(list)
        for username, ms in base.filter(active).values_list("reviewer__username", "time_on_task_ms"):
            times[username].append(ms)
        for username, r in people.items():
            for f in QUARTILES:
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
    agreement counts (DashboardPair): the same definition as review.agreement.agreement
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
                # With a bootstrap interval and n (items both decided) wherever shown.
                "decisions": kappa_estimate(decisions).as_dict(),
                "tags": {**kappa_estimate(p["tag"]).as_dict(), "n": len(decisions)},
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
    if slc.blind:
        waiting = waiting.exclude(sealed_q())
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
    from review.audit import TITLES, WEIGHTS

    qs = DashboardSignal.objects.filter(_run_q(slc.run_ids()), slc.scope_q())
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
