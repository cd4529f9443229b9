"""The results page in chromium: the K-scaling chart is drawn, tables render, and an
upload launched through htmx shows its finished run. Screenshots go to test-results/."""

from __future__ import annotations

import re

import pytest

from inference.evaluation import create_evaluation, process_evaluation
from inference.models import ModelEndpoint
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD
from tests.evaluation.conftest import (
    GSM8K_ROWS,
    MATH_ROWS,
    PB_SCORES,
    PRM_SCORES,
    ScriptedScorer,
    write_scores,
)

pytestmark = pytest.mark.browser
LABELS = {rid: label for rid, label, _ in GSM8K_ROWS + MATH_ROWS}


@pytest.fixture
def evaluated(pb_datasets, prm_dataset, tmp_path):
    create_evaluation(benchmark="processbench", datasets=pb_datasets, name="other-prm",
                      scores_path=write_scores(tmp_path / "pb.jsonl", PB_SCORES))  # fmt: skip
    create_evaluation(benchmark="prmbench", datasets=[prm_dataset], name="other-prm",
                      scores_path=write_scores(tmp_path / "prm.jsonl", PRM_SCORES))  # fmt: skip
    endpoint = ModelEndpoint.objects.create(
        name="student-7b", role="student", backend="transformers", path_or_url="x"
    )
    run = create_evaluation(benchmark="processbench", datasets=pb_datasets, endpoint=endpoint, n_samples=8,
                            queue=False)  # fmt: skip

    def p_of(prompt, i):
        # A noisy but informative scorer: wrong steps lower on average, samples spread widely,
        # so averaging more critiques helps (the curve rises with K).
        now = re.sub(r"^Step \d+: ", "", prompt.split("Now Step:")[-1].strip())  # "Step k: <text>"
        rid, _, rest = now.partition(" step ")
        index = int(rest.split(":")[0]) - 1
        wrong = LABELS[rid] == index
        noise = ((i * 37 + index * 11 + len(rid) * 5) % 8 - 3.5) / 3.5
        return min(1.0, max(0.0, (0.42 if wrong else 0.62) + 0.3 * noise))

    process_evaluation(run.id, backend=ScriptedScorer(p_of))
    return run


def test_it_shows_the_results_page_with_the_scaling_chart(
    page, live_server, admin, evaluated, shot, tmp_path
):
    log_in(page, live_server, "admin", PASSWORD)
    page.goto(f"{live_server.url}/evaluation/")
    page.wait_for_selector("#results-table")
    rows = page.locator("#results-table tbody tr")
    assert rows.count() == 2 + 6
    assert page.locator("#results-table .badge.published").count() == 6
    assert "student-7b" in page.inner_text("#results-table") and "70.4" in page.inner_text("#results-table")
    # Chart.js drew the curve on the canvas (with the published curve as a second line).
    page.wait_for_function("window.Chart && Chart.getChart(document.getElementById('kscaling-chart'))")
    labels = page.evaluate(
        "Chart.getChart(document.getElementById('kscaling-chart')).data.datasets.map(d => d.label)"
    )
    # band (2), resampled mean, published, and the authors' first-K estimator, both labelled
    assert len(labels) == 5 and any("random K-subsets" in x for x in labels)
    assert any("first K samples (the authors' estimator)" in x for x in labels)
    box = page.locator("#kscaling-chart").bounding_box()
    assert box["width"] > 200 and box["height"] > 200
    assert page.locator("#breakdown-table tbody tr").count() == 5
    shot(page, "evaluation-results")
    page.click("details.chart-table summary")
    assert page.locator("#kscaling-table tbody tr").count() == 4  # K = 1, 2, 4, 8
    assert page.js_errors == []

    # Launch an external-scores evaluation through the htmx form.
    page.select_option("#id_benchmark", "processbench")
    page.select_option("#id_datasets", label=["pb-gsm8k", "pb-math"])
    page.fill("#id_name", "uploaded-prm")
    page.set_input_files("#id_scores_file", str(write_scores(tmp_path / "up.jsonl", PB_SCORES)))
    page.click("#launch-form button[type=submit]")
    page.wait_for_selector("#eval-progress #eval-status:text('succeeded')")
    assert "/evaluation/" == page.url.removeprefix(live_server.url)  # swapped in place, no navigation
    shot(page, "evaluation-launched")

    page.goto(f"{live_server.url}/evaluation/runs/{evaluated.uuid}/")
    page.wait_for_function("window.Chart && Chart.getChart(document.getElementById('kscaling-chart'))")
    assert page.locator("#subset-table tbody tr").count() == 3
    assert page.locator("#worst-table tbody tr").count() == 9
    shot(page, "evaluation-run")
    assert page.js_errors == []


def test_it_shows_a_prmbench_run_and_guidance(page, live_server, admin, evaluated, shot, tmp_path):
    log_in(page, live_server, "admin", PASSWORD)
    page.goto(f"{live_server.url}/evaluation/")
    page.click("#breakdown-table thead a")
    page.wait_for_selector("#class-table")
    assert page.locator("#class-table tbody tr").count() == 5
    shot(page, "evaluation-prmbench-run")
    run = _guidance_run(tmp_path)
    page.goto(f"{live_server.url}/guidance/")
    page.wait_for_selector("#guidance-runs")
    assert page.locator("#guidance-runs tbody tr").count() == 1
    shot(page, "guidance-list")
    page.goto(f"{live_server.url}/guidance/runs/{run.uuid}/")
    page.wait_for_selector("#guidance-problems")
    page.click("#guidance-problems details.candidates summary >> nth=0")
    assert "min 50.0" in page.inner_text("body") or "50.0" in page.inner_text("#guidance-stats")
    shot(page, "guidance-detail")
    assert page.js_errors == []


def _guidance_run(tmp_path):
    from annotations.actions import import_file
    from inference.guidance_runs import create_guidance_run, process_guidance
    from tests.annotations.factories_files import generic_row, write_jsonl
    from tests.evaluation.test_guidance import ScriptedPolicy

    rows = [
        generic_row("q1", n_steps=2),
        generic_row("q2", n_steps=2, question="What is $3 + 4$?", reference_answer="7"),
    ]
    ds = import_file(write_jsonl(tmp_path / "g.jsonl", rows), dataset_name="problems", fmt="generic").dataset
    policy = ModelEndpoint.objects.create(
        name="policy-7b", role="policy", backend="transformers", path_or_url="p"
    )
    scorer = ModelEndpoint.objects.get(name="student-7b")
    texts = {"10 / 4": ["Divide 10 by 4.\n\nSo $\\boxed{2.5}$.", "Guess.\n\nSo $\\boxed{3}$."],
             "3 + 4": ["$3 + 4 = 7$.\n\n$\\boxed{7}$", "$3 + 4 = 8$.\n\n$\\boxed{8}$"]}  # fmt: skip
    rewards = {"Divide": 0.6, "So $\\boxed{2.5}$.": 0.95, "Guess.": 0.9, "So $\\boxed{3}$.": 0.8}
    run = create_guidance_run(kind="best_of_n", dataset=ds, policy=policy, scorer=scorer, queue=False, n_candidates=2,
                              n_samples=2)  # fmt: skip

    def p_of(prompt, i):
        now = re.sub(r"^Step \d+: ", "", prompt.split("Now Step:")[-1].strip())
        return next((v for k, v in rewards.items() if now.startswith(k)), 0.7 if "7" in now else 0.4)

    process_guidance(run.id, policy_backend=ScriptedPolicy(lambda p, n: next(v for k, v in texts.items() if k in p)),
                     scorer_backend=ScriptedScorer(p_of))  # fmt: skip
    return run
