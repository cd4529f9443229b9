"""A full review session by keyboard in Debian's chromium, and XSS with math still rendering."""

from __future__ import annotations

import re

import pytest

from review.models import Review, ReviewItem
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD

from .conftest import split_teacher

pytestmark = pytest.mark.browser


def screen_uuid(page) -> str:
    return re.search(r"/review/critiques/([0-9a-f-]{36})/", page.url).group(1)


def test_a_reviewer_works_through_a_queue_by_keyboard(page, live_server, make_run, reviewer, shot, settings):
    settings.REVIEW_DOUBLE_FRACTION = 0.0
    make_run(n_samples=2)
    log_in(page, live_server, "reviewer", PASSWORD)
    page.goto(f"{live_server.url}/review/?queue=flagged")
    page.wait_for_selector("#queue-items")
    assert page.locator("#queue-items tbody tr").count() == 6  # 3 false equations x 2 samples
    shot(page, "review-queue")

    page.keyboard.press("Enter")  # start
    page.wait_for_selector("#decision-form")
    first = screen_uuid(page)
    page.wait_for_selector("#steps .katex")  # KaTeX rendered the step math
    assert page.locator("#steps li.now-step").count() == 1
    assert "210 + 91 = 300" in page.locator("#signals").inner_text()
    assert page.locator("#samples article").count() == 1
    page.wait_for_timeout(300)  # some time on task
    shot(page, "review")

    page.keyboard.press("3")
    page.keyboard.press("0")
    assert (
        page.locator('input[data-digit="3"]').is_checked()
        and page.locator('input[data-digit="0"]').is_checked()
    )
    page.keyboard.press("f")  # flawed: saved, next item swapped in
    page.wait_for_function(f"!location.pathname.includes('{first}')")
    page.wait_for_selector("#decision-form")
    second = screen_uuid(page)
    review = Review.objects.get(reviewer=reviewer)
    assert review.decision == "flawed" and review.time_source == "client" and review.time_on_task_ms >= 300
    assert sorted(review.error_types.values_list("order", flat=True)) == [2, 9]
    assert "flawed" in page.locator("#last-decision").inner_text()
    page.wait_for_selector("#steps .katex")  # math renders after the htmx swap too

    page.keyboard.press("u")  # undo: back to the first item, decidable again
    page.wait_for_function(f"location.pathname.includes('{first}')")
    page.wait_for_selector("#decision-form")
    assert Review.objects.get(reviewer=reviewer).undone_at is not None
    shot(page, "review-after-undo")

    page.keyboard.press("s")  # sound this time
    page.wait_for_function(f"!location.pathname.includes('{first}')")
    page.wait_for_selector("#decision-form")
    assert screen_uuid(page) == second  # the lease on the second item came back with the claim
    page.keyboard.press("k")  # previous: my decision, read-only
    page.wait_for_selector("#my-decision")
    assert screen_uuid(page) == first and "sound" in page.locator("#my-decision").inner_text()
    page.keyboard.press("j")  # next: back to the item I hold
    page.wait_for_function(f"location.pathname.includes('{second}')")
    page.wait_for_selector("#decision-form")
    page.keyboard.press("e")
    page.keyboard.type("skips: needs a domain expert")
    page.keyboard.press("Escape")
    page.keyboard.press("x")
    page.wait_for_function(f"!location.pathname.includes('{second}')")
    decisions = dict(
        Review.objects.filter(reviewer=reviewer, undone_at__isnull=True).values_list(
            "item__critique__uuid", "decision"
        )
    )
    assert {str(k): v for k, v in decisions.items()} == {first: "sound", second: "skip"}
    assert Review.objects.get(item__critique__uuid=second).note == "skips: needs a domain expert"
    assert ReviewItem.objects.filter(lease_holder=reviewer).count() == 1
    page.go_back()  # history entries were pushed
    page.wait_for_function(f"location.pathname.includes('{second}')")
    shot(page, "review-history")
    assert page.js_errors == []


def test_html_in_the_data_stays_inert_while_math_renders(page, live_server, xss_item, admin, shot):
    log_in(page, live_server, "admin", PASSWORD)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{live_server.url}/review/critiques/{xss_item.critique.uuid}/")
    page.wait_for_selector("#steps .katex")
    page.wait_for_selector("#critique-sections .katex")
    assert page.evaluate("window.__xss") is None and dialogs == []
    assert (
        page.locator("#steps img, #problem script, #critique-sections img, #critique-sections script").count()
        == 0
    )
    assert "<img src=x onerror=" in page.locator("#steps").inner_text()
    assert "<script>" in page.locator("#critique-sections").inner_text()
    shot(page, "review-xss")
    assert page.js_errors == []


