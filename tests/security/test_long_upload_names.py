"""A 245-character upload name used to answer 500 (the uuid prefix pushed it past the
filesystem's 255 bytes); now it is shortened, extension kept (issue 19, item 6)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotations.models import Dataset, ImportJob
from rprm_web.inputs import MAX_UPLOAD_NAME_BYTES, short_upload_name
from tests.annotations.factories_files import prmbench_row, write_jsonl


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a" * 241 + ".jsonl", "a" * (MAX_UPLOAD_NAME_BYTES - 6) + ".jsonl"),
        ("ü" * 200 + ".json.gz", "ü" * ((MAX_UPLOAD_NAME_BYTES - 3) // 2) + ".gz"),
        ("../../etc/passwd", "passwd"),
        ("C:\\x\\data.jsonl", "data.jsonl"),
        ("n\x00ul.jsonl", "nul.jsonl"),
        ("short.parquet", "short.parquet"),
    ],
)
def test_it_shortens_names_keeping_the_extension(name, expected):
    assert short_upload_name(name) == expected
    assert len(short_upload_name(name).encode()) <= MAX_UPLOAD_NAME_BYTES


def test_a_245_character_upload_name_imports(
    tmp_path, settings, client, admin, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.MEDIA_ROOT = tmp_path / "media"
    path = write_jsonl(tmp_path / "rows.jsonl", [prmbench_row("a", "counterfactual", [2], 3)])
    name = "d" * 239 + ".jsonl"
    assert len(name) == 245
    client.force_login(admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("annotations:import_new"),
                               {"file": SimpleUploadedFile(name, path.read_bytes()), "format": "prmbench",
                                "rating0": "correct"})  # fmt: skip
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert job.file_name == "d" * (MAX_UPLOAD_NAME_BYTES - 6) + ".jsonl"
    assert Dataset.objects.get().name == "d" * (MAX_UPLOAD_NAME_BYTES - 6)
