"""Review actions: decide, undo, label corrections, adjudication, kappa, training exclusion."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotations.models import ErrorType, Step
from inference.models import Critique
from review.agreement import agreement
from inference.core.stats import cohen_kappa
from review.models import LabelCorrection, Review, ReviewEvent, ReviewItem
from review.queue import QueueFilter, ReviewError, claim_next
from review.reviews import adjudicate, correct_label, decide_label_correction, submit_review, undo_last
from training.pools import eligible_critiques

from .conftest import decide


def matched_items(run, n):
    return list(ReviewItem.objects.filter(run=run, queue="matched").order_by("id")[:n])


def test_it_records_a_decision_with_tags_note_and_time(make_run, reviewer, settings):
    settings.REVIEW_DOUBLE_FRACTION = 0.0  # sampling is by critique id: fix it for this test
    run = make_run(n_samples=1)
    item = claim_next(reviewer, QueueFilter(queue="matched"))
    calc = ErrorType.objects.get(slug="calculation")
    review = submit_review(
        item,
        reviewer,
        "flawed",
        error_types=[calc],
        note="right verdict, no real check",
        time_on_task_ms=12_345,
    )
    assert review.time_on_task_ms == 12_345 and review.time_source == "client"
    assert list(review.error_types.all()) == [calc]
    item.refresh_from_db()
    assert item.state == "done" and item.final_decision == "flawed" and item.lease_holder is None
    event = ReviewEvent.objects.filter(kind="reviewed").get()
    assert event.actor == reviewer and event.payload["decision"] == "flawed"
    assert event.payload["error_types"] == ["calculation"]
    # Once per reviewer: the action refuses, and so does the database.
    with pytest.raises(ReviewError):
        submit_review(item, reviewer, "sound")
    with pytest.raises(IntegrityError), transaction.atomic():
        Review.objects.create(item=item, critique_id=item.critique_id, reviewer=reviewer, decision="sound")
    assert run.id == item.run_id


def test_time_on_task_falls_back_to_the_lease(make_run, reviewer):
    make_run(n_samples=1)
    now = timezone.now()
    item = claim_next(reviewer, QueueFilter(queue="matched"), now=now)
    review = submit_review(item, reviewer, "sound", now=now + timedelta(seconds=90))
    assert review.time_on_task_ms == 90_000 and review.time_source == "lease"


def test_a_live_lease_keeps_others_out(make_run, reviewer, reviewer2):
    make_run(n_samples=1)
    item = claim_next(reviewer, QueueFilter(queue="matched"))
    with pytest.raises(ReviewError, match="Another reviewer"):
        submit_review(item, reviewer2, "sound")


def test_undo_is_a_new_event_and_the_item_comes_back(make_run, reviewer):
    make_run(n_samples=1)
    item = claim_next(reviewer, QueueFilter(queue="matched"))
    first = submit_review(item, reviewer, "sound")
    assert claim_next(reviewer, QueueFilter(queue="matched")).pk != item.pk  # auto-advanced
    undone = undo_last(reviewer)
    assert undone.pk == first.pk
    first.refresh_from_db()
    assert first.undone_at is not None and Review.objects.filter(pk=first.pk).exists()  # kept, stamped
    item.refresh_from_db()
    assert item.state == "open" and item.reviews_done == 0 and item.final_decision == ""
    assert item.lease_holder == reviewer  # leased back so the reviewer can decide again
    assert ReviewItem.objects.filter(lease_holder=reviewer).count() == 1
    again = submit_review(item, reviewer, "flawed")
    assert Review.objects.filter(item=item).count() == 2 and again.undone_at is None
    kinds = list(ReviewEvent.objects.filter(item=item).values_list("kind", flat=True))
    assert kinds == ["claimed", "reviewed", "undone", "reviewed"]
    assert undo_last(reviewer).pk == again.pk and undo_last(reviewer) is None


def test_history_is_insert_only(make_run, reviewer):
    make_run(n_samples=1)
    claim_next(reviewer, QueueFilter())
    event = ReviewEvent.objects.get()
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        ReviewEvent.objects.all().update(kind="x")
    with pytest.raises(TypeError):
        ReviewEvent.objects.all().delete()


def test_label_wrong_files_a_correction_and_never_touches_the_step(make_run, reviewer, admin):
    make_run(n_samples=1)
    item = ReviewItem.objects.filter(queue="disagreed").select_related("step").first()
    assert item.step.label == "incorrect"
    decide(item, reviewer, "label_wrong", note="the step is actually fine")
    correction = LabelCorrection.objects.get()
    assert (correction.original_label, correction.proposed_label, correction.status) == (
        "incorrect",
        "correct",
        "pending",
    )
    assert correction.reason == "the step is actually fine" and correction.author == reviewer
    item.refresh_from_db()
    assert item.state == "adjudication"
    assert Step.objects.get(pk=item.step_id).label == "incorrect"
    # Undo withdraws it; a standalone proposal is its own row too.
    undo_last(reviewer)
    correction.refresh_from_db()
    assert correction.status == "withdrawn"
    other = correct_label(item.step, admin, "neutral", "ambiguous wording")
    decided = decide_label_correction(other, admin, accept=False)
    assert decided.status == "rejected" and decided.decided_by == admin and decided.decided_at
    assert Step.objects.get(pk=item.step_id).label == "incorrect"
    with pytest.raises(ReviewError):
        correct_label(item.step, admin, "incorrect")


def test_disagreement_goes_to_adjudication_and_the_admin_decides(
    make_run, reviewer, reviewer2, admin, settings
):
    settings.REVIEW_DOUBLE_FRACTION = 1.0
    run = make_run(n_samples=1)
    item = matched_items(run, 1)[0]
    decide(item, reviewer, "sound")
    item.refresh_from_db()
    assert item.state == "open" and item.reviews_done == 1  # waits for the second review
    decide(item, reviewer2, "flawed")
    item.refresh_from_db()
    assert item.state == "adjudication"
    with pytest.raises(ReviewError):
        adjudicate(item, admin, "label_wrong")  # nobody proposed a label
    adjudication = adjudicate(item, admin, "flawed", note="no real check")
    item.refresh_from_db()
    assert (
        item.state == "adjudicated" and item.final_decision == "flawed" and adjudication.decided_by == admin
    )
    with pytest.raises(ReviewError):
        undo_last(reviewer2)
    with pytest.raises(ReviewError):
        adjudicate(item, admin, "sound")


def test_adjudicating_label_wrong_accepts_the_correction(make_run, reviewer, admin, settings):
    settings.REVIEW_DOUBLE_FRACTION = 0.0  # one review settles it: double sampling is by critique id
    make_run(n_samples=1)
    item = ReviewItem.objects.filter(queue="disagreed").first()
    decide(item, reviewer, "label_wrong")
    adjudicate(ReviewItem.objects.get(pk=item.pk), admin, "label_wrong")
    correction = LabelCorrection.objects.get()
    assert correction.status == "accepted" and correction.decided_by == admin
    assert ReviewEvent.objects.filter(kind="label_decided").count() == 1


def test_kappa_per_pair_matches_the_hand_computation(make_run, reviewer, reviewer2, settings):
    settings.REVIEW_DOUBLE_FRACTION = 1.0
    run = make_run(n_samples=1)
    calc = ErrorType.objects.get(slug="calculation")
    conf = ErrorType.objects.get(slug="confidence")
    plan = [  # (decision A, tags A, decision B, tags B)
        ("sound", [calc], "sound", [calc]),
        ("sound", [calc], "flawed", []),
        ("flawed", [], "flawed", [conf]),
        ("sound", [], "sound", []),
    ]
    for item, (da, ta, db, tb) in zip(matched_items(run, 4), plan, strict=True):
        decide(item, reviewer, da, error_types=ta)
        decide(item, reviewer2, db, error_types=tb)
    [pair] = agreement()
    assert (pair.reviewer_a, pair.reviewer_b, pair.items) == ("reviewer", "reviewer2", 4)
    # Decisions: p_o = 3/4; A = 3 sound + 1 flawed, B = 2 + 2, p_e = (3*2 + 1*2)/16 = 1/2; kappa = 1/2.
    assert pair.kappa_decisions == pytest.approx(0.5)
    assert pair.percent_agree == pytest.approx(75.0)
    # Tags over 4 items x 10 types: 2 disagreements, p_o = 38/40; each side 2 tagged,
    # p_e = (2*2 + 38*38)/1600 = 0.905; kappa = 0.045 / 0.095.
    assert pair.kappa_tags == pytest.approx(0.045 / 0.095)
    assert cohen_kappa([]) is None and cohen_kappa([("a", "a")] * 3) is None
    assert cohen_kappa([("a", "a"), ("a", "b"), ("b", "b"), ("a", "a")]) == pytest.approx(0.5)


def test_training_exclusion_keeps_flawed_and_disputed_critiques_out(
    make_run, reviewer, reviewer2, admin, settings
):
    settings.REVIEW_DOUBLE_FRACTION = 0.0
    run = make_run(n_samples=2)
    eligible = set(eligible_critiques(runs=[run]).values_list("id", flat=True))
    assert len(eligible) == Critique.objects.filter(run=run).sft_eligible().count() == 40
    sound, flawed, label_wrong = matched_items(run, 3)
    decide(sound, reviewer, "sound")
    decide(flawed, reviewer, "flawed")
    decide(label_wrong, reviewer, "label_wrong")
    sibling = (
        Critique.objects.filter(step_id=label_wrong.step_id, run=run)
        .exclude(id=label_wrong.critique_id)
        .get()
    )
    after = set(eligible_critiques(runs=[run]).values_list("id", flat=True))
    assert sound.critique_id in after
    assert flawed.critique_id not in after
    # A disputed label holds out every critique of that step, not just the reviewed one.
    assert label_wrong.critique_id not in after and sibling.id not in after
    assert len(after) == 40 - 3
    # The admin rules the label right and the critique sound: both come back.
    adjudicate(ReviewItem.objects.get(pk=label_wrong.pk), admin, "sound")
    back = set(eligible_critiques(runs=[run]).values_list("id", flat=True))
    assert label_wrong.critique_id in back and sibling.id in back


def test_one_flawed_review_holds_out_a_double_review_item_until_it_settles(
    make_run, reviewer, reviewer2, settings
):
    settings.REVIEW_DOUBLE_FRACTION = 1.0
    run = make_run(n_samples=1)
    item = matched_items(run, 1)[0]
    decide(item, reviewer, "flawed")
    assert not eligible_critiques(runs=[run]).filter(id=item.critique_id).exists()
    decide(item, reviewer2, "sound")  # now a disagreement: adjudication, still held out
    assert not eligible_critiques(runs=[run]).filter(id=item.critique_id).exists()
