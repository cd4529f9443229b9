"""The team pages (admins): members and their roles, invitations, assignments, progress
and bulk work on items; plus the invitee's set-password page.

Every view starts with an access helper; writes go through review/team.py and answer with
a redirect (plain POST forms, so the pages work without JavaScript).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import SetPasswordForm
from django.contrib.auth.models import User
from django.contrib.auth.tokens import default_token_generator
from django.db.models import Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.encoding import force_str
from django.utils.http import urlsafe_base64_decode
from django.views.decorators.http import require_POST

from rprm_web.access import AppRequest, require_admin

from . import progress, team
from .models import Assignment
from .queue import ReviewError
from .team_forms import AssignForm, BulkForm, MemberForm, RolesForm


def _members() -> list[User]:
    assignments = Assignment.objects.select_related("dataset", "run").order_by("created_at", "id")
    return list(
        User.objects.prefetch_related(
            "groups", Prefetch("review_assignments", queryset=assignments)
        ).order_by("-is_active", "username")
    )


def members(request: AppRequest) -> HttpResponse:
    require_admin(request)
    return render(request, "review/team.html", _members_context(MemberForm()))


def _members_context(form: MemberForm) -> dict[str, Any]:
    rows = progress.reviewer_rows(_members())
    return {"rows": [(r, team.granted_roles(r.user), team.is_invited(r.user)) for r in rows], "form": form}


@require_POST
def create(request: AppRequest) -> HttpResponse:
    require_admin(request)
    form = MemberForm(request.POST)
    if not form.is_valid():
        return render(request, "review/team.html", _members_context(form), status=422)
    d = form.cleaned_data
    try:
        user = team.create_member(
            request.user, d["username"], email=d["email"], roles=d["roles"], password=d["password"]
        )
    except ReviewError as exc:
        messages.error(request, str(exc))
        return redirect("team:members")
    how = "with the password you chose" if d["password"] else "as invited: hand them the link below"
    messages.success(request, f"Created {user.username} {how}.")
    return redirect("team:member", user_id=user.id)


def member(request: AppRequest, user_id: int) -> HttpResponse:
    require_admin(request)
    user = get_object_or_404(User, id=user_id)
    held = team.granted_roles(user)
    assignments = list(Assignment.objects.filter(reviewer=user).select_related("dataset", "run"))
    invited = team.is_invited(user)
    context = {
        "member": user,
        "held": held,
        "roles_form": RolesForm(initial={"roles": held}),
        "assign_form": AssignForm(),
        "assignments": progress.assignment_rows(assignments),
        "stats": progress.reviewer_rows([user])[0],
        "invited": invited,
        "invite_url": request.build_absolute_uri(team.invite_path(user))
        if invited and user.is_active
        else "",
        "is_self": user.pk == request.user.pk,
        "timeout_days": settings.PASSWORD_RESET_TIMEOUT // 86400,
    }
    return render(request, "review/team_member.html", context)


def _done(request: AppRequest, user_id: int, outcome: str | ReviewError) -> HttpResponse:
    if isinstance(outcome, ReviewError):
        messages.error(request, str(outcome))
    else:
        messages.success(request, outcome)
    return redirect("team:member", user_id=user_id)


@require_POST
def set_roles(request: AppRequest, user_id: int) -> HttpResponse:
    require_admin(request)
    user = get_object_or_404(User, id=user_id)
    form = RolesForm(request.POST)
    if not form.is_valid():
        return _done(request, user_id, ReviewError("Unknown role."))
    try:
        team.set_roles(request.user, user, form.cleaned_data["roles"])
    except ReviewError as exc:
        return _done(request, user_id, exc)
    given = ", ".join(form.cleaned_data["roles"]) or "no role"
    return _done(request, user_id, f"{user.username} now has: {given}.")


@require_POST
def set_active(request: AppRequest, user_id: int) -> HttpResponse:
    require_admin(request)
    user = get_object_or_404(User, id=user_id)
    active = request.POST.get("active") == "1"
    try:
        team.set_active(request.user, user, active)
    except ReviewError as exc:
        return _done(request, user_id, exc)
    return _done(request, user_id, f"{user.username} is {'active again' if active else 'deactivated'}.")


@require_POST
def reset_password(request: AppRequest, user_id: int) -> HttpResponse:
    require_admin(request)
    user = get_object_or_404(User, id=user_id)
    if user.pk == request.user.pk:
        return _done(request, user_id, ReviewError("Change your own password from your account, not here."))
    team.reset_to_invite(request.user, user)
    return _done(request, user_id, f"{user.username}'s password is cleared: hand them the new link.")


@require_POST
def assign(request: AppRequest, user_id: int) -> HttpResponse:
    require_admin(request)
    user = get_object_or_404(User, id=user_id)
    form = AssignForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(str(e) for errs in form.errors.values() for e in errs)
        return _done(request, user_id, ReviewError(errors))
    d = form.cleaned_data
    try:
        team.assign(request.user, user, dataset=d["dataset"], run=d["run"], target=d["target"])
    except ReviewError as exc:
        return _done(request, user_id, exc)
    scope = f"dataset {d['dataset'].name}" if d["dataset"] else f"run #{d['run'].id}"
    return _done(request, user_id, f"Assigned {scope} to {user.username}.")


@require_POST
def unassign(request: AppRequest, assignment_id: int) -> HttpResponse:
    require_admin(request)
    assignment = get_object_or_404(Assignment, id=assignment_id)
    team.unassign(request.user, assignment)
    return _done(request, assignment.reviewer_id, "Assignment removed: that work goes to anyone now.")


def progress_page(request: AppRequest) -> HttpResponse:
    require_admin(request)
    assignments = list(
        Assignment.objects.select_related("reviewer", "dataset", "run").order_by("reviewer__username", "id")
    )
    context = {
        "datasets": progress.dataset_rows(),
        "assignments": progress.assignment_rows(assignments),
        "bulk_form": BulkForm(),
    }
    return render(request, "review/team_progress.html", context)


@require_POST
def bulk(request: AppRequest) -> HttpResponse:
    require_admin(request)
    form = BulkForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(str(e) for errs in form.errors.values() for e in errs))
        return redirect("team:progress")
    d, flt = form.cleaned_data, form.item_filter()
    try:
        if d["action"] == "release":
            outcome = f"Released {team.bulk_release(request.user, flt):,} leases."
        elif d["action"] == "skip":
            outcome = f"Skipped {team.bulk_skip(request.user, flt):,} items."
        elif d["action"] == "reopen":
            outcome = f"Reopened {team.bulk_reopen(request.user, flt):,} items."
        else:
            n = team.reassign(
                request.user, d["reviewer"], d["to_reviewer"], dataset=d["dataset"], run=d["run"]
            )
            outcome = f"Moved {n} assignment{'s' if n != 1 else ''} to {d['to_reviewer'].username}."
    except ReviewError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, outcome)
    return redirect("team:progress")


@login_not_required
def join(request: AppRequest, uidb64: str, token: str) -> HttpResponse:
    """An invited member sets their password (no role needed: they may have none yet)."""
    try:
        user = User.objects.get(pk=int(force_str(urlsafe_base64_decode(uidb64))), is_active=True)
    except (ValueError, TypeError, OverflowError, User.DoesNotExist):
        user = None
    if user is None or not default_token_generator.check_token(user, token):
        return render(request, "review/team_join.html", {"invalid": True}, status=400)
    form = SetPasswordForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            team.join(user, token, form.cleaned_data["new_password1"])
        except ReviewError as exc:
            return render(request, "review/team_join.html", {"invalid": True, "reason": str(exc)}, status=400)
        messages.success(request, f"Welcome, {user.username}: your password is set. Sign in.")
        return redirect("login")
    return render(request, "review/team_join.html", {"form": form, "member": user})
