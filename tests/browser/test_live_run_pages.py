"""Every run page settles in place: opened while the run is queued, it polls (htmx, every
2 s); when the run ends, the last poll (HTTP 286) brings the final state (results, tables,
Retry/Archive, no Cancel) into the page without a reload. One test per run type, each
run driven to its end by its own task function (training: as its worker writes it).

A marker set on `window` when the page is opened must survive: a reload would drop it."""

from __future__ import annotations

import pytest

from annotations.actions import create_import_job, import_file, run_import_job
from annotations.demo import write_demo_processbench
from evaluation.guidance_runs import create_guidance_run, process_guidance
from evaluation.workflow import create_evaluation, process_evaluation
from inference.models import ModelEndpoint
from inference.runner import process_run
from rprm_web import runs
from tests.annotations.factories_files import generic_row, write_jsonl
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD
from tests.evaluation.conftest import GSM8K_ROWS, ScriptedScorer, import_processbench
from tests.evaluation.test_evaluation_processbench import p_of
from tests.evaluation.test_guidance import ScriptedPolicy
from tests.inference.test_runner import ScriptedBackend, _run
from training.export import create_export_job, run_export_job
from training.models import TrainingMetric, TrainingRun

pytestmark = pytest.mark.browser
SETTLE_MS = 15_000


@pytest.fixture
def demo(db, tmp_path):
    return import_file(
        write_demo_processbench(tmp_path / "demo.json"), dataset_name="demo", fmt="processbench"
    ).dataset


def _open(page, live_server, path: str, cancel: bool = True) -> None:
    log_in(page, live_server, "admin", PASSWORD)
    page.goto(f"{live_server.url}{path}")
    page.evaluate("window.__openedOnce = true")
    if cancel:
        assert page.locator("#cancel-run").count() == 1


def _settled(page, selector: str) -> None:
    """The final state arrived in place: `selector` shows, Cancel is gone, no reload."""
    page.wait_for_selector(selector, timeout=SETTLE_MS)
    assert page.locator("#cancel-run").count() == 0
    assert page.evaluate("window.__openedOnce === true"), "the page was reloaded"
    assert page.js_errors == []


def test_it_settles_a_generation_run_page(page, live_server, admin, demo, shot):
    run = _run(demo, batch_size=4)
    _open(page, live_server, run.get_absolute_url())
    assert "No critiques yet." in page.inner_text("#critiques")
    process_run(run.id, backend=ScriptedBackend())
    _settled(page, "#run-summary")
    assert page.inner_text("#run-status") == "succeeded"
    assert page.locator("#critiques tbody tr").count() == 50  # the first page of critiques
    assert "No critiques yet." not in page.inner_text("#critiques")
    assert page.locator("#retry-run").count() == 0 and page.locator("#archive-run").count() == 1
    shot(page, "live-generation-settled")


def test_it_settles_an_evaluation_run_page(page, live_server, admin, tmp_path, shot):
    datasets = [import_processbench(tmp_path, GSM8K_ROWS, "pb-gsm8k", "gsm8k")]
    endpoint = ModelEndpoint.objects.create(
        name="scripted", role="scorer", backend="transformers", path_or_url="x"
    )
    run = create_evaluation(benchmark="processbench", datasets=datasets, endpoint=endpoint, n_samples=4,
                            queue=False)  # fmt: skip
    _open(page, live_server, run.get_absolute_url())
    assert page.locator("#eval-stats").count() == 0
    process_evaluation(run.id, backend=ScriptedScorer(p_of))
    _settled(page, "#eval-stats")
    assert page.inner_text("#eval-status") == "succeeded"
    assert page.locator("#subset-table tbody tr").count() >= 1 and page.locator("#worst-table").count() == 1
    page.wait_for_selector("#kscaling-chart[data-drawn='1']", timeout=SETTLE_MS)  # the chart drew in place
    shot(page, "live-evaluation-settled")


