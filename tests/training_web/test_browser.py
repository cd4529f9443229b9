"""An admin launches an SFT run from the form in Debian's chromium and watches the chart."""

from __future__ import annotations

import pytest
import torch

from tests.browser.conftest import log_in
from tests.conftest import PASSWORD
from training.data import preview_sft
from training.models import ModelVersion, TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]


def points(page) -> int:
    return int(page.get_attribute("#training-chart", "data-points") or 0)


def test_an_admin_launches_sft_and_watches_the_loss_chart(
    page, live_server, admin, seed_run, tiny_model_dir, start_worker, shot, settings, tmp_path
):
    torch.set_num_threads(1)
    settings.MODELS_DIR = tmp_path / "models"
    start_worker("gpu", name="gpu@browser")
    log_in(page, live_server, "admin", PASSWORD)
    page.goto(f"{live_server.url}/training/new/sft/")
    assert (
        page.input_value("#id_learning_rate") == "5e-06"
        and page.input_value("#id_effective_batch_size") == "128"
    )
    assert page.is_checked("#id_balance") and page.is_checked("#id_gradient_checkpointing")

    # Picking the teacher run updates the counts before launch (htmx).
    expected = preview_sft({"runs": [seed_run.id], "val_fraction": 0.3})
    page.fill("#id_val_fraction", "0.3")
    page.select_option("#id_runs", [str(seed_run.id)])
    page.wait_for_function(
        "t => document.querySelector('#preview-counts tbody tr td:last-child').textContent.trim() === t",
        arg=str(expected["train"]["total"]),
    )
    assert f"{expected['val']['total']}" in page.inner_text("#preview-counts")

    page.fill("#id_name", "browser-sft")
    page.fill("#id_base_path", str(tiny_model_dir))
    for field, value in {
        "learning_rate": "0.001",
        "effective_batch_size": "4",
        "per_device_batch_size": "2",
        "warmup_ratio": "0",
        "max_steps": "30",
        "eval_steps": "5",
        "save_steps": "5",
        "logging_steps": "1",
    }.items():
        page.fill(f"#id_{field}", value)
    page.select_option("#id_bf16", "off")
    page.uncheck("#id_gradient_checkpointing")
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "training-launch-form")

    page.click("button.launch")
    page.wait_for_selector("#training-chart")
    run = TrainingRun.objects.get(name="browser-sft")
    assert f"/training/runs/{run.uuid}/" in page.url

    # The chart fills in as the htmx poll brings new metrics.
    page.wait_for_function("document.querySelector('#training-chart').dataset.points > 0", timeout=180_000)
    first = points(page)
    shot(page, "training-run-live")
    page.wait_for_function(
        f"document.querySelector('#training-chart').dataset.points > {first}", timeout=120_000
    )
    page.wait_for_function(
        "document.querySelector('#run-status').textContent.trim() === 'succeeded'", timeout=180_000
    )
    page.wait_for_function(
        "document.querySelector('#training-chart').dataset.points >= 36"
    )  # 30 train + 6 eval
    shot(page, "training-run-done")
    # The form took an export snapshot at launch; the worker wrote it, then trained on its rows.
    run.refresh_from_db()
    assert run.snapshot.status == "succeeded" and run.snapshot_sha256 == run.snapshot.content_sha256
    assert run.snapshot_rows["sft_train"] == run.data_counts["train"] > 0
    page.reload()
    assert run.snapshot_sha256[:16] in page.inner_text("#run-snapshot")
    assert page.locator("#cancel-run").count() == 0  # the button left with the last poll
    version = ModelVersion.objects.get(training_run=run)
    page.click("summary:has-text('Table view')")
    assert page.locator("#metrics-table tbody tr").count() == 30

    page.click("#model-link")
    page.wait_for_selector("#endpoints")
    assert version.name in page.inner_text("h1")
    shot(page, "training-model")
    page.click("#use-as-student")
    page.wait_for_selector("text=is the student endpoint")
    version.refresh_from_db()
    assert version.student_endpoint is not None
    page.goto(f"{live_server.url}/models/")
    shot(page, "training-registry")
    assert page.js_errors == []
