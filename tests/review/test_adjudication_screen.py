"""The adjudication work screen: adjudicators (not reviewers) reach it, both reviews sit
side by side with proposed labels, save-and-next, pass, undo; the list names run and queue."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from review.models import Adjudication, LabelCorrection, ReviewEvent, ReviewItem
from review.reviews import undo_adjudication
from tests.conftest import PASSWORD

from .conftest import decide, split_teacher


@pytest.fixture
def judge(db) -> User:
    user = User.objects.create_user("judge", "judge@example.org", PASSWORD)
    user.groups.add(Group.objects.get_or_create(name="adjudicator")[0])
    return user


@pytest.fixture
def disputes(make_run, reviewer, reviewer2, settings):
    """Three items awaiting adjudication, oldest first: two disagreements and a label dispute."""
    settings.REVIEW_DOUBLE_FRACTION = 1.0
    run = make_run(split_teacher, n_samples=2)
    items = list(ReviewItem.objects.filter(run=run).select_related("critique").order_by("id")[:3])
    decide(items[0], reviewer, "sound", note="FIRST-NOTE")
    decide(items[0], reviewer2, "flawed", note="SECOND-NOTE")
    decide(items[1], reviewer, "sound")
    decide(items[1], reviewer2, "flawed")
    decide(items[2], reviewer, "label_wrong", proposed_label="neutral")
    decide(items[2], reviewer2, "sound")
    return [ReviewItem.objects.get(pk=i.pk) for i in items]


def test_it_lets_adjudicators_and_admins_in_and_keeps_reviewers_out(
    client, disputes, judge, reviewer, outsider
):
    uuid = disputes[0].critique.uuid
    pages = [
        ("get", reverse("review:adjudication_list")),
        ("get", reverse("review:adjudicate", args=[uuid])),
        ("post", reverse("review:adjudicate", args=[uuid])),
        ("post", reverse("review:adjudication_undo")),
    ]
    for user in (reviewer, outsider):
        client.force_login(user)
        for method, url in pages:
            response = (
                getattr(client, method)(url, {"decision": "sound"}) if method == "post" else client.get(url)
            )
            assert response.status_code == 403, (user.username, url)
    assert not Adjudication.objects.exists()
    client.force_login(judge)
    assert client.get(pages[0][1]).status_code == 200 and client.get(pages[1][1]).status_code == 200


def test_it_shows_both_reviews_side_by_side_and_the_list_names_run_and_queue(client, disputes, judge):
    client.force_login(judge)
    listing = client.get(reverse("review:adjudication_list")).content.decode()
    assert f"#{disputes[0].run_id}" in listing and disputes[0].queue in listing
    assert 'id="start-review"' in listing
    body = client.get(reverse("review:adjudicate", args=[disputes[2].critique.uuid])).content.decode()
    top = body.split('id="adjudication-reviews"')[1].split('id="decide-panel"')[0]
    assert top.count("review-card") == 2 and "reviewer2" in top and "reviewer" in top
    assert "proposed label" in top and "neutral" in top
    first = client.get(reverse("review:adjudicate", args=[disputes[0].critique.uuid])).content.decode()
    assert "FIRST-NOTE" in first and "SECOND-NOTE" in first


def test_it_saves_and_opens_the_next_then_undoes(client, disputes, judge):
    client.force_login(judge)
    response = client.post(
        reverse("review:adjudicate", args=[disputes[2].critique.uuid]),
        {"decision": "label_wrong", "note": "n"},
    )
    assert response.status_code == 302
    assert response.url == reverse("review:adjudicate", args=[disputes[0].critique.uuid])  # oldest next
    assert LabelCorrection.objects.get().status == "accepted"
    passed = client.post(reverse("review:adjudicate", args=[disputes[0].critique.uuid]), {"decision": "skip"})
    assert passed.url == reverse("review:adjudicate", args=[disputes[1].critique.uuid])
    assert ReviewItem.objects.get(pk=disputes[0].pk).state == "adjudication"  # passing writes nothing
    undone = client.post(reverse("review:adjudication_undo"))
    assert undone.url == reverse("review:adjudicate", args=[disputes[2].critique.uuid])
    item = ReviewItem.objects.get(pk=disputes[2].pk)
    assert item.state == "adjudication" and item.final_decision == "" and not Adjudication.objects.exists()
    assert LabelCorrection.objects.get().status == "pending"
    event = ReviewEvent.objects.get(kind="adjudication_undone")
    assert event.payload["decision"] == "label_wrong" and event.payload["note"] == "n"
    assert undo_adjudication(judge) is None  # nothing more of theirs to undo


def test_it_never_serves_an_adjudicator_their_own_dispute(client, disputes, reviewer):
    reviewer.groups.add(Group.objects.get_or_create(name="adjudicator")[0])
    client.force_login(reviewer)
    listing = client.get(reverse("review:adjudication_list")).content.decode()
    assert 'id="start-review"' not in listing  # they reviewed all three
    body = client.get(reverse("review:adjudicate", args=[disputes[0].critique.uuid])).content.decode()
    assert 'id="own-review"' in body
