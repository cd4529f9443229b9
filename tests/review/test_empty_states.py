"""The review queue separates teacher critiques from student samples, and an empty queue
says why, with the next action."""

from __future__ import annotations

import pytest
from django.urls import reverse

from inference.actions import create_run, endpoint_for
from inference.models import GenerationRun
from inference.runner import process_run
from review.audit import audit_run
from review.models import ReviewItem
from review.queue import QueueFilter, open_items, take_item
from review.reviews import submit_review
from tests.conftest import PASSWORD

from .conftest import WriterBackend, always_yes, split_teacher


def queue_page(client, user, **params) -> str:
    client.login(username=user.username, password=PASSWORD)
    response = client.get(reverse("review:queue"), params)
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def student_run(demo):
    run = create_run(
        dataset=demo,
        endpoint=endpoint_for("student", backend="transformers", role="student"),
        kind=GenerationRun.Kind.STUDENT_SAMPLE,
        queue=False,
        n_samples=2,
    )
    process_run(run.id, backend=WriterBackend(split_teacher))
    audit_run(run.id)
    return run


def test_the_queues_take_teacher_critiques_unless_asked(make_run, student_run, client, admin):
    teacher = make_run(split_teacher)
    teacher_items = open_items(QueueFilter(queue="matched"))
    assert set(teacher_items.values_list("run_id", flat=True)) == {teacher.id}
    assert set(open_items(QueueFilter(queue="matched", role="student")).values_list("run_id", flat=True)) == {
        student_run.id
    }
    assert (
        open_items(QueueFilter(queue="matched", role="all")).count()
        == ReviewItem.objects.filter(queue="matched").count()
        > teacher_items.count()
    )
    # A run named in the filter is shown whatever its role.
    assert open_items(QueueFilter(queue="matched", run_id=student_run.id)).exists()
    page = queue_page(client, admin, queue="matched")
    assert f"run #{student_run.id}<" not in page and f"run #{teacher.id}<" in page
    assert f"run #{student_run.id}<" in queue_page(client, admin, queue="matched", role="student")


def test_an_unaudited_run_offers_audit_now(make_run, client, admin, reviewer):
    run = make_run(split_teacher, audit=False)
    n = run.critiques.count()
    page = queue_page(client, admin)
    assert f"run {run.id}: {n:,} critiques not audited yet" in page
    assert 'data-reason="not_audited"' in page and "audit now</button>" in page
    # A reviewer is told who can act; the button is for admins.
    page = queue_page(client, reviewer)
    assert "an admin can audit them" in page and "audit now</button>" not in page


def test_an_all_unparseable_run_says_so(make_run, client, admin):
    run = make_run(lambda now, i: ("I think it is fine.", None))
    page = queue_page(client, admin)
    assert f"all {run.critiques.count():,} critiques of run {run.id} were unparseable" in page
    assert reverse("inference:run_detail", args=[run.uuid]) in page


def test_filters_that_hide_everything_offer_to_clear_them(make_run, client, admin):
    make_run(always_yes)
    n = open_items(QueueFilter(queue="matched")).count()
    page = queue_page(client, admin, queue="matched", q="no-such-text-anywhere")
    assert f"{n:,} open critiques are hidden by your filters" in page and "clear filters</a>" in page


def test_a_fully_reviewed_queue_says_so(make_run, client, admin, reviewer, settings):
    settings.REVIEW_DOUBLE_FRACTION = 0.0
    make_run(always_yes, n_samples=1)
    items = list(open_items(QueueFilter(queue="disagreed")))
    for item in items:
        submit_review(take_item(item.critique_id, reviewer), reviewer, "sound")
    page = queue_page(client, admin, queue="disagreed")
    assert items and f"all {len(items):,} critiques of this queue are reviewed" in page


def test_student_samples_waiting_are_pointed_at(student_run, client, admin):
    page = queue_page(client, admin, queue="matched")
    n = open_items(QueueFilter(queue="matched", role="student")).count()
    assert n and f"{n:,} student critiques are open in this queue" in page and "role=student" in page


def test_no_critiques_at_all(demo, client, admin):
    page = queue_page(client, admin)
    assert "no teacher critiques yet" in page and reverse("inference:run_new") in page
