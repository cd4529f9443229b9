"""Access helpers: every view calls one of these first.

Three roles, each a group (seeded by migrations; given and taken on the team page):
- `reviewer`: browses data and reviews critiques;
- `adjudicator`: also settles disagreements and disputed labels (the adjudication screens);
- `admin`: everything, including imports, runs, training and the team page. Admins are
  staff users (`is_staff`, kept in step with the `admin` group by the team actions).
Anyone else who is logged in gets the 403 page, which names the role they lack and the
admins who can give it (`RoleRequired`, rendered by rprm_web/errors.py).
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

REVIEWER, ADJUDICATOR, ADMIN = "reviewer", "adjudicator", "admin"
ROLES = (REVIEWER, ADJUDICATOR, ADMIN)
ROLE_WORDS = {
    REVIEWER: "reviews critiques and browses the data",
    ADJUDICATOR: "reviews, and settles reviewers' disagreements and disputed labels",
    ADMIN: "runs imports, generation and training, and manages the team",
}


class AppRequest(HttpRequest):
    user: User
    htmx: HtmxDetails


class RoleRequired(PermissionDenied):
    """Refused for want of a role: the 403 page names it."""

    def __init__(self, role: str) -> None:
        self.role = role
        super().__init__(f"This page needs the {role} role.")


def roles(user: User) -> set[str]:
    """The user's roles; the groups are cached on the user for the request's lifetime."""
    if not user.is_authenticated or not user.is_active:
        return set()
    if not hasattr(user, "_rprm_groups"):
        user._rprm_groups = set(user.groups.values_list("name", flat=True))  # type: ignore[attr-defined]
    held: set[str] = user._rprm_groups & set(ROLES)  # type: ignore[attr-defined]
    return held | {ADMIN} if user.is_staff else held


def is_reviewer(user: User) -> bool:
    """Any role lets a user browse and review (adjudicators and admins review too)."""
    # Staff are admins: no query for their groups.
    return (user.is_active and user.is_staff) or bool(roles(user))


def is_adjudicator(user: User) -> bool:
    return (user.is_active and user.is_staff) or bool(roles(user) & {ADJUDICATOR, ADMIN})


def require_reviewer(request: AppRequest) -> None:
    if not is_reviewer(request.user):
        raise RoleRequired(REVIEWER)


def require_adjudicator(request: AppRequest) -> None:
    if not is_adjudicator(request.user):
        raise RoleRequired(ADJUDICATOR)


def require_admin(request: AppRequest) -> None:
    if not request.user.is_staff:
        raise RoleRequired(ADMIN)
