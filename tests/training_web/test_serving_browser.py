"""In chromium: the SFT form's snapshot choice, the model page's "use as scorer / student",
and the review queue's empty state, each looked at in a screenshot."""

from __future__ import annotations

import pytest

from inference.models import ModelEndpoint
from review import signals
from rprm_web import runs
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD
from training import actions
from training.export import create_export_job, run_export_job
from training.models import ExportJob, TrainingRun

from .conftest import teacher_run

pytestmark = [pytest.mark.browser, pytest.mark.integration]


@pytest.fixture
def snapshot(seed_run, admin, settings, tmp_path) -> ExportJob:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODELS_DIR = tmp_path / "models"
    settings.MODEL_ENDPOINT_ALLOWED_HOSTS = ["localhost:8001"]
    job = create_export_job(admin, {"kinds": ["sft"], "val_fraction": 0.3}, queue=False)
    run_export_job(job.id)
    job.refresh_from_db()
    return job


def test_the_sft_form_trains_on_a_chosen_snapshot(page, live_server, admin, snapshot, shot, monkeypatch):
    monkeypatch.setattr(runs, "enqueue", lambda model, run_id: None)  # no gpu worker here
    log_in(page, live_server, "admin", PASSWORD)
    page.goto(f"{live_server.url}/training/new/sft/")
    assert "taken at launch" in page.inner_text("#id_snapshot option:first-child")
    page.select_option("#id_snapshot", str(snapshot.id))
    page.wait_for_selector("#preview-snapshot")
    counts = snapshot.manifest["counts"]
    text = page.inner_text("#data-preview")
    assert f"{counts['sft_train']}" in text and snapshot.content_sha256[:12] in text
    page.fill("#id_base_path", "some/base")
    page.fill("#id_name", "from-snapshot")
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "loop-sft-form-snapshot")
    page.click("button.launch")
    page.wait_for_url("**/training/runs/**")
    run = TrainingRun.objects.get(name="from-snapshot")
    assert run.snapshot_id == snapshot.id
    assert page.js_errors == []


def test_the_model_page_uses_a_version_as_scorer_and_student(
    page, live_server, admin, seed_run, snapshot, shot, tmp_path
):
    run = actions.launch_training("sft", "some/base", {}, {}, admin, name="ux-sft", queue=False, snapshot=snapshot)
    TrainingRun.objects.filter(id=run.id).update(
        status="succeeded", snapshot_sha256=snapshot.content_sha256, snapshot_rows={"sft_train": 5, "sft_val": 2}
    )
    run.refresh_from_db()

    class Result:
        final_path, best_metric, train_loss, global_step, tokens_per_second, max_length = (
            str(tmp_path / "models" / "training" / "x" / "final"), 0.9, 1.0, 6, 50.0, 256,
        )  # fmt: skip

    version = actions.register_trained_model(run, Result())
    log_in(page, live_server, "admin", PASSWORD)
    page.goto(f"{live_server.url}/models/{version.uuid}/")
    assert snapshot.content_sha256[:12] in page.inner_text("#version-snapshot")
    page.click("#use-as-scorer")
    page.wait_for_selector("text=is the scorer endpoint")
    assert "ux-sft · scorer" in page.inner_text("#scorer-endpoint")
    page.click("summary:has-text('Served by')")
    page.fill("input[name=served_url]", "http://localhost:8001/v1")
    page.click("#use-as-student")
    page.wait_for_selector("text=is the student endpoint")
    assert "localhost:8001" in page.inner_text("#student-endpoint")
    shot(page, "loop-model-use-as")
    endpoint = ModelEndpoint.objects.get(name="ux-sft · scorer")
    page.click("#scorer-endpoint >> text=evaluate")
    page.wait_for_selector("#id_endpoint")
    assert page.input_value("#id_endpoint") == str(endpoint.id)
    shot(page, "loop-evaluation-form-picked")
    assert page.js_errors == []


def test_the_empty_queue_explains_itself(page, live_server, admin, make_unaudited_run, shot):
    run = make_unaudited_run()
    log_in(page, live_server, "admin", PASSWORD)
    page.goto(f"{live_server.url}/review/")
    page.wait_for_selector("[data-reason=not_audited]")
    assert f"run {run.id}: {run.critiques.count()} critiques not audited yet" in page.inner_text("#queue-empty")
    shot(page, "loop-review-empty-state")
    assert page.js_errors == []


@pytest.fixture
def make_unaudited_run(demo_dataset, monkeypatch):
    monkeypatch.setattr(signals, "queue_audit", lambda run_id: None)  # as if no worker had run yet
    return lambda: teacher_run(demo_dataset)
