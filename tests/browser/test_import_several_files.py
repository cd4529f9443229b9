"""In chromium: the upload page takes several files (PRMBench's per-class files) and imports
them as one dataset. Screenshots go to test-results/."""

from __future__ import annotations

import json

import pytest

from annotations.actions import run_import_job
from annotations.models import Dataset, ImportJob, Solution
from tests.browser_fixtures import log_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_the_upload_page_imports_several_files_as_one_dataset(page, live_server, admin, tmp_path, shot,
                                                              settings):  # fmt: skip
    settings.MEDIA_ROOT = str(tmp_path / "media")
    files = []
    for cls, errs in (("confidence", [2]), ("circular", [3]), ("redundency", [4])):
        row = {"original_question": "Q?", "modified_question": f"What is {len(cls)} + 1?",
               "original_process": ["a", "b", "c", "d"], "modified_process": ["a.", "b.", "c.", "d."],
               "modified_steps": errs, "error_steps": errs, "reason": f"The {cls} step is wrong.", "idx": "i0",
               "question": "Q?", "classification": cls}  # fmt: skip
        path = tmp_path / f"prmbench_{cls}.jsonl"
        path.write_text(json.dumps(row) + "\n")
        files.append(str(path))
    log_in(page, live_server, "admin", PASSWORD)
    page.goto(f"{live_server.url}/datasets/import/")
    page.set_input_files("input[name=file]", files)
    shot(page, "import-several-files-form")
    page.click("button[type=submit]")
    page.wait_for_selector("#import-status")
    job = ImportJob.objects.get()
    assert len(job.files) == 3 and job.dataset_name == "prmbench"
    # No worker in this test: run the queued job here, then the page shows the outcome.
    run_import_job(job.id)
    page.reload()
    page.wait_for_selector("#import-files")
    assert Dataset.objects.get(name="prmbench").n_solutions == 3
    page.locator("#import-files summary").click()
    assert "prmbench_redundency.jsonl" in page.locator("#import-files").inner_text()
    shot(page, "import-several-files-done")
    circular = Solution.objects.get(source_id="i0/circular")
    page.goto(f"{live_server.url}/solutions/{circular.uuid}/")
    assert page.locator("#prmbench-class").inner_text() == "circular · error step 3"
    assert page.locator("#prmbench-reason").inner_text() == "The circular step is wrong."
    shot(page, "prmbench-solution-class-and-reason")
    assert page.js_errors == []
