"""The team workflow in Debian's chromium: an admin builds a team on the team page and
assigns a dataset, two reviewers review by keyboard, an adjudicator settles the
disagreements with keys only (save-and-next, undo), and the progress counts are right."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from review.models import Adjudication, LabelCorrection, Review, ReviewItem
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

NEW_PASSWORD = "team-test-pass-42"


def _create(page, base, username, role, *, invite=False) -> str:
    page.goto(f"{base}/team/")
    page.fill("#id_username", username)
    if not invite:
        page.fill("#id_password", NEW_PASSWORD)
    page.check(f'#new-roles input[value="{role}"]')
    page.click("#create-member")
    page.wait_for_selector("#roles-form")
    return page.url


def _assign(page, member_url, dataset_name):
    page.goto(member_url)
    page.select_option("#assign-form select[name=dataset]", label=dataset_name)
    page.click("#assign")
    page.wait_for_selector(f"#assignments >> text={dataset_name}")


def _review(page, live_server, username, keys: list[str]) -> None:
    """Sign in and decide the first items of the matched queue, one key each."""
    page.context.clear_cookies()
    log_in(page, live_server, username, NEW_PASSWORD)
    page.goto(f"{live_server.url}/review/?queue=matched")
    page.wait_for_selector("#queue-progress")
    page.keyboard.press("Enter")
    for key in keys:
        page.wait_for_selector("#decision-form")
        here = page.url
        for k in key:  # "cl": cycle the corrected label, then decide label wrong
            page.keyboard.press(k)
        page.wait_for_function(f"location.href !== {here!r}")
    page.wait_for_selector("#review-screen")


def test_it_runs_a_review_team_from_the_team_page(page, live_server, make_run, admin, demo, shot, settings):
    settings.REVIEW_DOUBLE_FRACTION = 1.0
    make_run(n_samples=1)  # the teacher says Yes everywhere: matched items have "correct" labels
    base = live_server.url
    matched = ReviewItem.objects.filter(queue="matched").count()

    log_in(page, live_server, "admin", PASSWORD)
    ana_url = _create(page, base, "ana", "reviewer", invite=True)
    invite = page.input_value("#invite-url")
    shot(page, "team-member-invited")
    ben_url = _create(page, base, "ben", "reviewer")
    _create(page, base, "cleo", "adjudicator")
    _assign(page, ana_url, "demo")
    _assign(page, ben_url, "demo")
    page.goto(f"{base}/team/")
    assert page.locator("#members tbody tr").count() == 4
    assert "reviewer" in page.locator('tr[data-username="ana"] .roles').inner_text()
    assert "invited" in page.locator('tr[data-username="ana"]').inner_text()
    shot(page, "team-members")

    page.context.clear_cookies()  # ana follows her link and sets a password
    page.goto(invite)
    page.fill("#id_new_password1", NEW_PASSWORD)
    page.fill("#id_new_password2", NEW_PASSWORD)
    page.click("#set-password")
    page.wait_for_selector("#id_username")

    _review(page, live_server, "ana", ["s", "s", "s"])
    chip = page.locator("#progress").inner_text()
    assert f"0 of {matched} · {matched} left · you 3 today" in chip  # each item still needs ben
    shot(page, "team-review-progress")
    _review(page, live_server, "ben", ["f", "f", "cl"])

    first_three = list(
        ReviewItem.objects.filter(queue="matched")
        .order_by("-suspicion", "id")
        .values_list("id", flat=True)[:3]
    )
    decided = dict(Review.objects.filter(reviewer__username="ben").values_list("item_id", "decision"))
    assert decided == dict(zip(first_three, ["flawed", "flawed", "label_wrong"], strict=True))
    assert set(Review.objects.filter(reviewer__username="ana").values_list("item_id", flat=True)) == set(
        first_three
    )
    # "c" moved the proposed label from the flip (incorrect) to the next choice.
    assert LabelCorrection.objects.get().proposed_label == "neutral"

    page.goto(f"{base}/review/?queue=matched")  # ben's counts after both reviewed three items
    assert page.inner_text("#progress-done") == "3" and page.inner_text("#progress-mine") == "3"
    assert page.inner_text("#progress-left") == str(matched - 3) and page.inner_text("#progress-today") == "6"
    assert "demo" in page.inner_text("#assigned-to-you")
    shot(page, "team-queue-progress")

    page.context.clear_cookies()
    log_in(page, live_server, "cleo", NEW_PASSWORD)
    page.goto(f"{base}/review/adjudication/")
    assert page.locator("#adjudication-items tbody tr").count() == 3
    assert "matched" in page.locator("#adjudication-items").inner_text()
    shot(page, "team-adjudication-list")
    page.keyboard.press("Enter")
    outcomes = []
    for key in ("f", "u", "s", "f", "l"):  # decide, undo it, decide again, then the other two
        page.wait_for_selector("#decision-form")
        if not outcomes:
            assert page.locator("#adjudication-reviews .review-card").count() == 2
            shot(page, "team-adjudicate")
        here = page.url
        page.keyboard.press(key)
        page.wait_for_function(f"location.href !== {here!r}")
        outcomes.append(key)
    page.wait_for_selector("text=Nothing else waits for your adjudication.")
    final = dict(Adjudication.objects.values_list("item_id", "decision"))
    assert final == dict(zip(first_three, ["sound", "flawed", "label_wrong"], strict=True))
    assert LabelCorrection.objects.get().status == "accepted"

    page.context.clear_cookies()
    log_in(page, live_server, "admin", PASSWORD)
    page.goto(f"{base}/team/progress/")
    row = page.locator('#dataset-progress tr[data-dataset="demo"]')
    left = ReviewItem.objects.filter(state="open").count()
    assert row.locator("td.done").inner_text() == "3" and row.locator("td.left").inner_text() == str(left)
    shot(page, "team-progress")
    outsider = User.objects.create_user("nobody", "", NEW_PASSWORD)
    page.context.clear_cookies()
    log_in(page, live_server, outsider.username, NEW_PASSWORD)
    page.wait_for_selector("#forbidden")
    assert page.inner_text("#missing-role") == "reviewer" and "admin" in page.inner_text("#admins-to-ask")
    shot(page, "team-403")
    assert page.js_errors == []
