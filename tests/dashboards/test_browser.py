"""Each dashboard in Debian's chromium: charts drawn from the server's numbers, filters
swapping the body by htmx, a bar click drilling down, screenshots for a look."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import log_in
from tests.conftest import PASSWORD

from .conftest import build_cast, build_showcase

pytestmark = pytest.mark.browser

CHARTS_DRAWN = (
    "() => { const c = [...document.querySelectorAll('canvas[data-chart]')];"
    " return c.length > 0 && c.every(x => x.dataset.drawn && window.Chart && Chart.getChart(x)); }"
)


@pytest.fixture
def showcase(transactional_db, tmp_path, admin, reviewer, reviewer2):
    return build_showcase(tmp_path, admin, reviewer, reviewer2)


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_function(CHARTS_DRAWN)


def _click_bar(page, canvas_id: str, dataset: int, index: int) -> None:
    """Click the middle of one horizontal bar, located by Chart.js itself."""
    x, y = page.evaluate(
        "([id, d, i]) => { const el = Chart.getChart(document.getElementById(id)).getDatasetMeta(d).data[i];"
        " return [(el.x + el.base) / 2, el.y]; }",
        [canvas_id, dataset, index],
    )
    page.locator(f"#{canvas_id}").click(position={"x": x, "y": y})


def _zoom(page, selector: str, name: str) -> None:
    """A close-up of one panel, at full resolution, for the screenshot check."""
    from tests.browser_fixtures import SHOTS

    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(selector).screenshot(path=str(SHOTS / f"{name}.png"))


def test_the_error_type_dashboard(page, live_server, showcase, shot):
    log_in(page, live_server, "admin", PASSWORD)
    _open(page, f"{live_server.url}/dashboards/")
    assert page.locator("nav a[aria-current]", has_text="Dashboards").count() == 1
    assert page.locator("#types-table tbody tr").count() == 12  # ten types, no type, all
    # Whiskers need intervals: the PBW chart carries one per bar with data.
    intervals = page.evaluate(
        "() => Chart.getChart(document.getElementById('pbw-chart')).data.datasets[0].intervals.filter(Boolean).length"
    )
    assert intervals >= 8
    title = page.locator('#types-table tr[data-type="calculation"] span.def').get_attribute("title")
    assert title.startswith("An arithmetic or algebraic computation")
    assert page.js_errors == []
    shot(page, "dashboard-error-types")
    for panel in ("pbw-panel", "types-panel", "trend-panel", "confusion-panel"):
        _zoom(page, f"#{panel}", f"dashboard-zoom-{panel}")

    # A filter change swaps the body by htmx, pushes the URL and redraws the charts.
    page.select_option("#id_basis", "tag")
    page.wait_for_url(re.compile(r"basis=tag"))
    page.wait_for_function(CHARTS_DRAWN)
    assert "reviewer / adjudicator tags only" in page.locator("#types-panel h2").inner_text()
    page.select_option("#id_trend", "calculation")
    page.wait_for_url(re.compile(r"trend=calculation"))
    page.wait_for_function(CHARTS_DRAWN)
    assert "Calculation error" in page.locator("#trend-panel h2").inner_text()
    shot(page, "dashboard-error-types-tags-calculation")

    # Clicking a bar lists the critiques behind it.
    _click_bar(page, "pbw-chart", 0, 9)  # calculation: the last type
    page.wait_for_url(re.compile(r"/dashboards/critiques/\?.*type=calculation"))
    assert page.locator("#drill-table tbody tr[data-critique]").count() > 0
    assert page.locator("#drill-table a", has_text="review").count() > 0
    shot(page, "dashboard-drill-down")
    assert page.js_errors == []


def test_the_compare_dashboard(page, live_server, showcase, shot):
    log_in(page, live_server, "reviewer", PASSWORD)
    _open(page, f"{live_server.url}/dashboards/compare/?same=1")
    assert page.locator("#compare-table tbody tr").count() == 12
    names = page.evaluate(
        "() => Chart.getChart(document.getElementById('compare-pbw-chart')).data.datasets.map(d => d.label)"
    )
    assert names == ["A: llama-3.3-70b-instruct", "B: qwen2.5-72b-instruct"]
    shot(page, "dashboard-compare")
    _zoom(page, "#compare-table-panel", "dashboard-zoom-compare-table")
    page.uncheck("#id_same")
    page.wait_for_function("() => !location.search.includes('same=1')")
    page.wait_for_function(CHARTS_DRAWN)
    assert "all steps" in page.locator("#headline").inner_text()
    assert page.js_errors == []


def test_the_review_operations_dashboard(page, live_server, showcase, shot):
    log_in(page, live_server, "admin", PASSWORD)
    _open(page, f"{live_server.url}/dashboards/reviews/")
    assert page.locator("#reviewers-table tbody tr").count() == 2
    assert page.locator("#kappa-table .kappa-decisions").count() == 1
    assert page.locator("#signals-table tbody tr").count() >= 10
    assert page.js_errors == []
    shot(page, "dashboard-review-operations")
    for panel in ("reviewers-panel", "signals-panel", "progress-panel"):
        _zoom(page, f"#{panel}", f"dashboard-zoom-{panel}")


def test_the_hand_counted_cast_in_the_browser(
    page, live_server, transactional_db, tmp_path, admin, reviewer, reviewer2, shot
):
    cast = build_cast(tmp_path, admin, reviewer, reviewer2)
    log_in(page, live_server, "reviewer", PASSWORD)
    _open(page, f"{live_server.url}/dashboards/?teacher={cast.a1.endpoint_id}&basis=class")
    row = page.locator('#types-table tr[data-type="counterfactual"] td.pbw').inner_text()
    assert "50.0%" in row and "15.0–85.0" in row and "2 / 4" in row
    # The table view toggles; the CSV link downloads the same rows.
    page.click("#types-panel summary")
    assert not page.locator("#types-table").is_visible()
    with page.expect_download() as info:
        page.click("#types-csv")
    assert info.value.suggested_filename == "error-types-class.csv"
    assert page.js_errors == []
    shot(page, "dashboard-error-types-cast")
