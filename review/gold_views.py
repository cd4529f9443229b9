"""The calibration page (admins): reviewers' accuracy on gold items with Wilson
intervals, flagged reviewers, the gold items themselves; marking a critique gold and
seeding planted flaws. Reviewers never see it: a count that moves right after a
decision would tell them that item was gold."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from annotations.models import ErrorType
from inference.models import Critique
from rprm_web.access import AppRequest, require_admin

from . import gold
from .models import GoldItem, Review
from .queue import ReviewError


class MarkGoldForm(forms.Form):
    critique = forms.UUIDField(label="Critique UUID")
    answer = forms.ChoiceField(choices=[c for c in Review.Decision.choices if c[0] != Review.Decision.SKIP])
    error_type = forms.ModelChoiceField(ErrorType.objects.active(), required=False)


def calibration(request: AppRequest):
    require_admin(request)
    people = gold.calibration()
    items = (
        GoldItem.objects.select_related("critique__step__solution", "error_type")
        .annotate(served=Count("servings"))
        .order_by("-created_at", "-id")[:200]
    )
    context = {
        "people": people,
        "flagged": [c for c in people if c.flagged],
        "items": items,
        "rate": gold.gold_rate(),
        "bar": gold.min_accuracy(),
        "min_n": gold.min_answers(),
        "form": MarkGoldForm(),
    }
    return render(request, "review/calibration.html", context)


def _back(request: AppRequest) -> HttpResponseRedirect:
    """Back to the screen the buttons were on (review, adjudication), else calibration."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return HttpResponseRedirect(target)
    return redirect("review:calibration")


@require_POST
def mark_gold(request: AppRequest):
    require_admin(request)
    form = MarkGoldForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give a critique UUID and its answer.")
        return _back(request)
    d = form.cleaned_data
    critique = get_object_or_404(Critique, uuid=d["critique"])
    try:
        gold.mark_gold(critique, request.user, d["answer"], error_type=d["error_type"])
    except ReviewError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Marked gold: it will be served blind to reviewers who have not seen it.")
    return _back(request)


@require_POST
def seed(request: AppRequest):
    require_admin(request)
    made = gold.seed_flaws(limit=20, admin=request.user)
    messages.success(request, f"Seeded {len(made)} planted flaws from sound, matched critiques.")
    return redirect("review:calibration")
