"""Blind double review: each leak tried as the second reviewer (docs/blind-review.md).

The cast: `reviewer` decides first, `reviewer2` is the second reviewer, `admin`
adjudicates and audits, `outsider` has no role.
"""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from annotations.models import ErrorType
from inference.models import Critique
from review.agreement import agreement
from review.models import LabelCorrection, Review, ReviewEvent, ReviewItem
from review.queue import QueueFilter, ReviewError, claim_next
from review.reviews import submit_review, undo_last
from training.export import create_export_job, run_export_job

MATCHED = QueueFilter(queue="matched")


@pytest.fixture
def double(make_run, settings):
    """Every item needs two reviews; the demo run's matched items, in claim order."""
    settings.REVIEW_DOUBLE_FRACTION = 1.0
    return make_run(n_samples=1)


def first_review(user, decision="flawed", **kwargs) -> ReviewItem:
    """`user` claims the next matched item and decides it (the lease comes from the claim)."""
    item = claim_next(user, MATCHED)
    submit_review(item, user, decision, **kwargs)
    return ReviewItem.objects.select_related("critique").get(pk=item.pk)


def second_review(item, user, decision) -> None:
    got = claim_next(user, MATCHED)
    assert got.pk == item.pk  # the first reviewer's item is the most suspicious one left
    submit_review(got, user, decision)


def page(client, user, url) -> str:
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def item_page(client, user, item) -> str:
    return page(client, user, reverse("review:item", args=[item.critique.uuid]))


# --- the review screen and the queue ----------------------------------------------------------


def test_it_hides_state_and_count_from_the_second_reviewer(client, double, reviewer, reviewer2):
    item = first_review(reviewer, note="the calculation is never redone")
    body = item_page(client, reviewer2, item)
    assert "1/2 review" not in body and "needs review" not in body and "double review" not in body
    assert "the calculation is never redone" not in body and "decision-flawed" not in body


def test_it_hides_awaiting_adjudication_from_a_reviewer_who_decided(client, double, reviewer, reviewer2):
    item = first_review(reviewer, "sound")
    second_review(item, reviewer2, "flawed")
    assert ReviewItem.objects.get(pk=item.pk).state == "adjudication"
    for user in (reviewer, reviewer2):
        body = item_page(client, user, item)
        assert "awaiting adjudication" not in body and "2/2" not in body
        assert 'id="my-decision"' in body  # their own decision stays visible


def test_the_queue_shows_no_review_count_and_no_other_reviewers_tags(client, double, reviewer, reviewer2):
    calc = ErrorType.objects.get(slug="calculation")
    item = first_review(reviewer, error_types=[calc])
    queue = page(client, reviewer2, reverse("review:queue") + "?queue=matched")
    assert str(item.critique.uuid) in queue and "1/2" not in queue
    # Filtering by error type must not find the item by the first reviewer's tag.
    tagged = page(client, reviewer2, reverse("review:queue") + f"?queue=matched&error_type={calc.id}")
    assert str(item.critique.uuid) not in tagged
    assert str(item.critique.uuid) in page(
        client, reviewer, reverse("review:queue") + f"?queue=matched&error_type={calc.id}"
    )  # your own tags still filter


def test_the_screen_hides_other_reviewers_pending_corrections_on_siblings(
    client, make_run, reviewer, reviewer2, settings
):
    settings.REVIEW_DOUBLE_FRACTION = 0.0
    run = make_run(n_samples=2)
    first = claim_next(reviewer, QueueFilter(queue="disagreed"))
    submit_review(first, reviewer, "label_wrong", note="the step is fine: 7 * 8 = 56")
    assert LabelCorrection.objects.get().status == "pending"
    sibling = Critique.objects.filter(run=run, step_id=first.step_id).exclude(id=first.critique_id).get()
    body = page(client, reviewer2, reverse("review:item", args=[sibling.uuid]))
    assert 'id="corrections"' not in body and "7 * 8 = 56" not in body
    # The author still sees their own proposal.
    assert 'id="corrections"' in page(client, reviewer, reverse("review:item", args=[sibling.uuid]))


# --- drill-downs, agreement, exports ---------------------------------------------------------


