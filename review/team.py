"""The team's named actions: people, roles, activation, invitations and assignments.

The team views call these; nothing else writes users' roles or assignments. Roles are the
groups of rprm_web/access.py; the admin role is also `is_staff`, kept in step here.
Guards a demanding admin expects: nobody takes their own admin role or deactivates
themselves, and the last active admin keeps the role. Deactivating someone releases the
critique they hold and their assignments stop reserving work (review/assignments.py).

Invitations need no mail server: an invited member has no usable password yet, and the
admin hands them a set-password link (Django's password-reset token: it expires after
`PASSWORD_RESET_TIMEOUT` and stops working once a password is set).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import Group, User
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from annotations.models import Dataset
from inference.models import GenerationRun
from rprm_web.access import ADMIN, ROLES

from .models import Assignment, ReviewEvent, ReviewItem
from .queue import ReviewError, _release, record

log = logging.getLogger(__name__)


def _audit(actor: User, member: User, **change: object) -> None:
    """Who changed whom, in the insert-only event log (and the server log)."""
    payload = {"member": member.id, "username": member.username, **change}
    ReviewEvent.objects.create(kind=ReviewEvent.Kind.MEMBER_CHANGED, actor=actor, payload=payload)
    log.info("team: %s changed %s: %s", actor.username, member.username, change)


def _check_admin_kept(actor: User, user: User, *, losing: bool) -> None:
    if not losing or not user.is_staff:
        return
    if user.pk == actor.pk:
        raise ReviewError("You cannot take your own admin role or deactivate yourself: ask another admin.")
    if not User.objects.filter(is_active=True, is_staff=True).exclude(pk=user.pk).exists():
        raise ReviewError("This is the last active admin: make someone else an admin first.")


def _apply_roles(user: User, roles: Iterable[str]) -> None:
    wanted = set(roles) & set(ROLES)
    groups = {g.name: g for g in Group.objects.filter(name__in=ROLES)}
    for name in ROLES:
        group = groups.get(name) or Group.objects.create(name=name)
        if name in wanted:
            user.groups.add(group)
        else:
            user.groups.remove(group)
    user.is_staff = ADMIN in wanted
    user.save(update_fields=["is_staff"])
    if hasattr(user, "_rprm_groups"):
        del user._rprm_groups  # the cached roles are stale now


def create_member(
    actor: User, username: str, *, email: str = "", roles: Iterable[str] = (), password: str | None = None
) -> User:
    """A new member with these roles; without a password they are invited (see `invite_path`)."""
    with transaction.atomic():
        if User.objects.filter(username__iexact=username).exists():
            raise ReviewError(f"The user name {username!r} is taken.")
        user = User.objects.create_user(username, email, password or None)
        _apply_roles(user, roles)
        _audit(actor, user, created=True, roles=granted_roles(user), invited=password is None)
    return user


def set_roles(actor: User, user: User, roles: Iterable[str]) -> None:
    wanted = set(roles) & set(ROLES)
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        _check_admin_kept(actor, user, losing=ADMIN not in wanted)
        _apply_roles(user, wanted)
        _audit(actor, user, roles=granted_roles(user))


def set_active(actor: User, user: User, active: bool) -> None:
    """Deactivate (the account can no longer sign in; its sessions and API tokens stop
    working at their next request) or reactivate."""
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        _check_admin_kept(actor, user, losing=not active)
        user.is_active = active
        user.save(update_fields=["is_active"])
        if not active:
            for item in ReviewItem.objects.select_for_update().filter(lease_holder=user):
                _release(item, actor, reason="reviewer deactivated")
        _audit(actor, user, active=active)


def granted_roles(user: User) -> list[str]:
    """The roles given to a member, active or not (reads prefetched groups)."""
    held = {g.name for g in user.groups.all()} & set(ROLES)
    return sorted(held | {ADMIN} if user.is_staff else held, key=ROLES.index)


def is_invited(user: User) -> bool:
    """Invited and not signed up yet: no usable password."""
    return not user.has_usable_password()


def invite_path(user: User) -> str:
    """The set-password path for an invited member (valid until used or expired)."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return reverse("team:join", args=[uid, default_token_generator.make_token(user)])


def reset_to_invite(actor: User, user: User) -> None:
    """Forget the member's password: they sign in again through a new set-password link."""
    with transaction.atomic():
        user.set_unusable_password()
        user.save(update_fields=["password"])
        _audit(actor, user, password_cleared=True)


def join(user: User, token: str, password: str) -> None:
    """The invitee sets their password (the view checked the token; checked again here)."""
    if not default_token_generator.check_token(user, token):
        raise ReviewError("This link has expired or was already used: ask an admin for a new one.")
    user.set_password(password)
    user.save(update_fields=["password"])


# --- assignments -------------------------------------------------------------------


