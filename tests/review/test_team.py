"""The team pages: access (every view), members and roles, invitations, deactivation,
assignments served first, bulk actions, and the styled 403 page."""

from __future__ import annotations

import logging
import re

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from review import team
from review.models import Assignment, ReviewEvent, ReviewItem
from review.queue import QueueFilter, ReviewError, claim_next, take_item
from review.team import ItemFilter
from tests.conftest import PASSWORD

from .conftest import decide


@pytest.fixture
def team_urls(admin, reviewer, make_run):
    run = make_run(n_samples=1)
    assignment = team.assign(admin, reviewer, run=run)
    return [
        ("get", reverse("team:members")),
        ("post", reverse("team:create")),
        ("get", reverse("team:progress")),
        ("post", reverse("team:bulk")),
        ("get", reverse("team:member", args=[reviewer.id])),
        ("post", reverse("team:set_roles", args=[reviewer.id])),
        ("post", reverse("team:set_active", args=[reviewer.id])),
        ("post", reverse("team:reset_password", args=[reviewer.id])),
        ("post", reverse("team:assign", args=[reviewer.id])),
        ("post", reverse("team:unassign", args=[assignment.id])),
    ]


def _adjudicator() -> User:
    user = User.objects.create_user("judge", "judge@example.org", PASSWORD)
    user.groups.add(Group.objects.get_or_create(name="adjudicator")[0])
    return user


def test_it_sends_anonymous_users_to_log_in(client, team_urls):
    for method, url in team_urls:
        response = getattr(client, method)(url)
        assert response.status_code == 302 and response.url.startswith(reverse("login")), url


def test_it_refuses_every_team_view_to_non_admins(client, team_urls, reviewer, outsider):
    for user in (outsider, reviewer, _adjudicator()):
        client.force_login(user)
        for method, url in team_urls:
            data = {"roles": ["admin"], "active": "0", "username": "x", "action": "skip"}
            response = getattr(client, method)(url, data) if method == "post" else client.get(url)
            assert response.status_code == 403, (user.username, url)
            assert b'id="missing-role">admin<' in response.content
    reviewer.refresh_from_db()
    assert reviewer.is_active and not reviewer.is_staff and not User.objects.filter(username="x").exists()
    assert Assignment.objects.count() == 1 and not ReviewItem.objects.filter(state="skipped").exists()


def test_it_shows_a_styled_403_naming_the_role_and_the_admins_without_a_traceback(
    client, outsider, admin, caplog
):
    admin.email = "boss@example.org"
    admin.save()
    client.force_login(outsider)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get(reverse("annotations:dataset_list"))  # where a login lands
    page = response.content.decode()
    assert response.status_code == 403
    assert 'id="missing-role">reviewer<' in page and "with no role yet" in page
    assert "boss@example.org" in page and "<b>admin</b>" in page
    assert "studio.css" in page  # the site's own page, not Django's bare one
    forbidden = [r for r in caplog.records if "Forbidden" in r.getMessage()]
    assert forbidden and all(r.exc_info is None for r in forbidden)


def test_it_names_the_adjudicator_role_on_the_adjudication_screens(client, reviewer):
    client.force_login(reviewer)
    response = client.get(reverse("review:adjudication_list"))
    assert response.status_code == 403 and b'id="missing-role">adjudicator<' in response.content


def test_it_creates_a_member_with_a_password_who_can_sign_in(client, admin):
    client.force_login(admin)
    response = client.post(
        reverse("team:create"),
        {"username": "rita", "email": "rita@example.org", "password": "a-long-pass-9", "roles": ["reviewer"]},
    )
    rita = User.objects.get(username="rita")
    assert response.status_code == 302 and response.url == reverse("team:member", args=[rita.id])
    assert team.granted_roles(rita) == ["reviewer"] and not rita.is_staff
    client.logout()
    assert client.login(username="rita", password="a-long-pass-9")
    assert client.get(reverse("review:queue")).status_code == 200
    assert client.get(reverse("team:members")).status_code == 403


