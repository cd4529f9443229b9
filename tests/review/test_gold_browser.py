"""Gold items in Debian's chromium: a seeded flaw served on the review screen like any
other item, then the calibration page an admin reads."""

from __future__ import annotations

import pytest

from review import gold
from review.models import GoldServing, ReviewItem
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD

from .conftest import decide
from .test_gold import checked_teacher

pytestmark = pytest.mark.browser


def test_a_seeded_flaw_on_the_review_screen_and_the_calibration_page(
    page, live_server, make_run, reviewer, reviewer2, admin, shot, settings
):
    settings.REVIEW_DOUBLE_FRACTION, settings.REVIEW_GOLD_RATE = 0.0, 0.0
    run = make_run(checked_teacher, n_samples=2)
    items = list(ReviewItem.objects.filter(run=run, queue="matched").select_related("critique"))
    for item in items:
        decide(item, reviewer2, "sound")
    g = gold.seed_flaw(items[0].critique, "arithmetic")
    settings.REVIEW_GOLD_RATE = 1.0

    log_in(page, live_server, "reviewer", PASSWORD)
    page.goto(f"{live_server.url}/review/?queue=matched")
    page.keyboard.press("Enter")
    page.wait_for_selector("#decision-form")
    copy = GoldServing.objects.get(reviewer=reviewer, gold=g).copy
    assert str(copy.uuid) in page.url
    body = page.locator("body").inner_text()
    assert "7 * 8 = 57" in body and "gold" not in body.lower() and "seeded" not in body.lower()
    # Audited like the run's own critiques: the planted false equation shows as it would anywhere.
    assert "Not computed yet" not in body and "7 * 8 = 57" in page.locator("#signals").inner_text()
    shot(page, "gold-item-review")
    page.keyboard.press("f")
    page.wait_for_function(f"!location.pathname.includes('{copy.uuid}')")

    page.context.clear_cookies()
    log_in(page, live_server, "admin", PASSWORD)
    page.goto(f"{live_server.url}/review/calibration/")
    row = page.locator('#calibration tr[data-reviewer="reviewer"]')
    assert "100%" in row.locator(".accuracy").inner_text() and "1/1" in row.inner_text()
    assert "Calculation" in page.locator("#gold-items").inner_text() or "calculation" in row.inner_text()
    assert page.js_errors == []
    shot(page, "calibration")
