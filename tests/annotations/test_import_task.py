"""The import job and its Celery task: claimed once, failed with the error, idempotent."""

from __future__ import annotations

import pytest
from django.db import connection, connections

from annotations.actions import JOB_LOCK_NAMESPACE, create_import_job, run_import_job
from annotations.importers.errors import ImportValidationError
from annotations.models import Dataset, ImportJob
from annotations.tasks import import_dataset_task
from tests.annotations.factories_files import (
    processbench_row,
    row_counts,
    write_json_array,
    write_prm800k,
    write_processbench,
)


@pytest.mark.django_db
def test_it_runs_a_queued_job_to_success(tmp_path, admin):
    path = write_prm800k(tmp_path / "3f2a-upload.jsonl")
    job = create_import_job(
        path, "phase2", None, {"rating0": "neutral"}, admin, split="train", file_name="phase2.jsonl"
    )
    assert (job.status, job.file_size, job.options) == (ImportJob.Status.QUEUED, path.stat().st_size,
                                                        {"rating0": "neutral", "split": "train"})  # fmt: skip
    result = run_import_job(job.id)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED and job.dataset == result.dataset
    assert job.counts["solutions"] == 2 and job.counts["labels"]["neutral"] == 1
    assert (job.detected_format, job.options, job.bytes_done) == (
        "prm800k",
        {"rating0": "neutral"},
        job.file_size,
    )
    assert job.started_at <= job.finished_at and job.percent == 100
    ds = result.dataset
    assert (ds.name, ds.split, ds.created_by, ds.import_options) == (
        "phase2",
        "train",
        admin,
        {"rating0": "neutral"},
    )
    assert ds.description == "Imported from phase2.jsonl"


@pytest.mark.django_db
def test_it_does_nothing_when_delivered_twice(tmp_path):
    job = create_import_job(write_processbench(tmp_path / "pb.json"))
    import_dataset_task(job.id)
    before = row_counts()
    assert run_import_job(job.id) is None  # already claimed and finished
    import_dataset_task(job.id)
    assert row_counts() == before
    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED


@pytest.mark.django_db
def test_it_leaves_alone_a_job_another_worker_is_running(tmp_path):
    job = create_import_job(write_processbench(tmp_path / "pb.json"))
    ImportJob.objects.filter(id=job.id).update(status=ImportJob.Status.RUNNING)
    other = None
    if connection.vendor == "postgresql":  # the other worker holds the job's lock
        other = connections.create_connection("default")
        with other.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s, %s)", [JOB_LOCK_NAMESPACE, job.id])
    try:
        assert run_import_job(job.id) is None
    finally:
        if other is not None:
            other.close()
    assert not Dataset.objects.exists()


@pytest.mark.django_db
def test_it_reclaims_a_running_job_whose_worker_died(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("needs the job's advisory lock to tell a dead runner from a live one (Postgres)")
    job = create_import_job(write_processbench(tmp_path / "pb.json"))
    ImportJob.objects.filter(id=job.id).update(status=ImportJob.Status.RUNNING, bytes_done=123)
    result = run_import_job(job.id)  # the redelivered task: nobody holds the lock
    job.refresh_from_db()
    assert result.n_solutions == 3 and job.status == ImportJob.Status.SUCCEEDED


@pytest.mark.django_db
def test_it_fails_the_job_with_the_precise_error_and_writes_nothing(tmp_path):
    path = write_json_array(
        tmp_path / "x.json", [processbench_row("a"), processbench_row("b") | {"steps": []}]
    )
    job = create_import_job(path, file_name="my upload.json")
    before = row_counts()
    import_dataset_task(job.id)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert job.error == "my upload.json: record 1: field 'steps': expected at least 1 item(s), got none"
    assert row_counts() == before and job.finished_at is not None and job.is_finished


@pytest.mark.django_db
def test_it_marks_a_second_job_for_the_same_file_duplicate(tmp_path):
    path = write_processbench(tmp_path / "pb.json")
    first = create_import_job(path, "one")
    second = create_import_job(path, "two")
    run_import_job(first.id)
    result = run_import_job(second.id)
    second.refresh_from_db()
    assert result.already_imported and second.status == ImportJob.Status.DUPLICATE
    assert second.dataset.name == "one" and Dataset.objects.count() == 1


@pytest.mark.django_db
def test_it_validates_format_and_options_when_the_job_is_created(tmp_path):
    path = write_processbench(tmp_path / "pb.json")
    with pytest.raises(ImportValidationError, match="unknown format 'xml'"):
        create_import_job(path, fmt="xml")
    with pytest.raises(ImportValidationError, match="field 'rating0': expected one of"):
        create_import_job(path, options={"rating0": "bad"})
    with pytest.raises(ImportValidationError, match="field 'colour': unknown option"):
        create_import_job(path, options={"colour": "red"})
    job = create_import_job(path, fmt="processbench", options={"rating0": "neutral"})
    assert (
        job.options == {} and job.requested_format == "processbench"
    )  # rating0 means nothing to ProcessBench
    assert not ImportJob.objects.exclude(id=job.id).exists()


def test_it_routes_the_task_to_the_default_queue():
    from rprm_web.celery import app

    assert import_dataset_task.name == "annotations.tasks.import_dataset_task"
    assert app.amqp.router.route({}, import_dataset_task.name)["queue"].name == "default"
    assert import_dataset_task.acks_late is True
