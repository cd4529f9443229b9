"""Several files imported as one dataset (PRMBench ships 16): all or nothing in one
transaction, an error names file, place and field, and the same files again (in any
order) change nothing. PRMBench's reason and class show on the solution page."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotations.actions import import_file, run_import_job
from annotations.importers.errors import ImportValidationError
from annotations.models import Dataset, ImportJob, Solution
from tests.annotations.factories_files import (
    prmbench_row,
    processbench_row,
    row_counts,
    write_json_array,
    write_jsonl,
)

pytestmark = pytest.mark.django_db


def _subsets(tmp_path: Path) -> tuple[Path, Path]:
    gsm8k = write_json_array(tmp_path / "pb_gsm8k.json",
                             [processbench_row("gsm8k-0", -1, 3), processbench_row("gsm8k-1", 1, 4)])  # fmt: skip
    math = write_json_array(tmp_path / "pb_math.json",
                            [processbench_row("math-0", 0, 2), processbench_row("math-1", -1, 3),
                             processbench_row("math-2", 2, 3)])  # fmt: skip
    return gsm8k, math


def test_it_imports_several_files_as_one_dataset(tmp_path):
    gsm8k, math = _subsets(tmp_path)
    result = import_file([gsm8k, math])
    ds = result.dataset
    assert ds.name == "pb" and ds.source_format == "processbench"  # what the names share
    assert (ds.n_solutions, ds.n_steps, ds.n_with_error) == (5, 15, 3)
    assert sorted(Solution.objects.filter(dataset=ds).values_list("source_id", flat=True)) == [
        "gsm8k-0", "gsm8k-1", "math-0", "math-1", "math-2"]  # fmt: skip
    job = result.job
    assert [f["name"] for f in job.files] == ["pb_gsm8k.json", "pb_math.json"]
    assert (
        job.file_name == "pb_gsm8k.json + 1 more file"
        and job.file_size == gsm8k.stat().st_size + math.stat().st_size
    )
    assert ds.description == "Imported from pb_gsm8k.json + 1 more file"


def test_the_same_files_in_any_order_are_imported_once(tmp_path):
    gsm8k, math = _subsets(tmp_path)
    first = import_file([gsm8k, math], dataset_name="pb-both")
    before = row_counts()
    again = import_file([math, gsm8k], dataset_name="pb-other-name")
    assert again.already_imported and again.dataset == first.dataset
    assert again.job.status == ImportJob.Status.DUPLICATE and row_counts() == before
    # One of the files alone is a different import.
    assert not import_file(math, dataset_name="pb-math-alone").already_imported


def test_a_bad_record_in_any_file_writes_nothing_and_names_file_record_and_field(tmp_path):
    gsm8k, _ = _subsets(tmp_path)
    bad_row = processbench_row("math-2", 2, 3)
    bad_row["label"] = "two"
    bad = write_json_array(tmp_path / "pb_math.json", [processbench_row("math-0", 0, 2),
                                                       processbench_row("math-1", -1, 3), bad_row])  # fmt: skip
    before = row_counts()
    with pytest.raises(ImportValidationError) as info:
        import_file([gsm8k, bad], dataset_name="pb-bad")
    assert (info.value.file, info.value.location, info.value.field) == ("pb_math.json", "record 2", "label")
    assert row_counts() == before and not Dataset.objects.filter(name="pb-bad").exists()
    job = ImportJob.objects.get(dataset_name="pb-bad")
    assert job.status == ImportJob.Status.FAILED and job.error.startswith(
        "pb_math.json: record 2: field 'label'"
    )


def test_an_id_repeated_across_files_is_refused(tmp_path):
    gsm8k, _ = _subsets(tmp_path)
    again = write_json_array(tmp_path / "pb_more.json", [processbench_row("gsm8k-1", -1, 2)])
    with pytest.raises(
        ImportValidationError, match=r"pb_more\.json: record 0: field 'id': duplicate id 'gsm8k-1'"
    ):
        import_file([gsm8k, again], dataset_name="pb-dupe")
    assert Solution.objects.count() == 0


def test_files_of_different_formats_are_refused(tmp_path):
    gsm8k, _ = _subsets(tmp_path)
    prm = write_jsonl(tmp_path / "prmbench_a.jsonl", [prmbench_row("p0")])
    with pytest.raises(
        ImportValidationError, match=r"prmbench_a\.jsonl: is prmbench, but pb_gsm8k\.json is processbench"
    ):
        import_file([gsm8k, prm], dataset_name="mixed")
    assert row_counts()["Dataset"] == 0


def test_the_command_takes_several_paths(tmp_path):
    gsm8k, math = _subsets(tmp_path)
    out = io.StringIO()
    call_command("import_dataset", str(gsm8k), str(math), "--name", "pb-cli", stdout=out)
    assert (
        "imported pb-cli (processbench): 1 problems, 5 solutions, 15 steps (3 with an error)"
        in out.getvalue()
    )
    missing = tmp_path / "nope.json"
    with pytest.raises(CommandError, match="nope.json: no such file"):
        call_command("import_dataset", str(gsm8k), str(missing), "--name", "pb-cli-2", stdout=io.StringIO())
    assert not Dataset.objects.filter(name="pb-cli-2").exists()


def _prmbench_files() -> list[SimpleUploadedFile]:
    import json

    def body(rows):
        return "\n".join(json.dumps(r) for r in rows).encode()

    return [
        SimpleUploadedFile("prmbench_confidence.jsonl", body([prmbench_row("c0", "confidence", [2])])),
        SimpleUploadedFile("prmbench_circular.jsonl", body([prmbench_row("c0", "circular", [3], reason="Step 3 "
                                                                          "restates the goal as its proof.")])),
    ]  # fmt: skip


def test_the_upload_takes_several_files_and_the_job_imports_them_all(client, admin, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    client.force_login(admin)
    response = client.post(
        reverse("annotations:import_new"), {"file": _prmbench_files(), "rating0": "correct"}
    )
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert [f["name"] for f in job.files] == ["prmbench_confidence.jsonl", "prmbench_circular.jsonl"]
    assert job.dataset_name == "prmbench"
    result = run_import_job(job.id)
    assert result is not None and result.dataset.n_solutions == 2
    assert not any(Path(f["path"]).exists() for f in job.files)  # uploads go once the job ends
    page = client.get(reverse("annotations:import_detail", args=[job.uuid])).content.decode()
    assert 'id="import-files"' in page and "prmbench_circular.jsonl" in page
    # The solution page shows PRMBench's class and its reason for the error.
    circular = Solution.objects.get(source_id="c0/circular")
    html = client.get(reverse("annotations:solution_detail", args=[circular.uuid])).content.decode()
    assert '<dd id="prmbench-class"><code>circular</code> · error step 3</dd>' in html
    assert "Step 3 restates the goal as its proof." in html


def test_the_upload_form_takes_several_files_in_its_input(client, admin):
    client.force_login(admin)
    html = client.get(reverse("annotations:import_new")).content.decode()
    assert 'type="file" name="file" multiple' in html
