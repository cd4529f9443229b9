"""Review workflow actions: decide, undo, correct labels, adjudicate; the rules that keep
flawed or disputed critiques out of training data.

Views, commands and tasks call these (the queue and leases are review/queue.py; agreement
is review/agreement.py); nothing else writes review rows. Every state change writes a
ReviewEvent (insert-only). Source data is never overwritten: a step's label stays as
imported and a correction is a LabelCorrection row; an undo stamps the review's
`undone_at` (the row stays) and records an event.

Blind double review (docs/blind-review.md): deciding needs the lease; until a double-review
item settles by agreement or adjudication (`sealed`), reviewers see nothing of the other
review; an undo after both decisions were in sends the item to adjudication.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from annotations.models import ErrorType, Step
from inference.models import Critique
from rprm_web.access import is_adjudicator

from .gold import gold_from_adjudication
from .models import Adjudication, GoldServing, LabelCorrection, Review, ReviewEvent, ReviewItem
from .queue import (  # noqa: F401  (the basics every review action uses)
    DECIDING,
    FLAG_THRESHOLD,
    MAX_CLIENT_MS,
    Decision,
    ReviewError,
    _release,
    lease_minutes,
    needs_double_review,
    record,
)

# --- decisions -------------------------------------------------------------------


def _settle(item: ReviewItem) -> None:
    """Recompute state / final decision from the active reviews (not after adjudication).

    A double-review item waits for both independent decisions, even when the first says
    the label is wrong (the second reviewer must not find it gone from the queue). It goes
    to adjudication on a label dispute, a disagreement, or when a reviewer undid a decision
    after both were in: a re-decision made then may follow the other one, so it never
    settles the item by agreement.
    """
    if item.state in (ReviewItem.State.ADJUDICATED, ReviewItem.State.SKIPPED):
        return
    decisions = list(
        Review.objects.filter(item=item, undone_at__isnull=True, decision__in=DECIDING).values_list(
            "decision", flat=True
        )
    )
    item.reviews_done = len(decisions)
    item.final_decision = ""
    if len(decisions) < item.reviews_needed:
        item.state = ReviewItem.State.OPEN
    elif Decision.LABEL_WRONG in decisions:
        item.state = ReviewItem.State.ADJUDICATION  # held out until an admin decides on the label
    elif len(set(decisions)) == 1 and not reopened_after_both(item):
        item.state, item.final_decision = ReviewItem.State.DONE, decisions[0]
    else:
        item.state = ReviewItem.State.ADJUDICATION


def _live_at(when, created, undone) -> bool:
    return created <= when and (undone is None or undone > when)


def reopened_after_both(item: ReviewItem) -> bool:
    """Whether a decision on this double-review item was undone while the other was in."""
    if item.reviews_needed < 2:
        return False
    rows = list(
        Review.objects.filter(item=item, decision__in=DECIDING).values_list(
            "reviewer_id", "created_at", "undone_at"
        )
    )
    return any(
        undone is not None and any(o != who and _live_at(undone, c, u) for o, c, u in rows)
        for who, _created, undone in rows
    )


def sealed(item: ReviewItem) -> bool:
    """Blind double review: until both decisions agree or an admin adjudicates, nobody who
    may still decide it sees anything of the other review (see `others_hidden`)."""
    return item.needs_double_review and item.state in (ReviewItem.State.OPEN, ReviewItem.State.ADJUDICATION)


def sealed_q(prefix: str = "") -> Q:
    """`sealed` as a filter (prefix "review_item__" from a critique)."""
    return Q(
        **{
            f"{prefix}needs_double_review": True,
            f"{prefix}state__in": [ReviewItem.State.OPEN, ReviewItem.State.ADJUDICATION],
        }
    )


def counted_review_q(prefix: str = "") -> Q:
    """Reviews whose error tags are their critique's tags: active ones, and once an admin
    adjudicated the item only those whose decision the adjudication upheld (an overruled
    reviewer's tags are not the item's tags). The adjudicator's own tags always count."""
    return Q(**{f"{prefix}undone_at__isnull": True}) & (
        ~Q(**{f"{prefix}item__state": ReviewItem.State.ADJUDICATED})
        | Q(**{f"{prefix}decision": F(f"{prefix}item__final_decision")})
    )


