"""import_file: one transaction, idempotent, counted, with progress outside the transaction."""

from __future__ import annotations

import json

import pytest
from django.db import connection, connections

from annotations import actions
from annotations.actions import create_import_job, import_file
from annotations.importers import store
from annotations.importers.errors import ImportValidationError
from annotations.models import Dataset, ImportJob, Solution, Step
from tests.annotations.factories_files import (
    processbench_row,
    row_counts,
    write_json_array,
    write_processbench,
)


def big_processbench(path, n: int, bad_at: int | None = None):
    rows = [
        processbench_row(f"s{i}", label=i % 4 - 1, n_steps=4, problem=f"Problem {i % 50}?") for i in range(n)
    ]
    if bad_at is not None:
        rows[bad_at]["label"] = 99
    return write_json_array(path, rows, indent=None)


@pytest.mark.django_db
def test_it_rolls_back_everything_when_a_record_near_the_end_is_bad(tmp_path):
    path = big_processbench(tmp_path / "big.json", 3000, bad_at=2950)
    before = row_counts()
    with pytest.raises(ImportValidationError) as exc:
        # Small batches: 14 batches are already written when record 2950 fails.
        import_file(path, batch_solutions=200)
    assert str(exc.value) == (
        "big.json: record 2950: field 'label': expected an integer between -1 and 3 (number of steps - 1), got 99"
    )
    assert row_counts() == before
    job = ImportJob.objects.get()
    assert (job.status, job.error, job.dataset) == (ImportJob.Status.FAILED, str(exc.value), None)
    assert job.finished_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize("writer", [store.PostgresWriter, store.SQLiteWriter])
def test_it_rolls_back_on_an_unexpected_error_too(tmp_path, monkeypatch, writer):
    if (writer is store.PostgresWriter) != (connection.vendor == "postgresql"):
        pytest.skip("the other database's writer")
    calls = []
    original = writer.write

    def flaky(self, batch):
        # On Postgres this runs in the background thread: its error must reach the import.
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        original(self, batch)

    monkeypatch.setattr(writer, "write", flaky)
    before = row_counts()
    with pytest.raises(RuntimeError):
        import_file(big_processbench(tmp_path / "big.json", 1000), batch_solutions=100)
    assert row_counts() == before
    assert ImportJob.objects.get().error == "RuntimeError: disk full"


@pytest.mark.django_db
def test_it_imports_a_big_file_in_batches_with_right_counts(tmp_path):
    result = import_file(big_processbench(tmp_path / "big.json", 3000), batch_solutions=200)
    ds = result.dataset
    assert (ds.n_problems, ds.n_solutions, ds.n_steps, ds.n_with_error) == (50, 3000, 12000, 2250)
    assert Solution.objects.filter(dataset=ds).count() == 3000
    assert Step.objects.filter(solution__dataset=ds).count() == 12000
    assert Solution.objects.filter(dataset=ds, problem__source_id__startswith="q-").count() == 3000
    assert result.job.bytes_done == result.job.file_size > 0


@pytest.mark.django_db
def test_it_reports_a_second_import_of_the_same_file_and_writes_nothing(tmp_path):
    path = write_processbench(tmp_path / "pb.json")
    first = import_file(path)
    before = row_counts()
    again = import_file(path, dataset_name="another name")
    assert again.already_imported and again.dataset == first.dataset
    assert again.summary() == "already imported: pb.json (processbench) is dataset 'pb'; nothing written"
    assert row_counts() == before
    assert again.job.status == ImportJob.Status.DUPLICATE and again.job.dataset == first.dataset
    # The same bytes under another name are the same file.
    copy = tmp_path / "renamed.json"
    copy.write_bytes(path.read_bytes())
    assert import_file(copy).already_imported
    assert row_counts() == before


@pytest.mark.django_db
def test_it_refuses_a_dataset_name_in_use_without_writing(tmp_path):
    import_file(write_processbench(tmp_path / "pb.json"), dataset_name="mine")
    other = write_json_array(tmp_path / "other.json", [processbench_row("z")])
    before = row_counts()
    with pytest.raises(
        ImportValidationError, match="a dataset named 'mine' already exists; choose another name"
    ):
        import_file(other, dataset_name="mine")
    assert row_counts() == before


@pytest.mark.django_db
def test_it_refuses_a_file_without_solutions(tmp_path):
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(ImportValidationError, match=r"^empty.json: the file holds no records$"):
        import_file(tmp_path / "empty.json")
    assert not Dataset.objects.exists()


@pytest.mark.django_db
def test_it_names_the_dataset_after_the_file_and_records_the_user_and_split(tmp_path, admin):
    path = write_processbench(tmp_path / "processbench_gsm8k.json")
    from tests.annotations.factories_files import gzipped

    result = import_file(gzipped(path), user=admin, split="gsm8k")
    ds = result.dataset
    assert (ds.name, ds.split, ds.created_by, ds.description) == (
        "processbench_gsm8k", "gsm8k", admin, "Imported from processbench_gsm8k.json.gz",
    )  # fmt: skip
    job = result.job
    assert (job.created_by, job.detected_format, job.requested_format, len(job.file_sha256)) == (
        admin,
        "processbench",
        "",
        64,
    )


@pytest.mark.django_db
def test_it_calls_the_progress_callback(tmp_path, monkeypatch):
    monkeypatch.setattr(actions, "PROGRESS_EVERY_S", 0)
    calls = []
    path = big_processbench(tmp_path / "big.json", 1200)
    import_file(path, progress=lambda done, total, n: calls.append((done, total, n)))
    assert [n for _, _, n in calls] == [256, 512, 768, 1024]
    assert all(0 < done <= total == path.stat().st_size for done, total, _ in calls)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_it_writes_live_progress_that_other_connections_see_during_the_import(tmp_path, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("live progress needs a second writer: Postgres only (SQLite has one writer at a time)")
    monkeypatch.setattr(actions, "PROGRESS_EVERY_S", 0)
    path = big_processbench(tmp_path / "big.json", 1200)
    job = create_import_job(path)
    ImportJob.objects.filter(id=job.id).update(status=ImportJob.Status.RUNNING)
    seen = []

    def look(done, total, n):
        # What the upload page's poll would see, from its own connection, mid-import.
        other = connections.create_connection("default")
        try:
            with other.cursor() as cur:
                cur.execute(
                    "SELECT bytes_done, counts, status FROM annotations_importjob WHERE id = %s", [job.id]
                )
                bytes_done, counts, status = cur.fetchone()
                cur.execute("SELECT count(*) FROM annotations_solution")
                seen.append((bytes_done, counts, status, cur.fetchone()[0], done))
        finally:
            other.close()

    import_file(path, job=job, progress=look, batch_solutions=100)
    assert len(seen) == 4
    for bytes_done, _counts, status, solutions_visible, done in seen:
        assert bytes_done == done > 0 and status == "running"
        assert solutions_visible == 0  # the import itself stays invisible until it commits
    # Django leaves jsonb undecoded on raw cursors.
    assert [json.loads(c)["solutions"] for _, c, *_ in seen] == [256, 512, 768, 1024]
    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED and job.bytes_done == job.file_size
