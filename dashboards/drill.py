"""Drill-downs: the critiques behind a number, with the same definitions."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

from django.db import connection
from django.db.models import (
    Exists,
    OuterRef,
    Q,
    QuerySet,
)
from django.db.models.expressions import RawSQL

from annotations.models import ErrorType, Step
from inference.models import Critique
from review.models import Review
from review.reviews import has_final_tag, sealed_q

from .models import (
    REVIEWED,
)
from .slices import Slice, week_start

log = logging.getLogger(__name__)


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
    """Tagged (with `type_id`) as the summaries count tags: the final decision's tags."""
    return has_final_tag() if type_id is None else has_final_tag(errortype_id=type_id)


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
    qs = Critique.objects.filter(gold_copy=False)  # gold copies measure reviewers, nothing else
    if d.slice.blind:
        # Blind double review: a reviewer may be the second one on any item still waiting for
        # its second review or adjudication, so those are not listed (nor their tags) to them.
        qs = qs.exclude(sealed_q("review_item__"))
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
