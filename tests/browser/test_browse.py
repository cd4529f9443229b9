from __future__ import annotations

import pytest

from annotations.actions import import_file
from annotations.demo import write_demo_processbench
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_it_walks_from_login_to_a_solution_with_rendered_math(page, live_server, admin, tmp_path, shot):
    import_file(write_demo_processbench(tmp_path / "demo.json"), dataset_name="demo", fmt="processbench", user=admin)
    log_in(page, live_server, "admin", PASSWORD)
    page.wait_for_selector("#datasets")
    assert page.locator("#datasets tbody tr").count() == 1
    shot(page, "datasets")

    page.click("text=demo")
    page.wait_for_selector("#solutions")
    assert page.locator("#solutions tbody tr").count() == 12
    # Filtering swaps only the table (htmx) and pushes the URL.
    page.select_option("#id_error", "error")
    page.wait_for_function("document.querySelectorAll('#solutions tbody tr').length === 6")
    assert "error=error" in page.url
    shot(page, "dataset")

    page.click("#solutions tbody tr >> nth=0 >> a")
    page.wait_for_selector("#steps")
    # KaTeX rendered the step's $...$ math; the first error is highlighted.
    page.wait_for_selector("#steps .katex")
    assert page.locator("#steps li.first-error").count() == 1
    assert page.locator("#steps .katex").count() >= 1 and "210 + 91 = 300" not in page.inner_text("#steps")
    shot(page, "solution")
    assert page.js_errors == []
