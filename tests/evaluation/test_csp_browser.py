"""The pages work under the real Content Security Policy (no bypass): no violation is
reported, htmx swaps, KaTeX renders and the K-scaling chart (now a static script) draws."""

from __future__ import annotations

import pytest

from annotations.actions import import_file
from annotations.demo import write_demo_processbench
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD
from tests.evaluation.test_browser import evaluated  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser


@pytest.fixture
def strict_page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.violations = []
    page.on("console", lambda m: "Content Security Policy" in m.text and page.violations.append(m.text))
    page.on("pageerror", lambda exc: page.violations.append(str(exc)))
    yield page
    context.close()


def test_the_pages_run_under_the_csp(strict_page, live_server, admin, evaluated, tmp_path, shot):  # noqa: F811
    page = strict_page
    import_file(write_demo_processbench(tmp_path / "demo.json"), dataset_name="demo", fmt="processbench", user=admin)
    log_in(page, live_server, "admin", PASSWORD)
    page.wait_for_selector("#datasets")
    page.click("text=demo")
    page.wait_for_selector("#solutions tbody tr")
    page.select_option("#id_error", "error")  # an htmx swap
    page.wait_for_url("**error=error**")
    page.click("#solutions tbody tr >> nth=0 >> a")
    page.wait_for_selector("#steps .katex")  # KaTeX ran (static script)
    page.goto(f"{live_server.url}/evaluation/")
    page.wait_for_selector("#kscaling-chart[data-drawn='1']")  # kscaling.js drew the chart
    shot(page, "csp-results")
    assert page.violations == []