def test_it_settles_a_guidance_run_page(page, live_server, admin, tmp_path):
    rows = [
        generic_row("q1", n_steps=2),
        generic_row("q2", n_steps=2, question="What is 3 + 4?", reference_answer="7"),
    ]
    dataset = import_file(
        write_jsonl(tmp_path / "p.jsonl", rows), dataset_name="problems", fmt="generic"
    ).dataset
    policy = ModelEndpoint.objects.create(
        name="policy", role="policy", backend="transformers", path_or_url="p"
    )
    scorer = ModelEndpoint.objects.create(name="prm", role="scorer", backend="transformers", path_or_url="s")
    run = create_guidance_run(kind="best_of_n", dataset=dataset, policy=policy, scorer=scorer, queue=False,
                              n_candidates=2, n_samples=2)  # fmt: skip
    _open(page, live_server, run.get_absolute_url())
    assert page.locator("#guidance-stats").count() == 0
    policy_backend = ScriptedPolicy(lambda p, n: ["Add them.\n\nSo \\boxed{7}."] * n)
    process_guidance(run.id, policy_backend=policy_backend, scorer_backend=ScriptedScorer(lambda p, i: 0.7))
    _settled(page, "#guidance-stats")
    assert page.inner_text("#guidance-status") == "succeeded"
    assert page.locator("#guidance-problems tbody tr").count() == run.problems_total


def test_it_settles_an_import_page(page, live_server, admin, tmp_path, shot):
    job = create_import_job(write_demo_processbench(tmp_path / "demo.json"), "demo", "processbench")
    _open(page, live_server, job.get_absolute_url(), cancel=False)
    assert "Waiting for a worker" in page.inner_text("#progress")
    run_import_job(job.id)
    _settled(page, "#progress a:text('Browse the dataset')")
    assert page.inner_text("#import-status").lower() == "succeeded"
    assert "Imported" in page.inner_text("#progress")
    shot(page, "live-import-settled")


def test_it_settles_an_export_page(page, live_server, admin, demo):
    source = _run(demo, n_samples=2)
    process_run(source.id, backend=ScriptedBackend(answer=lambda p, i: "Yes" if i == 0 else "No"))
    job = create_export_job(None, {"runs": [source.id], "kinds": ["sft"]}, queue=False)
    _open(page, live_server, job.get_absolute_url(), cancel=False)
    run_export_job(job.id)
    _settled(page, "#export-files")
    assert page.inner_text("#export-status") == "succeeded"
    assert page.locator("#export-files tbody tr").count() >= 1 and page.locator("#manifest").count() == 1


def test_it_settles_a_training_run_page(page, live_server, admin, tmp_path):
    run = TrainingRun.objects.create(kind="sft", base_model="tiny", output_dir=str(tmp_path / "out"))
    _open(page, live_server, run.get_absolute_url())
    # What the training worker writes: claim, data counts, logged steps, the fenced finish.
    held = runs.claim(TrainingRun, run.id, "gpu@test")
    TrainingRun.objects.filter(id=run.id).update(
        data_counts={"train": 12, "val": 3, "train_yes": 6, "train_no": 6}
    )
    for step in (1, 2, 3):
        TrainingMetric.objects.create(run=run, step=step, loss=1.0 / step, learning_rate=1e-5)
    runs.finish(held, TrainingRun.Status.SUCCEEDED, step=3, max_steps=3)
    _settled(page, "#run-data")
    assert page.inner_text("#run-status") == "succeeded"
    assert page.locator("#metrics-table tbody tr").count() == 3


def test_a_launch_button_disables_itself_so_a_second_click_sends_nothing(page, live_server, admin, demo):
    """static/js/submit_once.js. The page is kept from leaving (a listener on window, after the
    script's own on document, cancels the navigation), so the state after a click can be read."""
    log_in(page, live_server, "admin", PASSWORD)
    page.goto(f"{live_server.url}/runs/new/")
    page.select_option("#id_dataset", str(demo.id))
    page.fill("#id_new_model", "some-model")
    page.evaluate(
        "window.__submits = 0; window.addEventListener('submit', e => { window.__submits++; e.preventDefault(); })"
    )
    button = "form button[type=submit]"
    page.click(button)
    page.wait_for_function(f"document.querySelector('{button}').disabled", timeout=SETTLE_MS)
    page.click(button, force=True)  # a second click on the disabled button
    page.wait_for_timeout(300)
    assert page.evaluate("window.__submits") == 1
