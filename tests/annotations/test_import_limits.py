"""Issue 13: every hostile file fails with file, line/record and field, and writes nothing.

The corpus (tests/annotations/bad_inputs.py) goes through the reader, the import job
(as the Celery task runs it), `manage.py import_dataset` and the web upload.
"""

from __future__ import annotations

import threading
import tracemalloc

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse

from annotations.actions import create_import_job, import_file, import_limits, run_import_job
from annotations.importers import parse_file
from annotations.importers.errors import ImportValidationError
from annotations.models import Dataset, ImportJob
from tests.annotations.bad_inputs import CASES, Case, check, gzip_bomb, valid_generic
from tests.annotations.factories_files import generic_row, row_counts, write_jsonl
from tests.conftest import PASSWORD

by_id = pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])


def apply(settings, case: Case) -> None:
    for name, value in case.settings.items():
        setattr(settings, name, value)


@by_id
def test_the_parser_reports_each_case(tmp_path, settings, case):
    apply(settings, case)
    path = case.write(tmp_path)
    with pytest.raises(ImportValidationError) as exc:
        list(parse_file(path, "generic", limits=import_limits()))
    check(case, path, str(exc.value))


def test_a_gzip_bomb_is_refused_in_flat_memory(tmp_path, settings):
    settings.IMPORT_MAX_RECORD_BYTES = 1 << 20
    path = gzip_bomb(tmp_path)
    assert path.stat().st_size < 1 << 20  # ~64 MiB of data in under 1 MiB
    tracemalloc.start()
    try:
        with pytest.raises(ImportValidationError, match="line 1: the line is longer than 1 MiB"):
            list(parse_file(path, "generic", limits=import_limits()))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak


def test_valid_records_pass_the_checks_unchanged(tmp_path):
    rows = [
        generic_row("a", metadata={"big": 10**30, "x": 1.5e300, "emoji": "\U0001f600", "deep": [[[[1]]]]}),
        generic_row(
            "b", question="caf\u00e9 \ud83d\ude00".encode("utf-16", "surrogatepass").decode("utf-16")
        ),
    ]
    path = write_jsonl(tmp_path / "ok.jsonl", rows)
    parsed = list(parse_file(path, "generic", limits=import_limits()))
    assert parsed[0].metadata == rows[0]["metadata"] and parsed[1].question == "caf\u00e9 \U0001f600"


@pytest.mark.django_db
@by_id
def test_the_import_job_fails_cleanly_with_nothing_written(tmp_path, settings, case):
    apply(settings, case)
    path = case.write(tmp_path)
    job = create_import_job(path, fmt="generic")
    before = row_counts()
    assert run_import_job(job.id) is None  # returns normally: the task is acked, not redelivered
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    check(case, path, job.error)
    assert row_counts() == before


@pytest.mark.django_db
@by_id
def test_the_command_prints_the_message_and_writes_nothing(tmp_path, settings, case):
    apply(settings, case)
    path = case.write(tmp_path)
    before = row_counts()
    with pytest.raises(CommandError) as exc:
        call_command("import_dataset", str(path), "--format", "generic")
    check(case, path, str(exc.value))
    assert row_counts() == before


@pytest.mark.django_db
@by_id
def test_the_web_upload_fails_the_job_with_the_message(
    tmp_path, settings, case, client, admin, django_capture_on_commit_callbacks
):
    apply(settings, case)
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.MEDIA_ROOT = tmp_path / "media"
    path = case.write(tmp_path)
    before = row_counts()
    client.login(username="admin", password=PASSWORD)
    upload = SimpleUploadedFile(path.name, path.read_bytes())
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("annotations:import_new"),
            {"file": upload, "name": "", "format": "generic", "rating0": "correct"},
        )
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.FAILED
    check(case, path, job.error)
    assert row_counts() == before
    # The upload was deleted once the job ended.
    assert not list((tmp_path / "media" / "uploads").iterdir())
    page = client.get(reverse("annotations:import_detail", args=[job.uuid])).content.decode()
    assert path.name in page


@pytest.mark.django_db
def test_the_upload_is_deleted_after_a_successful_job_too(
    tmp_path, settings, client, admin, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.MEDIA_ROOT = tmp_path / "media"
    path = valid_generic(tmp_path / "ok.jsonl")
    client.login(username="admin", password=PASSWORD)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("annotations:import_new"),
            {"file": SimpleUploadedFile("ok.jsonl", path.read_bytes()), "rating0": "correct"},
        )
    assert ImportJob.objects.get().status == ImportJob.Status.SUCCEEDED
    assert Dataset.objects.get().n_solutions == 3
    assert not list((tmp_path / "media" / "uploads").iterdir())


@pytest.mark.django_db
def test_the_command_never_deletes_the_file_it_was_given(tmp_path):
    path = valid_generic(tmp_path / "ok.jsonl")
    job = create_import_job(path, fmt="generic")
    run_import_job(job.id)
    assert path.exists()


