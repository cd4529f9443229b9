"""Celery tasks of the annotations app (default queue: CPU work)."""

from __future__ import annotations

from celery import shared_task

from rprm_web import runs

from .actions import run_import_job
from .models import ImportJob


@shared_task(bind=True, acks_late=True)
def import_dataset_task(self, job_id: int) -> None:
    """Import the file of a queued ImportJob. Safe to deliver twice: the job is claimed
    with a conditional UPDATE, and an import is one transaction, so a crashed run left
    nothing behind (on Postgres its job is claimed again on redelivery; see
    `run_import_job`). Queue it with `runs.enqueue(ImportJob, job.id)`."""
    run_import_job(job_id)


runs.register(ImportJob, import_dataset_task, queue="default")
