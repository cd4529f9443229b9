"""The loop, closed, in chromium with real Celery workers on Postgres + Redis (issue 17):

import (web upload) → teacher critiques arrive (import_critiques) → the audit starts by
itself → a reviewer decides in the queue → an admin exports a snapshot → SFT from that
snapshot → "use as scorer" → evaluation on a dataset whose solutions all contain an error
→ the results page shows the defined metrics and marks F1 undefined → the lineage page
lists every link. Screenshots go to test-results/screenshots/loop-*.png.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from annotations.demo import write_demo_processbench
from annotations.demo_critiques import write_demo_critiques
from annotations.models import Dataset
from evaluation.models import EvaluationRun
from review.models import Review, ReviewItem
from tests.browser_fixtures import log_in
from tests.conftest import PASSWORD, wait_for
from training.models import ExportJob, ModelVersion, TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]

TRAIN = {"learning_rate": "0.001", "effective_batch_size": "4", "per_device_batch_size": "2",
         "warmup_ratio": "0", "max_steps": "4", "eval_steps": "2", "save_steps": "2", "logging_steps": "1"}  # fmt: skip


def _errors_only(demo: Path, out: Path) -> Path:
    """The demo's solutions that contain an error, as a dataset of their own (F1 is
    undefined on it: there is no correct solution to be right about)."""
    rows = [dict(r, id=f"gsm8k-err-{r['id']}") for r in json.loads(demo.read_text()) if r["label"] != -1]
    out.write_text(json.dumps(rows))
    return out


def _upload(page, live_server, path: Path, name: str) -> Dataset:
    page.goto(f"{live_server.url}/datasets/import/")
    page.set_input_files("input[name=file]", [str(path)])
    page.fill("#id_name", name)
    page.click("button[type=submit]")
    page.wait_for_selector("#import-status")
    return wait_for(lambda: Dataset.objects.filter(name=name).first(), timeout=120, what=f"import of {name}")


def test_the_loop_closes_in_the_browser(
    page, browser, live_server, admin, reviewer, tiny_model_dir, start_worker, shot, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.MODELS_DIR = tmp_path / "models"
    settings.REVIEW_DOUBLE_FRACTION = 0.0
    start_worker("default", name="default@loop")
    start_worker("gpu", name="gpu@loop")

    # 1. Import, through the web form, on the default worker.
    log_in(page, live_server, "admin", PASSWORD)
    demo_file = write_demo_processbench(tmp_path / "demo.json")
    demo = _upload(page, live_server, demo_file, "loop-demo")
    errors = _upload(page, live_server, _errors_only(demo_file, tmp_path / "errors.json"), "loop-errors")
    assert errors.n_with_error == errors.n_solutions > 0
    shot(page, "loop-1-import")

    # 2. Teacher critiques arrive; 3. the audit starts by itself (no command, no click).
    call_command("import_critiques", str(write_demo_critiques(tmp_path / "critiques.jsonl")),
                 "--dataset", demo.name, "--model", "demo-teacher")  # fmt: skip
    items = wait_for(lambda: ReviewItem.objects.filter(dataset=demo).count(), timeout=120, what="the audit")
    assert items > 0

    # 4. A reviewer decides the first critique in the queue, with the keyboard.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    rpage = context.new_page()
    log_in(rpage, live_server, "reviewer", PASSWORD)
    rpage.goto(f"{live_server.url}/review/")
    rpage.wait_for_selector("#queue-items")
    shot(rpage, "loop-2-queue")
    rpage.keyboard.press("Enter")
    rpage.wait_for_selector("#decision-form")
    rpage.wait_for_timeout(300)
    rpage.keyboard.press("f")  # flawed
    flawed = wait_for(lambda: Review.objects.filter(decision="flawed").first(), timeout=30, what="the decision")
    context.close()

    # 5. A snapshot from the export page (default worker).
    page.goto(f"{live_server.url}/review/exports/")
    page.uncheck("#id_balance")
    page.fill("#id_val_fraction", "0.25")
    page.click("#export-form button[type=submit]")
    snapshot = wait_for(
        lambda: ExportJob.objects.filter(status="succeeded").first(), timeout=180, what="the snapshot"
    )
    page.wait_for_selector(".badge.succeeded", timeout=30_000)  # the page settles in place
    shot(page, "loop-3-snapshot")

    # 6. SFT from that snapshot (gpu worker, the tiny model).
    page.goto(f"{live_server.url}/training/new/sft/")
    page.select_option("#id_snapshot", str(snapshot.id))
    page.wait_for_selector("#preview-snapshot")
    page.fill("#id_name", "loop-sft")
    page.fill("#id_base_path", str(tiny_model_dir))
    for field, value in TRAIN.items():
        page.fill(f"#id_{field}", value)
    page.select_option("#id_bf16", "off")
    page.uncheck("#id_gradient_checkpointing")
    page.click("button.launch")
    page.wait_for_url("**/training/runs/**")
    page.wait_for_function(
        "document.querySelector('#run-status').textContent.trim() === 'succeeded'", timeout=600_000
    )
    run = TrainingRun.objects.get(name="loop-sft")
    assert run.snapshot_id == snapshot.id and run.snapshot_sha256 == snapshot.content_sha256
    version = ModelVersion.objects.get(training_run=run)
    shot(page, "loop-4-training")

    # 7. From trained to served: one click.
    page.goto(f"{live_server.url}/models/{version.uuid}/")
    page.click("#use-as-scorer")
    page.wait_for_load_state()
    version.refresh_from_db()
    assert version.scorer_endpoint is not None

    # 8. Evaluation on the errors-only dataset: F1 is undefined, and says why.
    page.goto(f"{live_server.url}/evaluation/new/")
    page.select_option("#id_benchmark", "processbench")
    page.select_option("#id_datasets", [str(errors.id)])
    page.select_option("#id_endpoint", str(version.scorer_endpoint.id))
    page.fill("#id_name", "loop-eval")
    page.fill("#id_n_samples", "1")
    page.fill("#id_max_new_tokens", "4")
    page.click("#launch-form button[type=submit]")
    evaluation = wait_for(lambda: EvaluationRun.objects.filter(name="loop-eval").first(), what="the launch")
    page.goto(f"{live_server.url}/evaluation/runs/{evaluation.uuid}/")
    page.wait_for_selector("#eval-headline", timeout=600_000)  # the page settles in place
    evaluation.refresh_from_db()
    assert evaluation.status == "succeeded", evaluation.error
    headline = page.locator("#eval-headline").inner_text()
    assert "undefined" in headline and "no correct solutions in this subset" in headline
    assert evaluation.results["n_solutions"] == errors.n_solutions
    shot(page, "loop-5-evaluation")

    # 9. The lineage page lists every link.
    page.goto(f"{live_server.url}/lineage/models/{version.uuid}/")
    chain = page.locator("#chain").inner_text()
    for link in (demo.name, "demo-teacher", snapshot.content_sha256, f"run #{run.id}", "loop-sft",
                 f"#{evaluation.id} loop-eval", "undefined"):  # fmt: skip
        assert link in chain, link
    assert flawed.critique.run.dataset_id == demo.id
    assert "1" in page.locator("#link-runs").inner_text()
    shot(page, "loop-6-lineage")
    assert page.js_errors == []