def assign(
    actor: User,
    reviewer: User,
    *,
    dataset: Dataset | None = None,
    run: GenerationRun | None = None,
    target: int | None = None,
) -> Assignment:
    """Give a dataset or a run to a reviewer (again: updates the target)."""
    if (dataset is None) == (run is None):
        raise ReviewError("Assign either a dataset or a run.")
    if not reviewer.is_active:
        raise ReviewError(f"{reviewer.username} is deactivated.")
    with transaction.atomic():
        assignment, created = Assignment.objects.update_or_create(
            reviewer=reviewer, dataset=dataset, run=run, defaults={"target": target, "assigned_by": actor}
        )
        record(
            ReviewEvent.Kind.ASSIGNED,
            actor,
            reviewer=reviewer.id,
            dataset=dataset.id if dataset else None,
            run=run.id if run else None,
            target=target,
            updated=not created,
        )
    return assignment


def unassign(actor: User, assignment: Assignment) -> None:
    with transaction.atomic():
        record(
            ReviewEvent.Kind.UNASSIGNED,
            actor,
            reviewer=assignment.reviewer_id,
            dataset=assignment.dataset_id,
            run=assignment.run_id,
        )
        assignment.delete()


def reassign(
    actor: User,
    source: User,
    target_user: User,
    *,
    dataset: Dataset | None = None,
    run: GenerationRun | None = None,
) -> int:
    """Move `source`'s assignments (those of this dataset or run, else all) to `target_user`,
    releasing what `source` holds there. Returns how many assignments moved."""
    if source.pk == target_user.pk:
        raise ReviewError("Reassign to someone else.")
    if not target_user.is_active:
        raise ReviewError(f"{target_user.username} is deactivated.")
    moved = 0
    with transaction.atomic():
        rows = Assignment.objects.select_for_update().filter(reviewer=source)
        if dataset is not None:
            rows = rows.filter(dataset=dataset)
        if run is not None:
            rows = rows.filter(run=run)
        for row in list(rows):
            assign(actor, target_user, dataset=row.dataset, run=row.run, target=row.target)
            unassign(actor, row)
            moved += 1
        held = ReviewItem.objects.select_for_update().filter(lease_holder=source)
        if dataset is not None:
            held = held.filter(dataset=dataset)
        if run is not None:
            held = held.filter(run=run)
        for item in held:
            _release(item, actor, reason=f"reassigned to {target_user.username}")
    return moved


# --- bulk work on items (admins) -------------------------------------------------------


@dataclass(frozen=True)
class ItemFilter:
    """Which items a bulk action touches: any of dataset, run, queue and lease holder."""

    dataset_id: int | None = None
    run_id: int | None = None
    queue: str = ""  # matched | disagreed | other | flagged | "" (all)
    holder_id: int | None = None

    def apply(self, qs: QuerySet[ReviewItem]) -> QuerySet[ReviewItem]:
        if self.dataset_id:
            qs = qs.filter(dataset_id=self.dataset_id)
        if self.run_id:
            qs = qs.filter(run_id=self.run_id)
        if self.queue == "flagged":
            qs = qs.filter(flagged=True)
        elif self.queue:
            qs = qs.filter(queue=self.queue)
        if self.holder_id:
            qs = qs.filter(lease_holder_id=self.holder_id)
        return qs


BULK_EVENT_BATCH = 1000


def _events(kind: str, actor: User, ids: list[int], **payload: object) -> None:
    ReviewEvent.objects.bulk_create(
        [ReviewEvent(kind=kind, actor=actor, item_id=i, payload=payload) for i in ids],
        batch_size=BULK_EVENT_BATCH,
    )


def bulk_release(actor: User, flt: ItemFilter) -> int:
    """Release every lease in the filter (the items go back to the queue)."""
    with transaction.atomic():
        ids = list(
            flt.apply(ReviewItem.objects.filter(lease_holder__isnull=False)).values_list("id", flat=True)
        )
        ReviewItem.objects.filter(id__in=ids).update(
            lease_holder=None, lease_expires_at=None, leased_at=None, updated_at=timezone.now()
        )
        _events(ReviewEvent.Kind.RELEASED, actor, ids, reason="released by an admin")
    return len(ids)


def bulk_skip(actor: User, flt: ItemFilter, reason: str = "") -> int:
    """Take open items nobody has decided yet out of the queues (state `skipped`)."""
    with transaction.atomic():
        # Gold copies (review/gold.py) are their reviewer's test, not queue work.
        qs = flt.apply(
            ReviewItem.objects.filter(state=ReviewItem.State.OPEN, reviews_done=0, gold_for__isnull=True)
        )
        ids = list(qs.select_for_update(skip_locked=True).values_list("id", flat=True))
        ReviewItem.objects.filter(id__in=ids).update(
            state=ReviewItem.State.SKIPPED,
            lease_holder=None,
            lease_expires_at=None,
            leased_at=None,
            updated_at=timezone.now(),
        )
        _events(ReviewEvent.Kind.SKIPPED, actor, ids, reason=reason)
    return len(ids)


def bulk_reopen(actor: User, flt: ItemFilter) -> int:
    """Put items an admin skipped back into their queues."""
    with transaction.atomic():
        qs = flt.apply(ReviewItem.objects.filter(state=ReviewItem.State.SKIPPED))
        ids = list(qs.select_for_update(skip_locked=True).values_list("id", flat=True))
        ReviewItem.objects.filter(id__in=ids).update(state=ReviewItem.State.OPEN, updated_at=timezone.now())
        _events(ReviewEvent.Kind.REOPENED, actor, ids)
    return len(ids)