def test_the_drill_down_does_not_list_items_waiting_for_the_second_review(
    client, double, reviewer, reviewer2, admin
):
    calc = ErrorType.objects.get(slug="calculation")
    item = first_review(reviewer, error_types=[calc])
    url = reverse("dashboards:critiques") + "?outcome=partial&reviewer=reviewer"
    body = page(client, reviewer2, url)
    table = body[body.index('id="drill-table"') :]  # the filter controls name every error type
    assert str(item.critique.uuid) not in body and calc.name not in table
    body = page(client, reviewer2, reverse("dashboards:critiques") + "?reviewer=reviewer")
    assert str(item.critique.uuid) not in body
    # Admins audit: they see it, with its tag.
    body = page(client, admin, url)
    assert str(item.critique.uuid) in body and calc.name in body
    # Once the double review settles it is an ordinary reviewed item again.
    second_review(item, reviewer2, "flawed")
    assert str(item.critique.uuid) in page(
        client, reviewer2, reverse("dashboards:critiques") + "?reviewer=reviewer"
    )


def test_reviewers_see_no_live_pair_agreement(client, double, reviewer, reviewer2, admin):
    item = first_review(reviewer, "sound")
    second_review(item, reviewer2, "flawed")
    assert 'id="pairs"' not in page(client, reviewer2, reverse("review:agreement"))
    assert 'id="pairs"' in page(client, admin, reverse("review:agreement"))
    from dashboards.summaries import refresh_now

    refresh_now()
    csv_url = reverse("dashboards:reviews") + "?csv=pairs"
    assert "reviewer,reviewer2" not in page(client, reviewer2, csv_url)
    assert "reviewer,reviewer2" in page(client, admin, csv_url)


