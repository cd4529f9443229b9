"""Audit dashboards (issue 7): error types, two slices side by side, review operations,
and the drill-down list behind every number.

Each view is the same five steps: `require_reviewer`, parse the slice (`filters`), get
the numbers (by_type, operations, critique_list, summaries), answer `?csv=<table>` from
the column specs (`tables`), or attach the drill-down links (`links`), build the Chart.js
specs (`charts`) and render. Filters are GET forms: with htmx the page body swaps in
place (`#dash-body` partial, URL pushed); without JavaScript they submit normally.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from annotations.models import ErrorType
from inference.models import Critique
from rprm_web.access import AppRequest, require_admin, require_reviewer

from . import by_type, charts, critique_list, filters, links, operations, summaries, tables
from .charts import Spec
from .filters import SliceForm
from .links import LinkedComparison
from .slices import BASES


class ComparePage(LinkedComparison):
    """The compare page's two slices, linked, with their charts and names."""

    charts: dict[str, Spec | None]
    name_a: str
    name_b: str


def _blind(request: AppRequest) -> bool:
    """Reviewers' numbers leave out critiques in blind double review; admins see all."""
    return not request.user.is_staff


def _render(request: AppRequest, template: str, context: dict) -> HttpResponse:
    if request.htmx and request.htmx.target == "dash-body":
        return render(request, f"{template}#body", context)
    return render(request, template, context)


def error_types(request: AppRequest) -> HttpResponse:
    require_reviewer(request)
    fresh = summaries.freshness()
    form = SliceForm(request.GET or None)
    slc, basis = form.slice(blind=_blind(request)), form.chosen_basis()
    types = list(ErrorType.objects.all())
    trend_type = filters.error_type_choice(request.GET, types)
    run_ids = slc.run_ids()
    table = by_type.error_type_table(slc, basis, run_ids=run_ids, types=types)
    trend = by_type.weekly_trend(slc, basis, trend_type, run_ids=run_ids)
    matrix = by_type.confusion(slc, basis, trend_type, run_ids=run_ids)
    evaluation = by_type.evaluation_comparison(slc, run_ids=run_ids)
    if csv := tables.error_types_csv(
        request.GET.get("csv"),
        basis=basis,
        table=table,
        trend=trend,
        trend_type=trend_type,
        matrix=matrix,
        evaluation=evaluation,
    ):
        return csv

    base = filters.slice_params(slc, basis)
    tbase = links.with_type(base, trend_type)
    linked = links.type_rows(table, base)
    linked_trend = links.trend_weeks(trend, tbase)
    linked_matrix = links.matrix_cells(matrix, tbase)
    context = {
        "form": form,
        "slice": slc,
        "basis": basis,
        "basis_name": BASES[basis],
        "query": urlencode(request.GET),
        "base_query": urlencode(base),
        "fresh": fresh,
        "table": linked,
        "types": types,
        "trend_type": trend_type,
        "trend": linked_trend,
        "matrix": linked_matrix,
        "evaluation": evaluation,
        "charts": charts.error_type_charts(linked["rows"], linked_trend, linked_matrix, evaluation),
        "tab": "types",
    }
    return _render(request, "dashboards/error_types.html", context)


def compare(request: AppRequest) -> HttpResponse:
    require_reviewer(request)
    fresh = summaries.freshness()
    form = SliceForm(request.GET or None)
    slc, basis = form.slice(blind=_blind(request)), form.chosen_basis()
    choices = filters.side_choices(form.runs)
    a, b = filters.sides(request.GET, choices)
    same = request.GET.get("same") == "1"
    types = list(ErrorType.objects.all())
    trend_type = filters.error_type_choice(request.GET, types)
    labels = {v: label for _, group in choices for v, label in group}
    page: ComparePage | None = None
    if a and b:
        result = by_type.compare(slc, a, b, basis, same_steps=same, trend_type=trend_type, types=types)
        name_a, name_b = labels[filters.side_key(a)], labels[filters.side_key(b)]
        if csv := tables.compare_csv(request.GET.get("csv"), result, name_a, name_b):
            return csv
        linked = links.compare_rows(result, filters.slice_params(slc, basis), a, b, same)
        page = {
            **linked,
            "charts": charts.compare_charts(linked, name_a, name_b),
            "name_a": name_a,
            "name_b": name_b,
        }
    context = {
        "form": form,
        "basis": basis,
        "basis_name": BASES[basis],
        "choices": choices,
        "a": filters.side_key(a),
        "b": filters.side_key(b),
        "same": same,
        "same_possible": bool(a and b and a[0] != "dataset" and b[0] != "dataset"),
        "types": types,
        "trend_type": trend_type,
        "result": page,
        "extra_rows": [page["untyped"], page["total"]] if page else [],
        "query": urlencode(request.GET),
        "fresh": fresh,
        "tab": "compare",
    }
    return _render(request, "dashboards/compare.html", context)