def test_it_invites_a_member_through_a_one_time_set_password_link(client, admin):
    client.force_login(admin)
    client.post(reverse("team:create"), {"username": "ivan", "roles": ["reviewer", "adjudicator"]})
    ivan = User.objects.get(username="ivan")
    assert team.is_invited(ivan) and not client.login(username="ivan", password="")
    page = client.get(reverse("team:member", args=[ivan.id])).content.decode()
    link = re.search(
        r'id="invite-url"[^>]*value="http://testserver([^"]+)"|value="http://testserver([^"]+)"[^>]*id="invite-url"',
        page,
    )
    path = next(g for g in link.groups() if g)
    client.logout()
    assert client.get(path).status_code == 200
    response = client.post(path, {"new_password1": "ivan-new-pass-7", "new_password2": "ivan-new-pass-7"})
    assert response.status_code == 302 and response.url == reverse("login")
    assert client.login(username="ivan", password="ivan-new-pass-7")
    client.logout()
    again = client.post(path, {"new_password1": "other-pass-77", "new_password2": "other-pass-77"})
    assert again.status_code == 400  # used once: the token no longer matches
    assert client.login(username="ivan", password="ivan-new-pass-7")


def test_it_refuses_a_taken_name_and_a_weak_password(client, admin, reviewer):
    client.force_login(admin)
    assert client.post(reverse("team:create"), {"username": "Reviewer"}).status_code == 422
    assert client.post(reverse("team:create"), {"username": "new", "password": "short"}).status_code == 422
    assert not User.objects.filter(username="new").exists()


def test_it_gives_and_takes_roles_and_keeps_an_admin(client, admin, reviewer):
    client.force_login(admin)
    client.post(reverse("team:set_roles", args=[reviewer.id]), {"roles": ["adjudicator", "admin"]})
    reviewer.refresh_from_db()
    assert team.granted_roles(reviewer) == ["adjudicator", "admin"] and reviewer.is_staff
    client.post(reverse("team:set_roles", args=[admin.id]), {"roles": ["reviewer"]})
    admin.refresh_from_db()
    assert admin.is_staff  # nobody takes their own admin role
    client.post(reverse("team:set_roles", args=[reviewer.id]), {"roles": []})
    reviewer.refresh_from_db()
    assert team.granted_roles(reviewer) == [] and not reviewer.is_staff
    with pytest.raises(ReviewError, match="last active admin"):
        team.set_roles(reviewer, admin, [])
    changes = ReviewEvent.objects.filter(kind="member_changed", payload__member=reviewer.id)
    assert [e.payload["roles"] for e in changes.order_by("id")] == [["adjudicator", "admin"], []]
    assert {e.actor_id for e in changes} == {admin.id}


def test_it_deactivates_a_member_whose_session_and_lease_end(client, admin, reviewer, make_run):
    make_run(n_samples=1)
    held = claim_next(reviewer, QueueFilter())
    client.force_login(reviewer)
    assert client.get(reverse("review:queue")).status_code == 200
    team.set_active(admin, reviewer, False)
    assert client.get(reverse("review:queue")).status_code == 302  # signed out
    held.refresh_from_db()
    assert held.lease_holder_id is None
    assert ReviewEvent.objects.filter(
        kind="released", item=held, payload__reason="reviewer deactivated"
    ).exists()
    team.set_active(admin, reviewer, True)
    assert client.login(username="reviewer", password=PASSWORD)
    with pytest.raises(ReviewError, match="yourself"):
        team.set_active(admin, admin, False)


def test_it_serves_assigned_work_first_and_keeps_it_from_others(
    admin, reviewer, reviewer2, make_run, settings
):
    settings.REVIEW_DOUBLE_FRACTION = 0.0
    mine, rest = make_run(n_samples=1), make_run(n_samples=1)
    team.assign(admin, reviewer, run=mine)
    for queue in ("matched",):
        flt = QueueFilter(queue=queue)
        first = claim_next(reviewer, flt)
        assert first.run_id == mine.id
        other = claim_next(reviewer2, flt)
        assert other.run_id == rest.id  # never the assigned run
    served = set()
    while (item := claim_next(reviewer2, QueueFilter())) is not None:
        served.add(item.run_id)
        decide(item, reviewer2, "sound")
    assert served == {rest.id}
    assert ReviewItem.objects.filter(run=mine, state="open").exists()
    team.set_active(admin, reviewer, False)  # a deactivated reviewer reserves nothing
    assert claim_next(reviewer2, QueueFilter()).run_id == mine.id


def test_it_lets_anyone_take_the_second_review_of_a_single_assignee(
    admin, reviewer, reviewer2, make_run, settings
):
    settings.REVIEW_DOUBLE_FRACTION = 1.0
    run = make_run(n_samples=1)
    team.assign(admin, reviewer, run=run)
    assert claim_next(reviewer2, QueueFilter()) is None
    item = claim_next(reviewer, QueueFilter())
    decide(item, reviewer, "sound")
    assert claim_next(reviewer2, QueueFilter()).pk == item.pk