def test_an_admin_adjudicates_and_exports(
    page, live_server, make_run, reviewer, reviewer2, admin, shot, settings, tmp_path
):
    from .conftest import decide

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the export runs in the web process here
    settings.REVIEW_DOUBLE_FRACTION = 1.0
    make_run(split_teacher, n_samples=2)
    item = ReviewItem.objects.filter(queue="matched").select_related("critique").first()
    decide(item, reviewer, "sound", note="checks out")
    decide(item, reviewer2, "flawed", note="the calculation analysis never redoes $3 \\times 12$")
    log_in(page, live_server, "admin", PASSWORD)
    page.goto(f"{live_server.url}/review/adjudication/")
    page.click("#adjudication-items a.button")
    page.wait_for_selector("#decision-form")
    page.wait_for_selector("#adjudication-reviews .katex")
    shot(page, "review-adjudicate")
    page.click("#decision-form button[value=flawed]")
    page.wait_for_selector("text=Nothing waits for adjudication.")
    page.goto(f"{live_server.url}/review/exports/")
    page.click("#export-form button[type=submit]")
    page.wait_for_selector("#export-status:text('succeeded')")
    assert page.locator("#export-files a").count() >= 5  # sft_train, dpo (JSONL + Parquet), manifest
    assert page.locator("#export-empty").count() == 0
    shot(page, "review-export")
    page.goto(f"{live_server.url}/review/agreement/")
    assert page.locator("#pairs tbody tr").count() == 1
    shot(page, "review-agreement")
    assert page.js_errors == []


def test_the_second_reviewer_sees_nothing_of_the_first_review(
    page, live_server, make_run, reviewer, reviewer2, shot, settings
):
    from annotations.models import ErrorType
    from inference.models import Critique
    from review.models import LabelCorrection

    from .conftest import decide

    settings.REVIEW_DOUBLE_FRACTION = 1.0
    run = make_run(split_teacher, n_samples=2)
    item = ReviewItem.objects.filter(run=run, queue="matched").select_related("critique").first()
    sibling = Critique.objects.filter(run=run, step_id=item.step_id).exclude(id=item.critique_id).get()
    calc = ErrorType.objects.get(slug="calculation")
    decide(item, reviewer, "flawed", error_types=[calc], note="FIRST-REVIEWER-NOTE")
    decide(ReviewItem.objects.get(critique=sibling), reviewer, "label_wrong", reason="FIRST-REVIEWER-LABEL")
    assert LabelCorrection.objects.filter(step_id=item.step_id, status="pending").count() == 1

    log_in(page, live_server, "reviewer2", PASSWORD)
    page.goto(f"{live_server.url}/review/critiques/{item.critique.uuid}/?queue=matched")
    page.wait_for_selector("#take-form")  # opened by link: deciding starts with taking it
    assert ReviewItem.objects.get(pk=item.pk).lease_holder is None  # the GET wrote nothing
    shot(page, "review-blind-take")
    page.keyboard.press("t")
    page.wait_for_selector("#decision-form")
    assert ReviewItem.objects.get(pk=item.pk).lease_holder == reviewer2
    page.wait_for_selector("#steps .katex")
    text = page.locator("#review-screen").inner_text()
    for leak in (
        "1/2",
        "double review",
        "needs review",
        "awaiting adjudication",
        "FIRST-REVIEWER",
        "Label corrections",
        "Reviews",
    ):
        assert leak not in text, leak
    assert page.locator("#item-state, #corrections, #all-reviews").count() == 0
    shot(page, "review-blind-second-reviewer")
    page.keyboard.press("s")
    page.wait_for_function(f"!location.pathname.includes('{item.critique.uuid}')")
    assert ReviewItem.objects.get(pk=item.pk).state == "adjudication"
    page.goto(f"{live_server.url}/review/critiques/{item.critique.uuid}/")
    page.wait_for_selector("#my-decision")
    assert "adjudication" not in page.locator("#review-screen").inner_text()
    shot(page, "review-blind-after-deciding")
    assert page.js_errors == []