def has_final_tag(critique_field: str = "pk", *, blind: bool = False, **tag_filter) -> Q:
    """Critiques (the outer query's `critique_field`) tagged with an error type matching
    `tag_filter` (e.g. `errortype_id=3`) by the rule of `counted_review_q`. `blind`: a
    review of a sealed item tags nothing (exports, reviewers' views)."""
    reviews = Review.error_types.through.objects.filter(
        counted_review_q("review__"), review__critique_id=OuterRef(critique_field), **tag_filter
    )
    if blind:
        reviews = reviews.exclude(sealed_q("review__item__"))
    adjudicated = Adjudication.error_types.through.objects.filter(
        adjudication__item__critique_id=OuterRef(critique_field), **tag_filter
    )
    return Q(Exists(reviews)) | Q(Exists(adjudicated))


def final_tags(critique_ids: Iterable[int], field: str = "errortype__name") -> dict[int, set]:
    """critique id -> its error tags' `field`, by the rule of `counted_review_q`."""
    ids = list(critique_ids)
    out: dict[int, set] = {}
    reviews = Review.error_types.through.objects.filter(
        counted_review_q("review__"), review__critique_id__in=ids
    ).values_list("review__critique_id", field)
    adjudicated = Adjudication.error_types.through.objects.filter(
        adjudication__item__critique_id__in=ids
    ).values_list("adjudication__item__critique_id", field)
    for critique_id, value in [*reviews, *adjudicated]:
        out.setdefault(critique_id, set()).add(value)
    return out


def others_hidden(item: ReviewItem, user: User, *, deciding: bool = False) -> bool:
    """Whether `user` must not see other people's reviews of `item`: its state, review
    count, decisions, tags, notes and label corrections.

    Reviewers are blind to a sealed item. Admins audit, so they see everything, and
    adjudicators see the items waiting for them, except on the screen where either
    decides the item as a reviewer.
    """
    if not sealed(item) or deciding:
        return sealed(item)
    # Adjudicators see the reviews of the items they settle; admins see everything.
    return not (user.is_staff or (is_adjudicator(user) and item.state == ReviewItem.State.ADJUDICATION))


def default_correction(label: str) -> str | None:
    return {Step.Label.CORRECT: Step.Label.INCORRECT, Step.Label.INCORRECT: Step.Label.CORRECT}.get(label)


