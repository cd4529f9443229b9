"""In chromium: a run on only erroneous solutions shows its undefined F1 with the reason and
its skipped K points; steps after the first error read "not scored". Screenshots go to
test-results/."""

from __future__ import annotations

import pytest

from evaluation.workflow import create_evaluation, process_evaluation
from inference.models import ModelEndpoint
from tests.browser_fixtures import log_in
from tests.conftest import PASSWORD
from tests.evaluation.conftest import ScriptedScorer, import_processbench
from tests.evaluation.test_nothing_thrown_away import ONLY_ERRORS, spread

pytestmark = pytest.mark.browser


@pytest.fixture
def errors_only_run(db, tmp_path):
    ds = import_processbench(tmp_path, ONLY_ERRORS, "math-errors", "math")
    endpoint = ModelEndpoint.objects.create(name="student-7b", role="student", backend="transformers",
                                            path_or_url="x")  # fmt: skip
    run = create_evaluation(benchmark="processbench", datasets=[ds], endpoint=endpoint, n_samples=4, queue=False)
    process_evaluation(run.id, backend=ScriptedScorer(spread))
    run.refresh_from_db()
    return run


def test_the_run_page_marks_undefined_f1_skipped_k_and_unscored_steps(page, live_server, admin,
                                                                        errors_only_run, shot):  # fmt: skip
    log_in(page, live_server, "admin", PASSWORD)
    page.goto(f"{live_server.url}/evaluation/runs/{errors_only_run.uuid}/")
    page.wait_for_selector("#subset-table")
    assert page.locator("#eval-headline .undefined").inner_text() == "undefined"
    assert "no correct solutions in this subset" in page.locator("#eval-headline").inner_text()
    assert "no correct solutions in this subset" in page.locator("#subset-table").inner_text()
    assert page.locator("#kscaling-table tr.skipped").count() == 3
    assert "skipped: metric undefined at K=1" in page.locator("#kscaling-table").inner_text()
    assert "not scored: after the first error" in page.locator("#worst-table").inner_text()
    assert "of 12 (not scored: after the first error)" in page.locator("#eval-steps").inner_text()
    shot(page, "evaluation-undefined-f1")
    page.locator("#worst-table a", has_text="steps and critiques").first.click()
    page.wait_for_selector("#run-steps")
    assert page.locator("#run-steps .not-scored").count() >= 1
    shot(page, "evaluation-run-solution-not-scored")
    assert page.js_errors == []
