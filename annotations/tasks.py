"""Celery tasks of the annotations app (default queue: CPU work)."""

from __future__ import annotations

from celery import shared_task

from .actions import run_import_job


@shared_task(bind=True, acks_late=True)
def import_dataset_task(self, job_id: int) -> None:
    """Import the file of a queued ImportJob. Safe to deliver twice: the job is claimed
    with a conditional UPDATE, and an import is one transaction, so a crashed run left
    nothing behind (on Postgres its job is claimed again on redelivery; see
    `run_import_job`). Queue it with `import_dataset_task.delay_on_commit(job.id)`."""
    run_import_job(job_id)


# Celery autodiscovers `tasks` modules only; these live beside it.
from .tasks_review import audit_run_task, export_task  # noqa: E402, F401
from .tasks_dashboards import *  # noqa: E402, F401, F403