def submit_review(
    item: ReviewItem,
    reviewer: User,
    decision: str,
    *,
    error_types: Iterable[ErrorType] = (),
    note: str = "",
    time_on_task_ms: int | None = None,
    proposed_label: str | None = None,
    reason: str = "",
    now=None,
) -> Review:
    """Record one decision. `label_wrong` also files a LabelCorrection (default: the flip),
    except on a gold copy, where the label goes on the gold answer (GoldServing) only."""
    if decision not in Decision.values:
        raise ReviewError(f"Unknown decision {decision!r}.")
    now = now or timezone.now()
    with transaction.atomic():
        item = ReviewItem.objects.select_for_update().select_related("step").get(pk=item.pk)
        if item.state != ReviewItem.State.OPEN:
            raise ReviewError("This critique is no longer open for review.")
        if item.lease_is_live(now) and item.lease_holder_id != reviewer.id:
            raise ReviewError("Another reviewer holds this critique.")
        # Deciding needs the lease (a lapsed one counts while nobody else took the item):
        # nobody decides an item by its UUID alone.
        if item.lease_holder_id != reviewer.id:
            raise ReviewError("Take this critique first: you do not hold it.")
        if Review.objects.filter(item=item, reviewer=reviewer, undone_at__isnull=True).exists():
            raise ReviewError("You have already reviewed this critique.")
        if decision == Decision.LABEL_WRONG:
            proposed_label = proposed_label or default_correction(item.step.label)
            if not proposed_label or proposed_label == item.step.label:
                raise ReviewError("Say which label the step should have.")
        if time_on_task_ms is not None and 0 < time_on_task_ms <= MAX_CLIENT_MS:
            ms, source = int(time_on_task_ms), Review.TimeSource.CLIENT
        else:
            held = item.leased_at if item.lease_holder_id == reviewer.id and item.leased_at else None
            ms = int((now - held).total_seconds() * 1000) if held else 0
            ms, source = min(max(ms, 0), MAX_CLIENT_MS), Review.TimeSource.LEASE
        review = Review.objects.create(
            item=item,
            critique_id=item.critique_id,
            reviewer=reviewer,
            decision=decision,
            note=note.strip(),
            time_on_task_ms=ms,
            time_source=source,
        )
        tags = list(error_types)
        if tags:
            review.error_types.set(tags)
        if decision == Decision.LABEL_WRONG and item.gold_for_id is not None:
            # A gold copy's answer tests the reviewer: no claim about the source step's label.
            GoldServing.objects.filter(copy_id=item.critique_id).update(proposed_label=proposed_label)
        elif decision == Decision.LABEL_WRONG:
            _propose(item.step, reviewer, proposed_label, reason or note, review=review, item=item)
        if item.lease_holder_id == reviewer.id:
            item.lease_holder, item.lease_expires_at, item.leased_at = None, None, None
        _settle(item)
        item.save(
            update_fields=[
                "lease_holder",
                "lease_expires_at",
                "leased_at",
                "reviews_done",
                "state",
                "final_decision",
                "updated_at",
            ]
        )
        record(
            ReviewEvent.Kind.REVIEWED,
            reviewer,
            item,
            review=review.id,
            decision=decision,
            error_types=[t.slug for t in tags],
            time_on_task_ms=ms,
            state=item.state,
        )
        return review


def undo_last(reviewer: User, *, now=None) -> Review | None:
    """Undo the reviewer's latest active decision and lease the item back to them."""
    now = now or timezone.now()
    with transaction.atomic():
        review = (
            Review.objects.select_for_update()
            .filter(reviewer=reviewer, undone_at__isnull=True)
            .order_by("-created_at", "-id")
            .first()
        )
        if review is None:
            return None
        item = ReviewItem.objects.select_for_update().get(pk=review.item_id)
        if item.state == ReviewItem.State.ADJUDICATED:
            raise ReviewError("An admin has adjudicated this critique; it can no longer be undone.")
        review.undone_at = now
        review.save(update_fields=["undone_at"])
        if item.gold_for_id is not None:
            GoldServing.objects.filter(copy_id=item.critique_id).update(proposed_label="")
        for correction in LabelCorrection.objects.filter(
            review=review, status=LabelCorrection.Status.PENDING
        ):
            correction.status = LabelCorrection.Status.WITHDRAWN
            correction.save(update_fields=["status"])
        _settle(item)
        fields = ["reviews_done", "state", "final_decision", "updated_at"]
        if not item.lease_is_live(now) or item.lease_holder_id == reviewer.id:
            mine = (
                ReviewItem.objects.select_for_update()
                .filter(lease_holder=reviewer)
                .exclude(pk=item.pk)
                .first()
            )
            if mine is not None:
                _release(mine, reviewer, reason="undo")
            item.lease_holder, item.leased_at = reviewer, now
            item.lease_expires_at = now + timedelta(minutes=lease_minutes())
            fields += ["lease_holder", "leased_at", "lease_expires_at"]
        item.save(update_fields=fields)
        record(
            ReviewEvent.Kind.UNDONE,
            reviewer,
            item,
            review=review.id,
            decision=review.decision,
            state=item.state,
            **({"reopened_after_both": True} if reopened_after_both(item) else {}),
        )
        return review


