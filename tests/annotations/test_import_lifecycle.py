"""The import job's writes go through the run lifecycle (rprm_web.runs): its outcome is
written by `runs.finish`, fenced by the holder, like every other run type's
(tests/test_run_lifecycle.py); a worker that lost the job writes nothing and its
import rolls back."""

from __future__ import annotations

import pytest
from django.db import connection, connections
from django.db.models import F

from annotations import actions
from annotations.actions import create_import_job, import_file, run_import_job
from annotations.models import Dataset, ImportJob
from rprm_web import runs
from tests.annotations.factories_files import (
    processbench_row,
    row_counts,
    write_json_array,
    write_processbench,
)

pytestmark = pytest.mark.django_db


def fresh(job):
    return ImportJob.objects.get(id=job.id)


def big_file(path, n: int = 300):
    rows = [processbench_row(f"s{i}", label=i % 4 - 1, n_steps=4, problem=f"Problem {i}?") for i in range(n)]
    return write_json_array(path, rows, indent=None)


def take_over(job, worker="w2"):
    """What a second claimer does to a job whose holder it took for dead."""
    ImportJob.objects.filter(id=job.id).update(worker=worker, attempts=F("attempts") + 1)


def take_over_elsewhere(job, worker="w2"):
    """The same from another worker's connection, committed while the import's own
    transaction is open (a takeover from inside it would roll back with it)."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cur:
            cur.execute(
                f"UPDATE {ImportJob._meta.db_table} SET worker = %s, attempts = attempts + 1 WHERE id = %s",
                [worker, job.id],
            )
    finally:
        other.close()


def needs_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("a second writer mid-import: Postgres only (SQLite has one writer at a time)")


@pytest.fixture
def finished():
    got = []

    def listener(sender, run, status, **kwargs):
        got.append((sender, run.id, status))

    runs.run_finished.connect(listener)
    yield got
    runs.run_finished.disconnect(listener)


def test_a_claimed_job_finishes_through_the_lifecycle(tmp_path, finished):
    job = create_import_job(write_processbench(tmp_path / "pb.json"))
    result = run_import_job(job.id)
    row = fresh(job)
    assert row.status == "succeeded" and row.dataset == result.dataset and row.finished_at is not None
    assert (row.worker, row.attempts, row.bytes_done) == (result.job.worker, 1, row.file_size)
    assert finished == [(ImportJob, job.id, "succeeded")]


def test_a_duplicate_and_a_failure_are_finished_through_the_lifecycle_too(tmp_path, finished):
    path = write_processbench(tmp_path / "pb.json")
    run_import_job(create_import_job(path, "first").id)
    again = create_import_job(path, "second")
    run_import_job(again.id)
    assert fresh(again).status == "duplicate" and fresh(again).dataset.name == "first"
    bad = tmp_path / "bad.json"
    bad.write_text('[{"id": "x"}]')
    broken = create_import_job(bad, fmt="processbench")
    assert run_import_job(broken.id) is None
    assert fresh(broken).status == "failed" and "bad.json" in fresh(broken).error
    assert [s for _, _, s in finished] == ["succeeded", "duplicate", "failed"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_job_lost_mid_import_writes_nothing_and_rolls_back(tmp_path, monkeypatch, finished):
    needs_postgres()
    monkeypatch.setattr(actions, "PROGRESS_EVERY_S", 0)
    job = create_import_job(big_file(tmp_path / "big.json"), "lost")
    old = runs.claim(ImportJob, job.id, "w1")
    before = row_counts()
    with pytest.raises(runs.LeaseLost):
        # At 256 solutions the job is taken over; the old holder's success is refused.
        import_file(old.file_path, job=old, progress=lambda done, size, n: take_over_elsewhere(old))
    row = fresh(job)
    assert (row.status, row.worker, row.attempts, row.finished_at, row.error) == (
        "running",
        "w2",
        2,
        None,
        "",
    )
    assert row.dataset is None and not Dataset.objects.filter(name="lost").exists()
    assert row_counts() == before and finished == []


def test_a_job_lost_before_its_import_starts_is_left_alone(tmp_path):
    job = create_import_job(write_processbench(tmp_path / "pb.json"))
    old = runs.claim(ImportJob, job.id, "w1")
    take_over(old)
    with pytest.raises(runs.LeaseLost):
        import_file(old.file_path, job=old)
    row = fresh(job)
    assert (row.status, row.worker, row.file_sha256, row.detected_format) == ("running", "w2", "", "")
    assert not Dataset.objects.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_task_runner_gives_up_a_job_taken_over_mid_import(tmp_path, monkeypatch):
    """run_import_job: the takeover rolls its import back and it returns None (no retry,
    no failure recorded over the new holder's run)."""
    needs_postgres()
    job = create_import_job(big_file(tmp_path / "big.json"), "taken")
    tick = actions._LiveProgress.tick

    def tick_then_lose(self, n_solutions, n_steps):
        if n_solutions == 256:
            take_over_elsewhere(job)
        tick(self, n_solutions, n_steps)

    monkeypatch.setattr(actions._LiveProgress, "tick", tick_then_lose)
    assert run_import_job(job.id) is None
    row = fresh(job)
    assert (row.status, row.worker, row.attempts, row.error) == ("running", "w2", 2, "")
    assert not Dataset.objects.filter(name="taken").exists()


def test_a_progress_write_of_a_lost_holder_is_refused(tmp_path):
    """Live progress (its own connection on Postgres) is fenced by the same holder check."""
    job = create_import_job(write_processbench(tmp_path / "pb.json"))
    old = runs.claim(ImportJob, job.id, "w1")
    progress = actions._LiveProgress(old, None, None, live_db=False)
    assert "worker = %s AND attempts = %s" in progress.sql
    take_over(old)
    with connection.cursor() as cur:
        cur.execute(progress.sql, [123, "{}", old.id, old.worker, old.attempts])
        assert cur.rowcount == 0
        cur.execute(progress.sql, [123, "{}", old.id, "w2", old.attempts + 1])
        assert cur.rowcount == 1
    assert fresh(job).bytes_done == 123
