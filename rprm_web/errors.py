"""The styled 403 page: what was refused, the role it needs, and the admins to ask.

`PermissionDeniedMiddleware` answers a view's `PermissionDenied` itself, so Django logs an
ordinary refusal as one warning line ("Forbidden: /path") rather than with a traceback;
`handler403` (rprm_web/urls.py) renders the same page for refusals raised elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .access import ROLE_WORDS, RoleRequired, roles

MAX_ADMINS_LISTED = 10


def admins_to_ask() -> list[User]:
    return list(
        User.objects.filter(is_active=True, is_staff=True)
        .only("username", "email", "first_name", "last_name")
        .order_by("username")[:MAX_ADMINS_LISTED]
    )


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    role = exception.role if isinstance(exception, RoleRequired) else None
    user = getattr(request, "user", None)
    held = sorted(roles(user)) if user is not None and user.is_authenticated else []
    context = {
        "role": role,
        "role_words": ROLE_WORDS.get(role or ""),
        "reason": "" if role else str(exception or ""),
        "held": held,
        "admins": admins_to_ask(),
        "hide_nav": not held,  # every link there would answer this page again
    }
    return render(request, "403.html", context, status=403)


class PermissionDeniedMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, PermissionDenied):
            return forbidden(request, exception)
        return None
