"""Claiming: leases, expiry, double review, and 20 concurrent claimers."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from review.models import ReviewEvent, ReviewItem
from review.queue import QueueFilter, claim_next, needs_double_review, release_lease
from review.reviews import submit_review

DISAGREED = QueueFilter(queue="disagreed")


def test_it_leases_the_most_suspicious_item_once_and_renews_it(make_run, reviewer, reviewer2):
    run = make_run(n_samples=1)
    first = claim_next(reviewer, DISAGREED)
    top = ReviewItem.objects.filter(run=run, queue="disagreed").order_by("-suspicion", "id").first()
    assert first == top and first.lease_holder == reviewer and first.suspicion >= 0.9
    # Asking again renews the same lease rather than taking a second item.
    again = claim_next(reviewer, DISAGREED)
    assert again.pk == first.pk and again.lease_expires_at >= first.lease_expires_at
    other = claim_next(reviewer2, DISAGREED)
    assert other.pk != first.pk
    assert ReviewItem.objects.filter(lease_holder=reviewer).count() == 1
    assert ReviewEvent.objects.filter(kind="claimed").count() == 2


def test_it_moves_a_reviewer_to_another_queue_and_releases(make_run, reviewer):
    make_run(n_samples=1)
    flagged = claim_next(reviewer, QueueFilter(queue="flagged"))
    matched = claim_next(reviewer, QueueFilter(queue="matched"))
    assert matched.pk != flagged.pk and matched.queue == "matched"
    assert ReviewItem.objects.get(pk=flagged.pk).lease_holder is None
    assert release_lease(reviewer) and not ReviewItem.objects.filter(lease_holder=reviewer).exists()


def test_an_expired_lease_goes_to_the_next_reviewer(make_run, reviewer, reviewer2, settings):
    settings.REVIEW_LEASE_MINUTES = 5
    make_run(n_samples=1)
    now = timezone.now()
    mine = claim_next(reviewer, DISAGREED, now=now)
    assert mine.lease_expires_at == now + timedelta(minutes=5)
    assert claim_next(reviewer2, DISAGREED, now=now + timedelta(minutes=4)).pk != mine.pk
    release_lease(reviewer2)
    taken = claim_next(reviewer2, DISAGREED, now=now + timedelta(minutes=6))
    assert taken.pk == mine.pk and taken.lease_holder == reviewer2
    assert (
        ReviewEvent.objects.filter(kind="claimed", item=taken).last().payload["expired_lease_of"]
        == reviewer.id
    )


def test_double_review_is_deterministic_and_only_sampled_items_reach_two_people(
    make_run, reviewer, reviewer2, settings
):
    assert [needs_double_review(i, 0.3) for i in range(200)] == [
        needs_double_review(i, 0.3) for i in range(200)
    ]
    assert 40 <= sum(needs_double_review(i, 0.3) for i in range(200)) <= 80
    settings.REVIEW_DOUBLE_FRACTION = 0.5
    run = make_run(n_samples=1)
    items = ReviewItem.objects.filter(run=run)
    assert {i.needs_double_review for i in items} == {True, False}
    assert all(i.reviews_needed == (2 if needs_double_review(i.critique_id, 0.5) else 1) for i in items)
    seen: dict[int, set[str]] = {}
    for user in (reviewer, reviewer2):
        while (item := claim_next(user, QueueFilter(queue="matched"))) is not None:
            seen.setdefault(item.pk, set()).add(user.username)
            submit_review(item, user, "sound")
    for pk, who in seen.items():
        item = ReviewItem.objects.get(pk=pk)
        assert len(who) == item.reviews_needed == item.reviews_done
        assert item.state == "done" and item.final_decision == "sound"


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_claimers_never_share_a_lease(make_run):
    if connection.vendor != "postgresql":
        pytest.skip("SELECT ... FOR UPDATE SKIP LOCKED needs Postgres (set DATABASE_URL)")
    make_run(n_samples=2)  # 72 items: 50 matched
    users = [User.objects.create_user(f"claimer{i}") for i in range(20)]
    barrier = threading.Barrier(len(users))
    got: dict[str, int | None] = {}
    errors: list[BaseException] = []

    def work(user):
        from django.db import connection as conn

        try:
            barrier.wait(timeout=30)
            item = claim_next(user, QueueFilter(queue="matched"))
            got[user.username] = item.pk if item else None
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            conn.close()  # each thread had its own connection

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    claimed = [pk for pk in got.values() if pk is not None]
    assert len(claimed) == 20 == len(set(claimed))
    holders = dict(
        ReviewItem.objects.filter(lease_holder__isnull=False).values_list("pk", "lease_holder__username")
    )
    assert len(holders) == 20 and all(holders[got[u.username]] == u.username for u in users)
