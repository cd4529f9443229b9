"""Why a review queue is empty, and what to do next.

An empty queue has a reason: the runs in scope are not audited yet (or still
generating), every critique was unparseable, everything was reviewed, the filters hide
what is open, or there are no critiques of this role at all. Computed only for an
empty page, over the most recent runs in scope.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from django.db.models import Count, Q
from django.urls import reverse

from inference.models import Critique, GenerationRun

from .models import ReviewItem
from .queue import QueueFilter, open_items

RUNS_SHOWN = 10


@dataclass(frozen=True)
class EmptyReason:
    """One line of the empty state: a message and at most one next action."""

    kind: str  # not_audited | generating | unparseable | reviewed | filtered | other_role | no_critiques
    message: str
    action_label: str = ""
    action_url: str = ""  # a link; or, with `post_run`, the audit form's target
    post_run: int | None = None  # "audit now": POST the run id (admins only)


def _runs_in_scope(flt: QueueFilter):
    runs = GenerationRun.objects.all()
    if flt.run_id:
        return runs.filter(id=flt.run_id)
    if flt.role == "teacher":
        runs = runs.filter(kind__in=GenerationRun.TEACHER_KINDS)
    elif flt.role == "student":
        runs = runs.filter(kind=GenerationRun.Kind.STUDENT_SAMPLE)
    if flt.dataset_id:
        runs = runs.filter(dataset_id=flt.dataset_id)
    return runs


def _run_reasons(flt: QueueFilter, staff: bool) -> list[EmptyReason]:
    out = []
    runs = _runs_in_scope(flt).order_by("-id")[:RUNS_SHOWN]
    for run in runs:
        url = reverse("inference:run_detail", args=[run.uuid])
        if run.status in GenerationRun.ACTIVE:
            out.append(EmptyReason("generating", f"run {run.id} is still generating "
                                   f"({run.steps_done:,} of {run.steps_total:,} steps); it is audited when it "
                                   "finishes", "see the run", url))  # fmt: skip
            continue
        counts = Critique.objects.filter(run=run).aggregate(
            n=Count("id"),
            unparseable=Count("id", filter=Q(verdict=Critique.Verdict.UNPARSEABLE)),
            audited=Count("id", filter=Q(audit__isnull=False)),
        )
        n, missing = counts["n"], counts["n"] - counts["audited"]
        if n and counts["unparseable"] == n:
            out.append(EmptyReason("unparseable", f"all {n:,} critiques of run {run.id} were unparseable "
                                   "(no verdict line: nothing to match against the label)", "see the run", url))  # fmt: skip
        elif missing:
            message = f"run {run.id}: {missing:,} critiques not audited yet"
            if staff:
                out.append(
                    EmptyReason("not_audited", message, "audit now", reverse("review:audit_run"), run.id)
                )
            else:
                out.append(
                    EmptyReason("not_audited", f"{message}; an admin can audit them", "see the run", url)
                )
    return out


def _queue_reasons(flt: QueueFilter) -> list[EmptyReason]:
    out = []
    plain = QueueFilter(queue=flt.queue, role=flt.role, dataset_id=flt.dataset_id, run_id=flt.run_id)
    filtered = (flt.search, flt.error_type_id, flt.model_text)
    base = f"{reverse('review:queue')}?"
    if any(filtered):
        hidden = open_items(plain).order_by().count()
        if hidden:
            clear = "&".join(f"{k}={v}" for k, v in plain.as_query().items())
            out.append(EmptyReason("filtered", f"{hidden:,} open critiques are hidden by your filters",
                                   "clear filters", base + clear))  # fmt: skip
    in_queue = plain.apply(ReviewItem.objects.all())
    if not open_items(plain).exists() and in_queue.exists():
        done = in_queue.filter(state__in=(ReviewItem.State.DONE, ReviewItem.State.ADJUDICATED)).count()
        waiting = in_queue.filter(state=ReviewItem.State.ADJUDICATION).count()
        extra = f"; {waiting:,} wait for adjudication" if waiting else ""
        out.append(
            EmptyReason("reviewed", f"all {done + waiting:,} critiques of this queue are reviewed{extra}")
        )
    if flt.role != "all" and not flt.run_id:
        other = replace(plain, role="student" if flt.role == "teacher" else "teacher")
        n = open_items(other).order_by().count()
        if n:
            query = "&".join(f"{k}={v}" for k, v in other.as_query().items())
            out.append(EmptyReason("other_role", f"{n:,} {other.role} critiques are open in this queue",
                                   f"show {other.role} critiques", base + query))  # fmt: skip
    return out


def explain_empty(flt: QueueFilter, *, staff: bool) -> list[EmptyReason]:
    """The reasons this (empty) queue is empty, most actionable first."""
    reasons = _queue_reasons(flt)
    if not any(r.kind == "filtered" for r in reasons):
        reasons = _run_reasons(flt, staff) + reasons
    if not reasons and not _runs_in_scope(flt).exists():
        role = "" if flt.role == "all" else f"{flt.role} "
        reasons.append(EmptyReason("no_critiques", f"no {role}critiques yet: start a generation run or import "
                                   "critiques", "start a run", reverse("inference:run_new")))  # fmt: skip
    return reasons