def review_ops(request: AppRequest) -> HttpResponse:
    require_reviewer(request)
    fresh = summaries.freshness()
    form = SliceForm(request.GET or None)
    slc = form.slice(blind=_blind(request))
    period = filters.period(request.GET)
    matched_only = request.GET.get("signals") != "all"
    progress = operations.queue_progress(slc)
    activity = operations.reviewer_activity(slc, weeks=period)
    # Blind double review: pair agreement moves with each decision (and anyone can refresh),
    # so it would tell a reviewer whether the other one agreed. Admins only.
    pairs = operations.reviewer_pairs(slc) if request.user.is_staff else []
    backlog = operations.adjudication_backlog(slc)
    signals = operations.signal_table(slc, matched_only=matched_only)
    if csv := tables.review_csv(
        request.GET.get("csv"),
        progress=progress,
        activity=activity,
        pairs=pairs,
        signals=signals,
        backlog=backlog,
    ):
        return csv

    base = filters.slice_params(slc, "either")
    linked = links.review_rows(base, progress, activity, pairs, signals, matched_only=matched_only)
    context = {
        "form": form,
        "period": period,
        "periods": filters.PERIODS,
        "matched_only": matched_only,
        **linked,
        "backlog": backlog,
        "charts": charts.review_charts(linked, backlog),
        "query": urlencode(request.GET),
        "fresh": fresh,
        "tab": "reviews",
        "adjudication_url": links.drill_url(base, outcome="adjudication"),
    }
    return _render(request, "dashboards/reviews.html", context)


def critiques(request: AppRequest) -> HttpResponse:
    """The critiques behind a dashboard number, newest first, 50 a page (no total count:
    the number on the dashboard is the count)."""
    require_reviewer(request)
    form = SliceForm(request.GET or None)
    d = filters.drill_from(request.GET, form, blind=_blind(request))
    if csv := tables.critiques_csv(request.GET.get("csv"), critique_list.every(d)):
        return csv
    page = filters.page_number(request.GET)
    rows, has_next = critique_list.page(d, page)
    params = request.GET.copy()
    for key in ("page", "csv"):
        params.pop(key, None)
    context = {
        "form": form,
        "drill": d,
        "controls": filters.drill_controls(d, list(ErrorType.objects.all())),
        "described": filters.describe(d) + form.described(),
        "rows": rows,
        "page": page,
        "has_next": has_next,
        "query": params.urlencode(),
        "tab": "",
    }
    return _render(request, "dashboards/critiques.html", context)


# --- refresh ---------------------------------------------------------------------------------


@require_POST
def refresh(request: AppRequest) -> HttpResponse:
    """Rebuild the summaries now (small installs) or queue the rebuild (large ones).

    Admins only: reviewers see the last refresh (a stale one is rebuilt on its own)."""
    require_admin(request)
    small = Critique.objects.order_by()[: summaries.sync_limit() + 1].count() <= summaries.sync_limit()
    if small:
        summaries.refresh_now(request.user)
    else:
        summaries.request_refresh(request.user)
    back = request.POST.get("next") or ""
    if not back.startswith("/dashboards/"):
        back = reverse("dashboards:error_types")
    return redirect(back)


def refresh_status(request: AppRequest) -> HttpResponse:
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