def test_it_bulk_releases_skips_reopens_and_reassigns(client, admin, reviewer, reviewer2, make_run, settings):
    settings.REVIEW_DOUBLE_FRACTION = 0.0
    run = make_run(n_samples=1)
    team.assign(admin, reviewer, run=run, target=5)
    held = claim_next(reviewer, QueueFilter())
    client.force_login(admin)
    client.post(reverse("team:bulk"), {"action": "release", "reviewer": reviewer.id})
    held.refresh_from_db()
    assert held.lease_holder_id is None
    decide(held, reviewer, "sound")
    open_before = ReviewItem.objects.filter(run=run, state="open").count()
    client.post(reverse("team:bulk"), {"action": "skip", "run": run.id, "queue": "matched"})
    skipped = ReviewItem.objects.filter(run=run, state="skipped")
    assert skipped.count() == ReviewItem.objects.filter(run=run, queue="matched").count() - 1  # decided stays
    assert ReviewItem.objects.filter(run=run, state="open").count() == open_before - skipped.count()
    assert claim_next(reviewer, QueueFilter(queue="matched")) is None
    client.post(reverse("team:bulk"), {"action": "reopen", "run": run.id})
    assert ReviewItem.objects.filter(run=run, state="open").count() == open_before
    client.post(
        reverse("team:bulk"), {"action": "reassign", "reviewer": reviewer.id, "to_reviewer": reviewer2.id}
    )
    assert list(Assignment.objects.values_list("reviewer_id", "run_id", "target")) == [
        (reviewer2.id, run.id, 5)
    ]
    assert team.bulk_skip(admin, ItemFilter(run_id=run.id, queue="flagged")) >= 0


def test_it_keeps_the_team_pages_query_counts(
    client, admin, reviewer, reviewer2, make_run, django_assert_max_num_queries
):
    runs = [make_run(n_samples=1) for _ in range(3)]
    for run in runs:
        team.assign(admin, reviewer, run=run, target=3)
        team.assign(admin, reviewer2, run=run)
    decide(claim_next(reviewer, QueueFilter()), reviewer, "sound")
    client.force_login(admin)
    with django_assert_max_num_queries(10):
        assert client.get(reverse("team:members")).status_code == 200
    with django_assert_max_num_queries(14):
        assert client.get(reverse("team:progress")).status_code == 200
    with django_assert_max_num_queries(14):
        assert client.get(reverse("team:member", args=[reviewer.id])).status_code == 200


def test_it_lets_an_opened_link_be_taken_even_when_assigned_to_someone_else(
    admin, reviewer, reviewer2, make_run
):
    run = make_run(n_samples=1)
    team.assign(admin, reviewer, run=run)
    item = ReviewItem.objects.filter(run=run).first()
    assert take_item(item.critique_id, reviewer2).lease_holder_id == reviewer2.id


def test_it_refuses_a_forged_or_foreign_join_link(client, reviewer):
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    uid = urlsafe_base64_encode(force_bytes(reviewer.pk))
    token = default_token_generator.make_token(reviewer)
    for path in (
        reverse("team:join", args=[uid, "forged-token"]),
        reverse("team:join", args=["bm90LWFuLWlk", token]),
    ):
        assert client.get(path).status_code == 400
        client.post(path, {"new_password1": "taken-over-77", "new_password2": "taken-over-77"})
    assert not client.login(username="reviewer", password="taken-over-77")


def test_it_shows_reviewers_their_assignments_and_keeps_list_query_counts(
    client, admin, reviewer, reviewer2, make_run, django_assert_max_num_queries, settings
):
    settings.REVIEW_DOUBLE_FRACTION = 1.0
    runs = [make_run(n_samples=1) for _ in range(2)]
    for run in runs:
        team.assign(admin, reviewer, run=run, target=10)
    for _ in range(3):
        item = claim_next(reviewer, QueueFilter())
        decide(item, reviewer, "sound")
        decide(item, reviewer2, "flawed")  # three disagreements to adjudicate
    client.force_login(reviewer)
    with django_assert_max_num_queries(19):  # the queue's 15 and four for the assignments' counts
        page = client.get(reverse("review:queue")).content.decode()
    assert 'id="assigned-to-you"' in page and page.count("of your target <b>10</b>") == 2
    client.force_login(admin)
    with django_assert_max_num_queries(14):
        listing = client.get(reverse("review:adjudication_list"))
    assert listing.content.decode().count('class="button secondary"') == 3
