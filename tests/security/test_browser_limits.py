"""In chromium: the import form refuses an upload over the limit with a message, and a failed
run shows staff the upstream detail in a collapsed box (reviewers see the short line only)."""

from __future__ import annotations

import pytest

from annotations.actions import import_file
from annotations.demo import write_demo_processbench
from inference.actions import create_run
from inference.models import ModelEndpoint
from rprm_web.runs import split_error
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_the_upload_limit_and_the_staff_only_detail(page, live_server, admin, reviewer, tmp_path, settings, shot):
    settings.IMPORT_MAX_UPLOAD_BYTES = 2048
    big = tmp_path / "big.jsonl"
    big.write_text("{}\n" * 2000)
    log_in(page, live_server, "admin", PASSWORD)
    page.goto(f"{live_server.url}/datasets/import/")
    page.set_input_files("input[type=file]", str(big))
    page.click("form[enctype='multipart/form-data'] button[type=submit]")
    page.wait_for_selector("text=uploads are limited to")
    assert "big.jsonl is over 2.0\xa0KB; uploads are limited to 2.0\xa0KB" in page.inner_text("form[enctype='multipart/form-data']")
    shot(page, "import-upload-limit")

    demo = import_file(write_demo_processbench(tmp_path / "d.json"), dataset_name="d", fmt="processbench").dataset
    endpoint = ModelEndpoint.objects.create(name="srv", backend="openai", path_or_url="http://127.0.0.1:9/v1")
    run = create_run(dataset=demo, endpoint=endpoint, queue=False, n_samples=1)
    exc = RuntimeError("POST http://127.0.0.1:9/v1/completions failed: HTTP 500: SECRET-BODY token=abc")
    # What rprm_web.runs.execute writes for a failed run.
    run.error, run.error_detail = split_error(exc, f"{exc}\n\nTraceback (most recent call last): ...")
    run.status = "failed"
    run.save(update_fields=["status", "error", "error_detail"])
    page.goto(f"{live_server.url}/runs/{run.uuid}/")
    page.click("text=Detail (staff only)")
    assert "SECRET-BODY" in page.inner_text(".error-detail")
    shot(page, "run-error-staff")
    page.context.clear_cookies()
    log_in(page, live_server, "reviewer", PASSWORD)
    page.goto(f"{live_server.url}/runs/{run.uuid}/")
    page.wait_for_selector(".error-box")
    assert "SECRET-BODY" not in page.content()
    shot(page, "run-error-reviewer")
