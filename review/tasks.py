"""Celery tasks of the review workflow (default queue: CPU work).

Safe to run twice: an audit upserts one row per critique and creates review
items once.
"""

from __future__ import annotations

import logging

from celery import shared_task

from .audit import audit_run
from .models import ReviewEvent
from .queue import record

log = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
def audit_run_task(run_id: int, recompute: bool = True) -> None:
    """Compute the audit signals of a run's critiques and put them in the review queues.
    Without `recompute`, only critiques this audit version has not seen yet."""
    summary = audit_run(run_id, only_missing=not recompute)
    record(ReviewEvent.Kind.AUDITED, None, None, run=run_id, **summary)
    log.info("audited run %s: %s", run_id, summary)


def queue_audit(run_id: int, *, recompute: bool = False) -> None:
    """Audit a run once its transaction commits (review.signals calls it for finished runs:
    generation and import alike). `recompute`: audit again what was audited already."""
    audit_run_task.delay_on_commit(run_id, recompute)