def _propose(
    step: Step,
    author: User,
    proposed_label: str,
    reason: str,
    *,
    review: Review | None,
    item: ReviewItem | None,
) -> LabelCorrection:
    if proposed_label not in Step.Label.values or proposed_label == step.label:
        raise ReviewError("A correction must propose a different, valid label.")
    # A second proposal by the same author replaces their first (which stays, withdrawn).
    LabelCorrection.objects.filter(step=step, author=author, status=LabelCorrection.Status.PENDING).update(
        status=LabelCorrection.Status.WITHDRAWN
    )
    correction = LabelCorrection.objects.create(
        step=step,
        review=review,
        original_label=step.label,
        proposed_label=proposed_label,
        reason=reason.strip(),
        author=author,
    )
    record(
        ReviewEvent.Kind.LABEL_PROPOSED,
        author,
        item,
        correction=correction.id,
        step=step.id,
        original=step.label,
        proposed=proposed_label,
    )
    return correction


def correct_label(step: Step, author: User, proposed_label: str, reason: str = "") -> LabelCorrection:
    """Propose a label correction outside a review (the step keeps its label)."""
    with transaction.atomic():
        return _propose(step, author, proposed_label, reason, review=None, item=None)


def decide_label_correction(
    correction: LabelCorrection, admin: User, *, accept: bool, now=None
) -> LabelCorrection:
    now = now or timezone.now()
    with transaction.atomic():
        correction = LabelCorrection.objects.select_for_update().get(pk=correction.pk)
        if correction.status != LabelCorrection.Status.PENDING:
            raise ReviewError("This correction has already been decided.")
        correction.status = LabelCorrection.Status.ACCEPTED if accept else LabelCorrection.Status.REJECTED
        correction.decided_by, correction.decided_at = admin, now
        correction.save(update_fields=["status", "decided_by", "decided_at"])
        item = correction.review.item if correction.review_id else None
        record(
            ReviewEvent.Kind.LABEL_DECIDED, admin, item, correction=correction.id, status=correction.status
        )
        return correction


def adjudicate(
    item: ReviewItem,
    admin: User,
    decision: str,
    *,
    error_types: Iterable[ErrorType] = (),
    note: str = "",
    now=None,
) -> Adjudication:
    """An admin's final word on a disputed item. `label_wrong` accepts the pending label
    corrections of the step; any other decision rejects them (the label stands)."""
    if decision not in DECIDING:
        raise ReviewError("Adjudicate as sound, flawed or label wrong.")
    now = now or timezone.now()
    with transaction.atomic():
        item = ReviewItem.objects.select_for_update().get(pk=item.pk)
        if item.state != ReviewItem.State.ADJUDICATION:
            raise ReviewError("This critique is not awaiting adjudication.")
        pending = list(
            LabelCorrection.objects.filter(step_id=item.step_id, status=LabelCorrection.Status.PENDING)
        )
        if decision == Decision.LABEL_WRONG and not pending:
            raise ReviewError("No pending label correction to accept for this step.")
        adjudication = Adjudication.objects.create(
            item=item, decision=decision, note=note.strip(), decided_by=admin
        )
        tags = list(error_types)
        if tags:
            adjudication.error_types.set(tags)
        for correction in pending:
            decide_label_correction(correction, admin, accept=decision == Decision.LABEL_WRONG, now=now)
        if not Critique.objects.filter(pk=item.critique_id, gold_copy=True).exists():
            gold_from_adjudication(adjudication)  # a settled dispute is a known answer
        item.state, item.final_decision = ReviewItem.State.ADJUDICATED, decision
        item.lease_holder, item.lease_expires_at, item.leased_at = None, None, None
        item.save(
            update_fields=[
                "state",
                "final_decision",
                "lease_holder",
                "lease_expires_at",
                "leased_at",
                "updated_at",
            ]
        )
        record(
            ReviewEvent.Kind.ADJUDICATED,
            admin,
            item,
            adjudication=adjudication.id,
            decision=decision,
            error_types=[t.slug for t in tags],
            corrections=[c.id for c in pending],
        )
        return adjudication