def test_exports_select_nothing_by_a_pending_review(double, reviewer, reviewer2, admin, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    calc = ErrorType.objects.get(slug="calculation")
    item = first_review(reviewer, "sound", error_types=[calc])

    def exported(**filters) -> set[str]:
        job = run_export_job(
            create_export_job(
                admin, {"kinds": ["sft"], "balance": False, "val_fraction": 0.0, **filters}, queue=False
            ).id
        )
        assert job.status == "succeeded", job.error
        lines = (
            (job.folder() / "sft_train.jsonl").read_text().splitlines()
            if "sft_train.jsonl" in job.files
            else []
        )
        return {json.loads(line)["critique_uuid"] for line in lines}

    uuid = str(item.critique.uuid)
    assert uuid not in exported(error_types=["calculation"])
    assert uuid not in exported(require_review=True)  # not decided until both reviews agree
    second_review(item, reviewer2, "sound")
    assert uuid in exported(error_types=["calculation"]) and uuid in exported(require_review=True)


# --- undo, label disputes, leases, GET ------------------------------------------------------


def test_undo_after_both_decided_reopens_for_the_reviewer_and_never_settles_by_agreement(
    double, reviewer, reviewer2
):
    item = first_review(reviewer, "sound")
    second_review(item, reviewer2, "flawed")
    undone = undo_last(reviewer)
    item.refresh_from_db()
    assert undone.decision == "sound" and item.state == "open" and item.lease_holder == reviewer
    assert ReviewEvent.objects.filter(kind="undone").get().payload["reopened_after_both"] is True
    submit_review(item, reviewer, "flawed")  # now matching the other reviewer
    item.refresh_from_db()
    assert item.state == "adjudication" and item.final_decision == ""
    # Kappa counts the first independent decisions: sound against flawed.
    [pair] = agreement()
    assert pair.items == 1 and pair.decision_pairs == [("sound", "flawed")] and pair.percent_agree == 0


def test_undo_of_an_agreed_item_never_returns_it_to_done(double, reviewer, reviewer2):
    item = first_review(reviewer, "sound")
    second_review(item, reviewer2, "sound")
    item.refresh_from_db()
    assert item.state == "done"
    undo_last(reviewer2)
    item.refresh_from_db()
    assert item.state == "open" and item.final_decision == "" and item.lease_holder == reviewer2
    submit_review(item, reviewer2, "sound")
    item.refresh_from_db()
    assert item.state == "adjudication"


def test_an_undo_before_the_other_decision_is_a_second_thought(double, reviewer, reviewer2):
    item = first_review(reviewer, "flawed")
    undo_last(reviewer)
    submit_review(ReviewItem.objects.get(pk=item.pk), reviewer, "sound")
    second_review(item, reviewer2, "sound")
    item.refresh_from_db()
    assert item.state == "done" and item.final_decision == "sound"
    [pair] = agreement()
    assert pair.decision_pairs == [("sound", "sound")]


def test_a_label_dispute_waits_for_the_second_independent_review(double, reviewer, reviewer2):
    item = first_review(reviewer, "label_wrong")
    item.refresh_from_db()
    assert item.state == "open"  # not gone from the second reviewer's queue
    second_review(item, reviewer2, "sound")
    item.refresh_from_db()
    assert item.state == "adjudication"


def test_deciding_needs_the_lease(client, double, reviewer, reviewer2):
    item = claim_next(reviewer, MATCHED)
    other = (
        ReviewItem.objects.filter(state="open", lease_holder__isnull=True).select_related("critique").first()
    )
    with pytest.raises(ReviewError):
        submit_review(other, reviewer2, "sound")  # free, but not taken
    client.force_login(reviewer2)
    response = client.post(reverse("review:decide", args=[other.critique.uuid]), {"decision": "sound"})
    assert response.status_code == 302 and not Review.objects.exists()
    assert item.lease_holder == reviewer


def test_get_never_writes_and_the_take_post_leases(client, make_run, reviewer):
    run = make_run(n_samples=1, audit=False)  # nothing queued yet
    critique = Critique.objects.filter(run=run).first()
    url = reverse("review:item", args=[critique.uuid])
    body = page(client, reviewer, url)
    assert not ReviewItem.objects.exists() and not ReviewEvent.objects.exists()
    assert 'id="take-form"' in body and 'id="decision-form"' not in body
    refused = client.post(reverse("review:decide", args=[critique.uuid]), {"decision": "sound"})
    assert refused.status_code == 302 and not Review.objects.exists() and not ReviewItem.objects.exists()
    taken = client.post(reverse("review:take", args=[critique.uuid]))
    assert taken.status_code == 302
    item = ReviewItem.objects.get(critique=critique)
    assert item.lease_holder == reviewer
    assert 'id="decision-form"' in page(client, reviewer, url)


def test_the_dashboards_pair_summary_counts_the_first_independent_decisions(double, reviewer, reviewer2):
    from dashboards.operations import reviewer_pairs
    from dashboards.slices import Slice
    from dashboards.summaries import refresh_now

    reopened = first_review(reviewer, "sound")
    second_review(reopened, reviewer2, "flawed")
    undo_last(reviewer)
    submit_review(ReviewItem.objects.get(pk=reopened.pk), reviewer, "flawed")  # follows reviewer2
    agreed = first_review(reviewer, "flawed")
    undo_last(reviewer)  # a second thought before reviewer2 decided: the re-decision counts
    submit_review(ReviewItem.objects.get(pk=agreed.pk), reviewer, "sound")
    second_review(agreed, reviewer2, "sound")
    refresh_now()
    [pair] = reviewer_pairs(Slice())
    assert (pair["items"], pair["percent_agree"]) == (2, 50.0)
    [live] = agreement()
    assert sorted(live.decision_pairs) == [("sound", "flawed"), ("sound", "sound")]


def test_the_adjudication_list_shows_the_undone_decision(client, double, reviewer, reviewer2, admin):
    item = first_review(reviewer, "sound")
    second_review(item, reviewer2, "flawed")
    undo_last(reviewer)
    submit_review(ReviewItem.objects.get(pk=item.pk), reviewer, "flawed")
    body = page(client, admin, reverse("review:adjudication_list"))
    assert str(item.critique.uuid) in body and "undone" in body and "decision-sound" in body


def test_reviewers_do_not_see_who_holds_an_item(client, double, reviewer, reviewer2, admin):
    import re

    item = claim_next(reviewer, MATCHED)
    uuid = str(item.critique.uuid)
    body = page(client, reviewer2, reverse("review:item", args=[uuid]))
    assert "Another reviewer is reviewing" in body and "held by another reviewer" in body
    queue = page(client, reviewer2, reverse("review:queue") + "?queue=matched")
    row = re.search(rf"<tr>(?:(?!</tr>).)*{uuid}(?:(?!</tr>).)*</tr>", queue, re.S).group(0)
    assert "taken" in row and ">reviewer<" not in row
    assert "held by reviewer" in page(client, admin, reverse("review:item", args=[uuid]))


def test_an_admin_deciding_a_sealed_item_is_blind_too_and_sees_all_after(client, double, reviewer, admin):
    item = first_review(reviewer, "flawed", note="FIRST-NOTE")
    client.force_login(admin)
    client.post(reverse("review:take", args=[item.critique.uuid]))
    body = page(client, admin, reverse("review:item", args=[item.critique.uuid]))
    assert 'id="decision-form"' in body
    assert "FIRST-NOTE" not in body and 'id="all-reviews"' not in body and 'id="item-state"' not in body
    client.post(reverse("review:decide", args=[item.critique.uuid]), {"decision": "sound"})
    body = page(client, admin, reverse("review:item", args=[item.critique.uuid]))
    assert "FIRST-NOTE" in body and 'id="all-reviews"' in body and "awaiting adjudication" in body
