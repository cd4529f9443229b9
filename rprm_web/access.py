"""Access helpers: every view calls one of these first.

Roles: staff users (group `admin`) run imports, generation and training;
members of group `reviewer` (and staff) browse data and review critiques.
Anyone else who is logged in sees nothing (403).
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class AppRequest(HttpRequest):
    user: User
    htmx: HtmxDetails


def is_reviewer(user: User) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_staff:
        return True
    # The groups are cached on the user for the request's lifetime.
    if not hasattr(user, "_rprm_groups"):
        user._rprm_groups = set(user.groups.values_list("name", flat=True))  # type: ignore[attr-defined]
    return bool(user._rprm_groups & {"reviewer", "admin"})  # type: ignore[attr-defined]


def require_reviewer(request: AppRequest) -> None:
    if not is_reviewer(request.user):
        raise PermissionDenied("Reviewers and admins only.")


def require_admin(request: AppRequest) -> None:
    if not request.user.is_staff:
        raise PermissionDenied("Admins only.")
