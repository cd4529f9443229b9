"""Review screens: queues, the keyboard-first review screen, agreement, adjudication.

Every view starts with an access helper. Writes go through review.reviews. With htmx the review screen swaps in place (`#screen`
partial, URL pushed); without JavaScript every action is a plain POST + redirect.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeAlias, TypedDict, cast
from urllib.parse import urlencode
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.http import HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

if TYPE_CHECKING:  # django-stubs' helper is a dev dependency: the base install lacks it
    from django_stubs_ext import WithAnnotations

from annotations.models import Dataset, ErrorType
from inference.core.verdict import SECTION_KEYS
from inference.models import Critique, GenerationRun
from rprm_web.access import AppRequest, is_adjudicator, require_adjudicator, require_admin, require_reviewer
from rprm_web.inputs import page_number

from . import agreement as pair_agreement
from . import gold, progress, reviews
from . import queue as review_queue
from .empty_states import explain_empty
from .forms import QUEUE_CHOICES, AdjudicationForm, DecisionForm, QueueFilterForm
from .models import Adjudication, Assignment, LabelCorrection, Review, ReviewItem
from .queue import QueueFilter, ReviewError

DIGITS = "1234567890"
SECTION_TITLES = {k: k.replace("_", " ").capitalize() for k in SECTION_KEYS}


def _filter(data: QueryDict | None) -> tuple[QueueFilterForm, QueueFilter]:
    form = QueueFilterForm(data or None)
    return form, form.queue_filter()


def _query(flt: QueueFilter) -> str:
    return urlencode(flt.as_query())


def item_url(item: ReviewItem, flt: QueueFilter) -> str:
    return f"{reverse('review:item', args=[item.critique.uuid])}?{_query(flt)}"


def queue_url(flt: QueueFilter) -> str:
    return f"{reverse('review:queue')}?{_query(flt)}"


def _to_queue(request: AppRequest, flt: QueueFilter) -> HttpResponse:
    # A queue page must not land inside the review screen's swap target.
    if request.htmx:
        return HttpResponseClientRedirect(queue_url(flt))
    return redirect(queue_url(flt))


# --- queue -----------------------------------------------------------------------

PAGE_SIZE = 50


class CappedPage:
    """A page of the queue without a total count (LIMIT size + 1 tells if there is more)."""

    def __init__(self, qs: QuerySet[Any, Any], number: str | None) -> None:
        self.number = page_number(number)
        start = (self.number - 1) * PAGE_SIZE
        rows = list(qs[start : start + PAGE_SIZE + 1])
        self.object_list = rows[:PAGE_SIZE]
        self.has_next = len(rows) > PAGE_SIZE
        self.has_previous = self.number > 1

    def __iter__(self) -> Iterator[Any]:
        return iter(self.object_list)

    @property
    def has_other_pages(self) -> bool:
        return self.has_next or self.has_previous

    def next_page_number(self) -> int:
        return self.number + 1

    def previous_page_number(self) -> int:
        return self.number - 1


# What a queue row shows, and nothing else: model instances of four tables (each row's
# critique text, sections and metadata JSON decoded for nothing) cost more CPU than the
# rest of the page.
_ROW_FIELDS = (
    "suspicion", "run_id", "reviews_done", "reviews_needed", "lease_expires_at", "critique__uuid",
    "critique__sample_index", "critique__verdict", "critique__p_yes", "critique__audit__signals",
    "step__index", "step__label", "step__solution__source_id",
)  # fmt: skip


def _queue_rows(rows: list[dict], request: AppRequest, query: str) -> list[dict]:
    """Rows ready to print: links, numbers and the lease holder formatted once, here, rather
    than through template filters and a `{% url %}` per row."""
    user, now = request.user, timezone.now()
    marker = "00000000-0000-0000-0000-000000000000"
    item_path = reverse("review:item", args=[marker])
    for r in rows:
        p_yes = r["critique__p_yes"]
        holder = r["holder"] if r["holder"] and r["lease_expires_at"] > now else ""
        if holder and not (user.is_staff or holder == user.username):
            holder = "taken"
        signals = r["critique__audit__signals"] or []
        r.update(
            url=f"{item_path.replace(marker, str(r['critique__uuid']))}?{query}",
            suspicion_text=f"{r['suspicion']:.2f}",
            p_yes_text="—" if p_yes is None else f"{p_yes:.3f}",
            step_number=r["step__index"] + 1,
            signals=[(s.get("title", ""), s.get("message", "")) for s in signals[:3]],
            holder_shown=holder,
        )
    return rows


def _filter_options(request: AppRequest, flt: QueueFilter) -> dict[str, list[tuple[int, str, bool]]]:
    """(id, label, selected) of the filter selects, from three narrow queries (Django's Select
    widget renders each option through the template engine)."""
    kinds = dict(GenerationRun.Kind.choices)
    runs = GenerationRun.objects.order_by("-id").values_list("id", "kind", "dataset_id")
    return {
        "datasets": [
            (pk, name, pk == flt.dataset_id)
            for pk, name in Dataset.objects.order_by("name").values_list("id", "name")
        ],
        "runs": [(pk, f"#{pk} {kinds.get(kind, kind)} · {ds}", pk == flt.run_id) for pk, kind, ds in runs],
        "error_types": [
            (pk, name, pk == flt.error_type_id)
            for pk, name in ErrorType.objects.order_by("order", "slug").values_list("id", "name")
        ],
    }


def _tab_counts(flt: QueueFilter) -> dict[str, int]:
    """Open items per queue tab, each stopping at progress.COUNT_CAP + 1 (an exact count of a million
    open items costs a scan; these are index-only scans of the partial open-queue indexes),
    all three in one query."""
    parts: list[str] = []
    params: list[Any] = []
    queues = [q for q, _ in QUEUE_CHOICES]
    for q in queues:
        scope = QueueFilter(
            queue=q, role=flt.role, dataset_id=flt.dataset_id, run_id=flt.run_id, viewer_id=flt.viewer_id
        )
        qs = review_queue.open_items(scope).order_by().values("id")[: progress.COUNT_CAP + 1]
        sql, p = qs.query.sql_with_params()
        parts.append(f"(SELECT count(*) FROM ({sql}) AS t)")
        params.extend(p)
    with connection.cursor() as cur:
        cur.execute("SELECT " + ", ".join(parts), params)
        return dict(zip(queues, cur.fetchone(), strict=True))


def queue(request: AppRequest) -> HttpResponse:
    require_reviewer(request)
    form, flt = _filter(request.GET)
    flt = replace(flt, viewer_id=request.user.id)  # the error-type filter sees only your own tags
    items = (
        review_queue.open_items(flt)
        # Few joins: with seven tables Postgres spent ~30 ms planning this query at 1M rows.
        .annotate(
            dataset_name=Subquery(Dataset.objects.filter(id=OuterRef("dataset_id")).values("name")[:1]),
            holder=Subquery(User.objects.filter(id=OuterRef("lease_holder_id")).values("username")[:1]),
        )
        .values("id", "dataset_name", "holder", *_ROW_FIELDS)
    )
    page = CappedPage(items, request.GET.get("page"))
    page.object_list = _queue_rows(page.object_list, request, _query(flt))
    counts, cap = _tab_counts(flt), progress.COUNT_CAP
    tabs, left = [], None
    for q, label in QUEUE_CHOICES:
        n = progress.Count_(cap, True) if counts[q] > cap else progress.Count_(counts[q])
        left = n if q == flt.queue else left
        tabs.append((q, label, str(n)))
    context = {
        "form": form,
        "options": _filter_options(request, flt),
        "flt": flt,
        "query": _query(flt),
        "page": page,
        "tabs": tabs,
        "mine": ReviewItem.objects.filter(lease_holder=request.user).select_related("critique").first(),
        "progress": progress.scope_progress(flt, request.user, left=left),
        # Your assignments and targets (a few grouped queries, only when you have some).
        "assigned": progress.assignment_rows(
            list(Assignment.objects.filter(reviewer=request.user).select_related("dataset"))
        ),
        "adjudication_waiting": ReviewItem.objects.filter(state=ReviewItem.State.ADJUDICATION).count()
        if is_adjudicator(request.user)
        else None,
        "runs": GenerationRun.objects.order_by("-id")[:50] if request.user.is_staff else [],
        "now": timezone.now(),
        # An empty page says why and offers the next action.
        "empty_reasons": explain_empty(flt, staff=request.user.is_staff)
        if not page.object_list and page.number == 1
        else [],
    }
    if request.htmx and request.htmx.target == "queue-table":
        return render(request, "review/queue.html#table", context)
    return render(request, "review/queue.html", context)


@require_POST
def claim(request: AppRequest) -> HttpResponse:
    require_reviewer(request)
    _, flt = _filter(request.POST)
    item = gold.claim_next(request.user, flt)  # now and then an unseen gold item
    if item is None:
        messages.info(request, "Nothing left for you in this queue.")
        return _to_queue(request, flt)
    return redirect(item_url(item, flt))


@require_POST
def release(request: AppRequest) -> HttpResponse:
    require_reviewer(request)
    _, flt = _filter(request.POST)
    review_queue.release_lease(request.user)
    return _to_queue(request, flt)


# --- the review screen -------------------------------------------------------------


# Six tables: each more join costs Postgres ~0.5-1 ms of planning on every request; the
# dataset, run and lease holder are fetched lazily (cheap lookups by primary key).
_SCREEN_RELATED = ("critique__audit", "step__solution__problem")


class ScreenFields(TypedDict):
    """What `_item_or_404` adds to a review item for the screen."""

    dataset_name: str | None
    run_uuid: UUID | None
    my_review_id: int | None
    has_corrections: bool


# A string: WithAnnotations takes one argument at run time, two for the type checker.
ScreenItem: TypeAlias = "WithAnnotations[ReviewItem, ScreenFields]"


def _item_or_404(critique_uuid: UUID, user: User, *, create: bool = False) -> ScreenItem:
    """The item with what the screen needs in one query: scalar subqueries (not joins, which
    cost planning time) for the dataset name, run uuid, the user's own review and whether
    the step has label corrections, so most screens skip those queries.

    A critique the audit has not queued yet gets an unsaved item on GET (a GET never
    writes); `create` (POSTs) stores it."""
    qs = (
        ReviewItem.objects.select_related(*_SCREEN_RELATED)
        .annotate(
            dataset_name=Subquery(Dataset.objects.filter(id=OuterRef("dataset_id")).values("name")[:1]),
            run_uuid=Subquery(GenerationRun.objects.filter(id=OuterRef("run_id")).values("uuid")[:1]),
            my_review_id=Subquery(
                Review.objects.filter(item=OuterRef("pk"), reviewer=user, undone_at__isnull=True).values(
                    "id"
                )[:1]
            ),
            has_corrections=Exists(LabelCorrection.objects.filter(step_id=OuterRef("step_id"))),
        )
        .order_by()
    )
    found: list[ScreenItem] = list(qs.filter(critique__uuid=critique_uuid)[:1])
    if found:
        return found[0]
    critique = get_object_or_404(Critique.objects.only("id"), uuid=critique_uuid)
    if create:
        review_queue.ensure_review_items([critique.id])  # audit not run yet: made on the first POST
        created: ScreenItem = qs.get(critique_id=critique.id)
        return created
    [built] = review_queue.build_review_items([critique.id])
    unsaved = cast("ScreenItem", built)
    unsaved.dataset_name = (
        Dataset.objects.filter(id=unsaved.dataset_id).values_list("name", flat=True).first()
    )
    unsaved.run_uuid = GenerationRun.objects.filter(id=unsaved.run_id).values_list("uuid", flat=True).first()
    unsaved.my_review_id = None
    unsaved.has_corrections = LabelCorrection.objects.filter(step_id=unsaved.step_id).exists()
    return unsaved


_error_types_cache: tuple[float, list] = (0.0, [])


def _error_types() -> list[tuple[str, ErrorType]]:
    """The taxonomy with its digit keys; cached a minute per process (it is seeded data)."""
    global _error_types_cache
    at, rows = _error_types_cache
    if time.monotonic() - at > 60 or not rows:
        rows = list(zip(DIGITS, ErrorType.objects.active(), strict=False))
        _error_types_cache = (time.monotonic(), rows)
    return rows


DECISIONS = [
    ("sound", "s", "Sound"),
    ("flawed", "f", "Flawed"),
    ("label_wrong", "l", "Label wrong"),
    ("skip", "x", "Skip"),
]


def _siblings(critique: Critique) -> list[Critique]:
    return list(
        Critique.objects.filter(run_id=critique.run_id, step_id=critique.step_id, gold_copy=False)
        # A gold copy looks like any other item: its source (same sample) is not shown beside it.
        .exclude(sample_index=critique.sample_index)
        .select_related("audit")
        .order_by("sample_index")
    )


def _last_review(user: User) -> Review | None:
    return (
        Review.objects.filter(reviewer=user, undone_at__isnull=True)
        .select_related("item__critique")
        # Only its uuid is used (links); not another critique's text and sections.
        .defer("item__critique__text", "item__critique__sections", "item__critique__missing_sections")
        .order_by("-created_at", "-id")
        .first()
    )


def _my_review(item: ScreenItem, last_review: Review | None) -> Review | None:
    if item.my_review_id is None:
        return None
    if last_review is not None and last_review.id == item.my_review_id:
        return last_review
    return Review.objects.get(id=item.my_review_id)


def _corrections(item: ScreenItem, user: User, *, own_and_decided: bool) -> list[LabelCorrection]:
    if not item.has_corrections:
        return []
    corrections = LabelCorrection.objects.filter(step_id=item.step_id).select_related("author", "decided_by")
    if own_and_decided:
        # Corrections are per step, shared by sibling critiques: while deciding (and
        # always for reviewers) only your own proposals and decided ones show.
        decided = [LabelCorrection.Status.ACCEPTED, LabelCorrection.Status.REJECTED]
        corrections = corrections.filter(Q(author=user) | Q(status__in=decided))
    return list(corrections)


def _screen_urls(
    critique: Critique, flt: QueueFilter, previous: ReviewItem | None, following: ReviewItem | None
) -> dict[str, str]:
    """URLs reversed once here rather than in template loops."""
    query = _query(flt)
    return {
        "queue": f"{reverse('review:queue')}?{query}",
        "decide": f"{reverse('review:decide', args=[critique.uuid])}?{query}",
        "undo": reverse("review:undo"),
        "claim": reverse("review:claim"),
        "take": f"{reverse('review:take', args=[critique.uuid])}?{query}",
        "previous": item_url(previous, flt) if previous else "",
        "following": item_url(following, flt) if following else "",
    }


def _screen_context(
    request: AppRequest,
    item: ScreenItem,
    flt: QueueFilter,
    *,
    form: DecisionForm | None = None,
    admin_view: bool = False,
) -> dict[str, Any]:
    critique = item.critique
    user = request.user
    audit = getattr(critique, "audit", None)  # None until the run is audited
    last_review = _last_review(user)
    my_review = _my_review(item, last_review)
    previous, following = reviews.neighbours(user, item, here=my_review, last=last_review)
    lease_live = item.lease_is_live()
    # Deciding needs the lease; a lapsed one still counts while nobody else took the item.
    holds_lease = item.lease_holder_id == user.id
    is_open = item.state == ReviewItem.State.OPEN and my_review is None and not admin_view
    can_decide = is_open and holds_lease
    can_take = is_open and not holds_lease and not lease_live
    # Blind double review: while the item is sealed a reviewer (and an admin deciding it)
    # sees no state, count or other review of it.
    hide_others = reviews.others_hidden(item, user, deciding=can_decide or can_take)
    # Admins see every review; adjudicators on the adjudication screen (hide_others still
    # applies: nobody sees the other review of a sealed item they may decide).
    sees_all = user.is_staff or (admin_view and is_adjudicator(user))
    context = {
        "item": item,
        "critique": critique,
        "step": item.step,
        "solution": item.step.solution,
        # Not the PRM800K alternatives of every step (JSON, unused here).
        "steps": list(item.step.solution.steps.defer("alternatives")),
        "n_visible": item.step.index + 1,
        "siblings": _siblings(critique),
        "signals": audit.signals if audit else None,
        "audit": audit,
        "sections": [(SECTION_TITLES[k], critique.sections.get(k, "")) for k in SECTION_KEYS],
        "my_review": my_review,
        "last_review": last_review,
        "previous": previous,
        "following": following,
        "lease_live": lease_live,
        "holds_lease": holds_lease,
        "can_decide": can_decide,
        "can_take": can_take,
        "hide_others": hide_others,
        "error_types": _error_types(),
        "form": form or DecisionForm(),
        "default_correction": reviews.default_correction(item.step.label),
        "label_choices": [v for v in ("correct", "incorrect", "neutral") if v != item.step.label],
        "corrections": _corrections(item, user, own_and_decided=not sees_all or can_decide or can_take),
        "flt": flt,
        "query": _query(flt),
        "hidden_filter": list(flt.as_query().items()),
        "decisions": DECISIONS,
        "is_admin": user.is_staff,
        "urls": _screen_urls(critique, flt, previous, following),
    }
    if sees_all and not hide_others and item.pk is not None:
        context["all_reviews"] = list(item.reviews.select_related("reviewer").prefetch_related("error_types"))
        context["events"] = list(item.events.select_related("actor").order_by("-created_at", "-id")[:30])
    return context


def item(request: AppRequest, critique_uuid: UUID) -> HttpResponse:
    require_reviewer(request)
    review_item = _item_or_404(critique_uuid, request.user)
    _, flt = _filter(request.GET)
    context = _screen_context(request, review_item, flt)
    context["progress"] = progress.scope_progress(flt, request.user)
    if request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request:
        response = render(request, "review/item.html#screen", context)
        response["HX-Push-Url"] = request.get_full_path()
        return response
    return render(request, "review/item.html", context)


@require_POST
def decide(request: AppRequest, critique_uuid: UUID) -> HttpResponse:
    require_reviewer(request)
    review_item = _item_or_404(critique_uuid, request.user)
    _, flt = _filter(request.GET)
    if review_item.pk is None:  # never queued, so never taken: nothing to decide yet
        messages.error(request, "Take this critique first: you do not hold it.")
        return redirect(item_url(review_item, flt))
    form = DecisionForm(request.POST)
    if not form.is_valid():
        context = _screen_context(request, review_item, flt, form=form)
        return render(request, "review/item.html#screen" if request.htmx else "review/item.html", context)
    d = form.cleaned_data
    try:
        reviews.submit_review(
            review_item,
            request.user,
            d["decision"],
            error_types=d["error_types"],
            note=d["note"],
            time_on_task_ms=d["time_on_task_ms"],
            proposed_label=d["proposed_label"] or None,
        )
    except ReviewError as exc:
        messages.error(request, str(exc))
        return redirect(item_url(review_item, flt))
    following = gold.claim_next(request.user, flt)  # auto-advance
    if following is None:
        messages.success(request, "Saved. Nothing left for you in this queue.")
        return _to_queue(request, flt)
    return redirect(item_url(following, flt))


@require_POST
def take(request: AppRequest, critique_uuid: UUID) -> HttpResponse:
    """Lease the critique on this screen (it was opened by link, not claimed from the queue)."""
    require_reviewer(request)
    critique = get_object_or_404(Critique.objects.only("id", "uuid"), uuid=critique_uuid)
    _, flt = _filter(request.GET)
    try:
        review_queue.take_item(critique.id, request.user)
    except ReviewError as exc:
        messages.error(request, str(exc))
    return redirect(f"{reverse('review:item', args=[critique.uuid])}?{_query(flt)}")


@require_POST
def undo(request: AppRequest) -> HttpResponse:
    require_reviewer(request)
    _, flt = _filter(request.POST)
    try:
        review = reviews.undo_last(request.user)
    except ReviewError as exc:
        messages.error(request, str(exc))
        return _to_queue(request, flt)
    if review is None:
        messages.info(request, "Nothing to undo.")
        return _to_queue(request, flt)
    messages.info(request, f"Undid your \u201c{review.get_decision_display()}\u201d decision: decide again.")
    return redirect(item_url(review.item, flt))


# --- agreement ---------------------------------------------------------------------


def agreement(request: AppRequest) -> HttpResponse:
    require_reviewer(request)
    # A live kappa moves with each decision: a reviewer watching it would learn whether the
    # other reviewer agreed. Pairs are for admins.
    # Teacher critiques only unless asked (?role=all): student samples are DPO material.
    role = "all" if request.GET.get("role") == "all" else "teacher"
    items = ReviewItem.objects.all()
    if role == "teacher":
        items = items.filter(
            run_id__in=GenerationRun.objects.filter(kind__in=GenerationRun.TEACHER_KINDS).values("id")
        )
    pairs, by_type = pair_agreement.agreement_tables(items) if request.user.is_staff else (None, None)
    decided = Review.objects.filter(undone_at__isnull=True, item__in=items)
    if not request.user.is_staff:  # blind: decisions on sealed items are not counted yet
        decided = decided.exclude(reviews.sealed_q("item__"))
    per_reviewer = (
        decided.values("reviewer__username")
        .annotate(
            n=Count("id"),
            sound=Count("id", filter=Q(decision="sound")),
            flawed=Count("id", filter=Q(decision="flawed")),
            label_wrong=Count("id", filter=Q(decision="label_wrong")),
            skip=Count("id", filter=Q(decision="skip")),
        )
        .order_by("reviewer__username")
    )
    context = {"pairs": pairs, "by_type": by_type, "per_reviewer": per_reviewer, "role": role}
    return render(request, "review/agreement.html", context)


# --- adjudication (adjudicators and admins) ---------------------------------------------


def _waiting() -> QuerySet[ReviewItem]:
    """Items awaiting adjudication, oldest first (reviewitem_adjudication_idx)."""
    return ReviewItem.objects.filter(state=ReviewItem.State.ADJUDICATION).order_by("updated_at", "id")


def _next_waiting(user: User, *, after: ReviewItem | None = None) -> ReviewItem | None:
    """The next item to settle: oldest first, never one the adjudicator reviewed."""
    qs = _waiting().exclude(reviews__reviewer=user).select_related("critique")
    if after is not None:
        qs = qs.exclude(pk=after.pk)
    return qs.first()


def adjudication_list(request: AppRequest) -> HttpResponse:
    require_adjudicator(request)
    # Undone decisions show too (marked): an item whose decision was undone after both were
    # in comes here even when the reviews now agree.
    active = (
        Review.objects.order_by("created_at", "id").select_related("reviewer").prefetch_related("error_types")
    )
    items = (
        _waiting()
        .select_related("critique", "step__solution", "dataset")
        .prefetch_related(Prefetch("reviews", queryset=active, to_attr="active_reviews"))
    )
    page = Paginator(items, 50).get_page(request.GET.get("page"))
    corrections = LabelCorrection.objects.filter(
        status=LabelCorrection.Status.PENDING, review__isnull=True
    ).select_related("author", "step__solution")
    following = _next_waiting(request.user)
    context = {"page": page, "corrections": corrections, "following": following}
    return render(request, "review/adjudication_list.html", context)


def _side_by_side(item: ReviewItem) -> list[Review]:
    """The item's reviews for the top of the adjudication screen, each with the label its
    reviewer proposed (`proposed`), undone ones last."""
    return list(
        item.reviews.select_related("reviewer")
        .prefetch_related("error_types", "label_corrections")
        .order_by(F("undone_at").asc(nulls_first=True), "created_at", "id")
    )


def adjudicate(request: AppRequest, critique_uuid: UUID) -> HttpResponse:
    """The adjudication work screen: the reviews side by side at the top, one key a
    decision (s f l), digits for tags, save-and-next, x to pass, u to undo."""
    require_adjudicator(request)
    review_item = _item_or_404(critique_uuid, request.user, create=request.method == "POST")
    form = AdjudicationForm(request.POST or None)
    if request.method == "POST" and request.POST.get("decision") == "skip":
        return _to_next_adjudication(request, review_item, "Passed: it waits for another adjudicator.")
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            reviews.adjudicate(
                review_item, request.user, d["decision"], error_types=d["error_types"], note=d["note"]
            )
        except ReviewError as exc:
            messages.error(request, str(exc))
        else:
            return _to_next_adjudication(
                request, review_item, f"Adjudicated as {d['decision'].replace('_', ' ')}."
            )
    context = _screen_context(request, review_item, QueueFilter(), admin_view=True)
    context.update(
        adjudication_form=form,
        side_by_side=_side_by_side(review_item) if review_item.pk and "all_reviews" in context else [],
        reviewed_it=any(r.reviewer_id == request.user.id for r in context.get("all_reviews", [])),
        following=_next_waiting(request.user, after=review_item),
        last_adjudication=Adjudication.objects.filter(decided_by=request.user)
        .select_related("item__critique")
        .order_by("-created_at", "-id")
        .first(),
        adjudication_decisions=[
            ("sound", "s", "Sound"),
            ("flawed", "f", "Flawed"),
            ("label_wrong", "l", "Label wrong"),
        ],
    )
    return render(request, "review/adjudicate.html", context)


def _to_next_adjudication(request: AppRequest, item: ReviewItem, message: str) -> HttpResponse:
    messages.success(request, message)
    following = _next_waiting(request.user, after=item)
    if following is None:
        messages.info(request, "Nothing else waits for your adjudication.")
        return redirect("review:adjudication_list")
    return redirect("review:adjudicate", critique_uuid=following.critique.uuid)


@require_POST
def adjudication_undo(request: AppRequest) -> HttpResponse:
    require_adjudicator(request)
    item = reviews.undo_adjudication(request.user)
    if item is None:
        messages.info(request, "Nothing to undo.")
        return redirect("review:adjudication_list")
    messages.info(request, "Undid your last adjudication: decide it again.")
    return redirect("review:adjudicate", critique_uuid=item.critique.uuid)


@require_POST
def decide_correction(request: AppRequest, correction_id: int) -> HttpResponse:
    require_adjudicator(request)
    correction = get_object_or_404(LabelCorrection, id=correction_id)
    try:
        reviews.decide_label_correction(correction, request.user, accept=request.POST.get("accept") == "1")
    except ReviewError as exc:
        messages.error(request, str(exc))
    return redirect("review:adjudication_list")


@require_POST
def audit_run(request: AppRequest) -> HttpResponse:
    require_admin(request)
    run = get_object_or_404(GenerationRun, id=request.POST.get("run") or 0)
    from .tasks import queue_audit

    # "audit now" from an empty queue audits what is missing; the panel's form recomputes.
    queue_audit(run.id, recompute=request.POST.get("recompute") != "0")
    messages.success(request, f"Audit of run #{run.id} queued: signals appear as the worker finishes.")
    return redirect("review:queue")