def undo_adjudication(adjudicator: User) -> ReviewItem | None:
    """Undo this adjudicator's latest adjudication: the item waits for adjudication again
    and the label corrections it decided are pending again.

    The Adjudication row is one per item (the dashboards join it), so undo deletes it; the
    insert-only event log keeps what it said (the ADJUDICATED event, and an
    ADJUDICATION_UNDONE event repeating decision, tags and note)."""
    with transaction.atomic():
        adjudication = (
            Adjudication.objects.select_for_update()
            .filter(decided_by=adjudicator)
            .order_by("-created_at", "-id")
            .first()
        )
        if adjudication is None:
            return None
        item = ReviewItem.objects.select_for_update().get(pk=adjudication.item_id)
        decided = (
            ReviewEvent.objects.filter(
                item=item, kind=ReviewEvent.Kind.ADJUDICATED, payload__adjudication=adjudication.id
            )
            .values_list("payload", flat=True)
            .first()
            or {}
        )
        LabelCorrection.objects.filter(id__in=decided.get("corrections", [])).update(
            status=LabelCorrection.Status.PENDING, decided_by=None, decided_at=None
        )
        record(
            ReviewEvent.Kind.ADJUDICATION_UNDONE,
            adjudicator,
            item,
            adjudication=adjudication.id,
            decision=adjudication.decision,
            error_types=list(adjudication.error_types.values_list("slug", flat=True)),
            note=adjudication.note,
        )
        adjudication.delete()
        item.state, item.final_decision = ReviewItem.State.ADJUDICATION, ""
        item.save(update_fields=["state", "final_decision", "updated_at"])
        return item


# --- training data ---------------------------------------------------------------


def label_dispute_q(step_field: str = "step_id") -> Q:
    """Critiques of steps whose label is disputed (pending) or was corrected (accepted)."""
    return Q(
        Exists(
            LabelCorrection.objects.filter(
                step_id=OuterRef(step_field),
                status__in=[LabelCorrection.Status.PENDING, LabelCorrection.Status.ACCEPTED],
            )
        )
    )


def training_exclusion_q() -> Q:
    """Critiques that must not become training data (use with `Critique.objects.exclude`).

    Flawed critiques are out; so are label-wrong ones and everything still in dispute
    (awaiting a second review, adjudication, or a decision on a label correction), and
    every gold copy (review/gold.py: a known answer served to measure a reviewer, perhaps
    with a planted flaw).
    """
    settled_out = ReviewItem.objects.filter(critique_id=OuterRef("pk")).filter(
        Q(final_decision__in=[Decision.FLAWED, Decision.LABEL_WRONG]) | Q(state=ReviewItem.State.ADJUDICATION)
    )
    open_doubt = Review.objects.filter(
        critique_id=OuterRef("pk"),
        undone_at__isnull=True,
        decision__in=[Decision.FLAWED, Decision.LABEL_WRONG],
        item__state=ReviewItem.State.OPEN,
    )
    return Q(gold_copy=True) | Q(Exists(settled_out)) | Q(Exists(open_doubt)) | label_dispute_q("step_id")


# --- history navigation ----------------------------------------------------------


_UNKNOWN = object()


def neighbours(
    reviewer: User, item: ReviewItem, *, here=_UNKNOWN, last: Review | None = None
) -> tuple[ReviewItem | None, ReviewItem | None]:
    """(previous, next) item in the reviewer's own decision history around `item`.

    `here` (their active review of `item`) and `last` (their latest active review)
    save queries when the caller already has them.
    """
    mine = Review.objects.filter(reviewer=reviewer, undone_at__isnull=True).select_related("item__critique")
    if here is _UNKNOWN:
        here = mine.filter(item=item).first()
    if here is None:  # the item being worked on comes after all past decisions
        prev = last if last is not None else mine.order_by("-created_at", "-id").first()
        return (prev.item if prev else None), None
    before = mine.filter(Q(created_at__lt=here.created_at) | Q(created_at=here.created_at, id__lt=here.id))
    prev = before.order_by("-created_at", "-id").first()
    if last is not None and last.pk == here.pk:
        return (prev.item if prev else None), None
    after = mine.filter(Q(created_at__gt=here.created_at) | Q(created_at=here.created_at, id__gt=here.id))
    nxt = after.order_by("created_at", "id").first()
    return (prev.item if prev else None), (nxt.item if nxt else None)
