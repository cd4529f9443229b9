"""`{% mark_gold critique %}`: the admins' "mark gold" buttons on the review and
adjudication screens (review/gold_views.py), with the critique's current gold answer.
Renders nothing for anyone else, or on a gold copy: reviewers never learn what is gold."""

from __future__ import annotations

from typing import Any

from django import template

from annotations.models import ErrorType
from inference.models import Critique

from ..models import GoldItem, Review

register = template.Library()

ANSWERS = [
    (Review.Decision.SOUND, "sound"),
    (Review.Decision.FLAWED, "flawed"),
    (Review.Decision.LABEL_WRONG, "label wrong"),
]


@register.inclusion_tag("review/_mark_gold.html", takes_context=True)
def mark_gold(context: template.Context, critique: Critique) -> dict[str, Any]:
    request = context["request"]
    if not request.user.is_staff or critique.gold_copy:
        return {"show": False}
    current = GoldItem.objects.filter(critique=critique, flaw=GoldItem.Flaw.NONE, active=True).first()
    return {
        "show": True,
        "critique": critique,
        "current": current,
        "answers": ANSWERS,
        "error_types": ErrorType.objects.active(),
        "next": request.get_full_path(),
        "csrf_token": context.get("csrf_token"),
    }