@pytest.mark.django_db
def test_the_import_form_refuses_an_upload_over_the_size_limit(tmp_path, settings, client, admin):
    settings.IMPORT_MAX_UPLOAD_BYTES = 1000
    settings.MEDIA_ROOT = tmp_path / "media"
    path = write_jsonl(tmp_path / "big.jsonl", [generic_row(f"r{i}") for i in range(20)])
    client.login(username="admin", password=PASSWORD)
    response = client.post(
        reverse("annotations:import_new"),
        {"file": SimpleUploadedFile("big.jsonl", path.read_bytes()), "rating0": "correct"},
    )
    assert response.status_code == 200
    # Dropped while streaming (UploadSizeLimitHandler), not after the whole file was stored.
    assert (
        "big.jsonl is over 1000\xa0bytes; uploads are limited to 1000\xa0bytes (IMPORT_MAX_UPLOAD_BYTES)"
        in (response.content.decode())
    )
    assert not ImportJob.objects.exists() and not (tmp_path / "media" / "uploads").exists()
    assert RecordingHandler.received <= 1000 + 64 * 1024  # at most one chunk past the limit went on


class RecordingHandler(FileUploadHandler):
    """Stands where Django's storing handlers stand: counts the bytes that reach them."""

    received = 0

    def receive_data_chunk(self, raw_data, start):
        RecordingHandler.received += len(raw_data)
        return raw_data  # on to the handler that stores it

    def file_complete(self, file_size):
        return None


@pytest.fixture(autouse=True)
def _recording_handler(settings):
    RecordingHandler.received = 0
    settings.FILE_UPLOAD_HANDLERS = [
        "annotations.uploads.UploadSizeLimitHandler",
        "tests.annotations.test_import_limits.RecordingHandler",
        *settings.FILE_UPLOAD_HANDLERS[1:],
    ]


@pytest.mark.django_db
def test_a_huge_upload_stops_at_the_limit_while_streaming(tmp_path, settings, client, admin):
    settings.IMPORT_MAX_UPLOAD_BYTES = 256 * 1024
    settings.MEDIA_ROOT = tmp_path / "media"
    client.login(username="admin", password=PASSWORD)
    big = SimpleUploadedFile("huge.jsonl", b"{}\n" * (3 << 20))  # 9 MiB
    response = client.post(reverse("annotations:import_new"), {"file": big, "rating0": "correct"})
    assert response.status_code == 200 and "huge.jsonl is over 256.0\xa0KB" in response.content.decode()
    assert RecordingHandler.received <= 256 * 1024 + 64 * 1024
    assert not ImportJob.objects.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_imports_racing_for_one_name_get_a_clear_message(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the race needs two connections (Postgres)")
    a = write_jsonl(tmp_path / "a.jsonl", [generic_row(f"a{i}") for i in range(600)])
    b = write_jsonl(tmp_path / "b.jsonl", [generic_row(f"b{i}") for i in range(3)])
    a_inside, errors = threading.Event(), []

    def slow_progress(done, total, solutions):
        a_inside.set()  # A has created its dataset and holds the row, uncommitted
        threading.Event().wait(2.0)

    def run_a():
        try:
            import_file(a, dataset_name="same", fmt="generic", progress=slow_progress, batch_solutions=100)
        finally:
            connection.close()

    import annotations.actions as actions

    old = actions.PROGRESS_EVERY_S
    actions.PROGRESS_EVERY_S = 0
    try:
        thread = threading.Thread(target=run_a)
        thread.start()
        assert a_inside.wait(30)
        try:
            import_file(b, dataset_name="same", fmt="generic")
        except ImportValidationError as exc:
            errors.append(str(exc))
        thread.join()
    finally:
        actions.PROGRESS_EVERY_S = old
    assert errors == [
        "b.jsonl: options: field 'dataset name': a dataset named 'same' was created by another import "
        "meanwhile; choose another name"
    ]
    assert Dataset.objects.get().n_solutions == 600
    assert ImportJob.objects.filter(status=ImportJob.Status.FAILED).count() == 1


def test_the_fast_path_and_the_checked_path_agree(tmp_path):
    from annotations.importers.limits import Decoder, LimitExceeded

    decoder = Decoder()
    # A long digit run inside a string, NaN and Infinity as words: valid, nothing refused.
    ok = b'{"text": "' + b"7" * 500 + b' NaN Infinity 1e999", "n": ' + b"9" * 100 + b', "x": -2.5e-300}'
    assert decoder.loads(ok)["n"] == int("9" * 100)
    # Past Python's own 4,300-digit limit, inside a JSON array: named, not a ValueError.
    text = '[{"a": [1, ' + "8" * 5000 + "]}]"
    with pytest.raises(LimitExceeded) as exc:
        decoder.raw_decode(text, 1)
    assert (exc.value.field, exc.value.message) == ("a[1]", "an integer with 5,000 digits (the limit is 100)")
    with pytest.raises(LimitExceeded, match="nested deeper than 64 levels"):
        decoder.raw_decode('{"a": ' + "[" * 65 + "]" * 65 + "}", 0)
    assert decoder.raw_decode('{"a": ' + "[" * 63 + "]" * 63 + "}", 0)[1] == 6 + 126 + 1
