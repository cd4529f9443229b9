"""Review views: access, the no-JavaScript flow, htmx partials, XSS, query counts."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from inference.models import Critique
from review.models import LabelCorrection, Review, ReviewItem
from review.queue import QueueFilter, claim_next
from review.reviews import correct_label
from training.export import create_export_job, run_export_job
from training.models import ExportJob

from .conftest import decide as take_and_decide


def _login(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def urls(make_run, admin):
    run = make_run(n_samples=1)
    item = ReviewItem.objects.filter(run=run).select_related("critique").first()
    job = run_export_job(create_export_job(admin, {"kinds": ["sft"]}, queue=False).id)
    correction = correct_label(item.step, admin, "neutral")
    uuid = item.critique.uuid
    reviewer_pages = [
        ("get", reverse("review:queue")),
        ("get", reverse("review:item", args=[uuid])),
        ("get", reverse("review:agreement")),
        ("post", reverse("review:claim")),
        ("post", reverse("review:undo")),
        ("post", reverse("review:release")),
        ("post", reverse("review:decide", args=[uuid])),
    ]
    admin_pages = [
        ("get", reverse("review:adjudication_list")),
        ("get", reverse("review:adjudicate", args=[uuid])),
        ("post", reverse("review:decide_correction", args=[correction.id])),
        ("post", reverse("review:audit_run")),
        ("get", reverse("training:export_list")),
        ("get", reverse("training:export_detail", args=[job.uuid])),
        ("get", reverse("training:export_download", args=[job.uuid, "manifest.json"])),
    ]
    return reviewer_pages, admin_pages


def test_anonymous_users_are_sent_to_log_in(client, urls):
    for method, url in urls[0] + urls[1]:
        response = getattr(client, method)(url)
        assert response.status_code == 302 and response.url.startswith(reverse("login")), url


def test_outsiders_get_403_everywhere(client, urls, outsider):
    _login(client, outsider)
    for method, url in urls[0] + urls[1]:
        assert getattr(client, method)(url).status_code == 403, url


def test_reviewers_cannot_reach_admin_pages(client, urls, reviewer):
    _login(client, reviewer)
    for method, url in urls[1]:
        assert getattr(client, method)(url).status_code == 403, url
    for url in (reverse("review:queue"), reverse("review:agreement")):
        assert client.get(url).status_code == 200
    assert LabelCorrection.objects.get().status == "pending"  # nothing changed


def test_admins_reach_admin_pages(client, urls, admin):
    _login(client, admin)
    for method, url in urls[1]:
        if method == "get":
            assert client.get(url).status_code == 200, url


def test_a_reviewer_works_a_queue_without_javascript(client, make_run, reviewer):
    make_run(n_samples=1)
    _login(client, reviewer)
    start = client.post(reverse("review:claim"), {"queue": "flagged"})
    assert start.status_code == 302 and "queue=flagged" in start.url
    first = ReviewItem.objects.get(lease_holder=reviewer)
    page = client.get(start.url)
    assert page.status_code == 200
    body = page.content.decode()
    assert 'id="decision-form"' in body and "210 + 91 = 300" in body  # the signal's evidence
    assert 'class="now-step' not in body or "now step" in body
    decided = client.post(
        reverse("review:decide", args=[first.critique.uuid]) + "?queue=flagged",
        {"decision": "flawed", "note": "says yes to 300", "time_on_task_ms": "4200"},
    )
    assert decided.status_code == 302
    review = Review.objects.get(reviewer=reviewer)
    assert (review.decision, review.note, review.time_on_task_ms) == ("flawed", "says yes to 300", 4200)
    second = ReviewItem.objects.get(lease_holder=reviewer)
    assert second.pk != first.pk and str(second.critique.uuid) in decided.url  # auto-advance
    # Previous shows my decision; undo brings the first item back to me.
    again = client.get(reverse("review:item", args=[first.critique.uuid]) + "?queue=flagged")
    assert 'id="my-decision"' in again.content.decode()
    undone = client.post(reverse("review:undo"), {"queue": "flagged"})
    assert undone.status_code == 302 and str(first.critique.uuid) in undone.url
    assert ReviewItem.objects.get(lease_holder=reviewer).pk == first.pk


def test_the_last_item_returns_to_the_queue(client, make_run, reviewer):
    make_run(n_samples=1)
    _login(client, reviewer)
    first, *rest = ReviewItem.objects.filter(queue="disagreed")
    for item in rest:
        take_and_decide(item, reviewer, "sound")
    last = claim_next(reviewer, QueueFilter(queue="disagreed"))
    assert last.pk == first.pk
    decide = reverse("review:decide", args=[last.critique.uuid]) + "?queue=disagreed"
    # With htmx the queue page must not land inside the review screen: a client redirect.
    response = client.post(decide, {"decision": "skip"}, headers={"HX-Request": "true"})
    remaining = ReviewItem.objects.filter(queue="disagreed", state="open").exclude(reviews__reviewer=reviewer)
    assert not remaining.exists()
    assert response.status_code == 200 and response.headers["HX-Redirect"].startswith(reverse("review:queue"))


def test_htmx_gets_the_screen_partial_and_the_url_to_push(client, make_run, reviewer):
    make_run(n_samples=1)
    _login(client, reviewer)
    item = claim_next(reviewer, QueueFilter())
    url = reverse("review:item", args=[item.critique.uuid]) + "?queue=matched"
    response = client.get(url, headers={"HX-Request": "true", "HX-Target": "review-screen"})
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="review-screen"') and "<html" not in body
    assert response.headers["HX-Push-Url"] == url
    bad = client.post(
        reverse("review:decide", args=[item.critique.uuid]),
        {"decision": "maybe"},
        headers={"HX-Request": "true"},
    )
    assert bad.status_code == 200 and "errorlist" in bad.content.decode()
    assert not Review.objects.exists()


def test_pages_keep_their_query_counts(client, make_run, reviewer, django_assert_max_num_queries):
    make_run(n_samples=2)
    _login(client, reviewer)
    take_and_decide(ReviewItem.objects.filter(queue="disagreed").first(), reviewer, "sound")
    item = claim_next(reviewer, QueueFilter())
    # 12, two for the progress line (reviewed items; the team's and your decisions) and
    # one for your assignments.
    with django_assert_max_num_queries(15):
        assert client.get(reverse("review:queue") + "?queue=matched").status_code == 200
    with django_assert_max_num_queries(20):
        assert client.get(reverse("review:item", args=[item.critique.uuid])).status_code == 200


def test_html_in_problems_steps_and_critiques_renders_inert(client, xss_item, admin):
    _login(client, admin)
    for url in (
        reverse("review:item", args=[xss_item.critique.uuid]),
        reverse("review:adjudicate", args=[xss_item.critique.uuid]),
    ):
        body = client.get(url).content.decode()
        assert "<script>window.__xss" not in body and "<img src=x" not in body and "<img src=y" not in body
        assert "&lt;script&gt;window.__xss" in body and "&lt;img src=x onerror=" in body
        assert "<b>bold</b>" not in body
        # Text is escaped; the formula becomes a span.tex for KaTeX to typeset in the browser.
        assert re.search(
            r'class="steptext math" dir="auto">&lt;img src=x onerror=&quot;window.__xss=1&quot;&gt; So '
            r'<span class="tex" data-display="0" data-tex="1\+1=3">\$1\+1=3\$</span>',
            body,
        )
        # The equation check still ran on the escaped-to-be text: 1+1=3 is false.
        assert "1+1 = 3" in body


def test_an_admin_adjudicates_and_exports_from_the_browser_pages(
    client, make_run, reviewer, admin, django_capture_on_commit_callbacks, monkeypatch, settings
):
    settings.REVIEW_DOUBLE_FRACTION = 0.0  # one review settles it: double sampling is by critique id
    run = make_run(n_samples=1)
    item = ReviewItem.objects.filter(run=run, queue="disagreed").first()
    take_and_decide(item, reviewer, "label_wrong", note="fine step")
    _login(client, admin)
    listing = client.get(reverse("review:adjudication_list")).content.decode()
    assert str(item.critique.uuid) in listing
    response = client.post(
        reverse("review:adjudicate", args=[item.critique.uuid]), {"decision": "label_wrong"}
    )
    assert response.status_code == 302
    assert LabelCorrection.objects.get().status == "accepted"
    queued = []
    monkeypatch.setattr("training.tasks.export_task.delay", lambda job_id: queued.append(job_id))
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(
            reverse("training:export_list"),
            {
                "sft": "on",
                "dpo": "on",
                "runs": [run.id],
                "val_fraction": "0",
                "dpo_pairs_per_step": "2",
                "seed": "0",
            },
        )
    job = ExportJob.objects.get()
    assert created.status_code == 302 and queued == [job.id] and job.filters["runs"] == [run.id]
    run_export_job(job.id)
    poll = client.get(
        reverse("training:export_detail", args=[job.uuid]),
        headers={"HX-Request": "true", "HX-Target": "export-progress"},
    )
    assert poll.status_code == 286 and "sft_train.jsonl" in poll.content.decode()  # stop polling
    download = client.get(reverse("training:export_download", args=[job.uuid, "sft_train.jsonl"]))
    rows = [json.loads(line) for line in b"".join(download.streaming_content).decode().splitlines()]
    assert rows and {r["critique_uuid"] for r in rows} <= {
        str(c) for c in Critique.objects.values_list("uuid", flat=True)
    }
    assert client.get(reverse("training:export_download", args=[job.uuid, "secret.txt"])).status_code == 404
