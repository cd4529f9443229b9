from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def process_generation_run(run_id: int) -> None:
    """gpu queue. Idempotent: claims the run, does only the missing critiques."""
    from .runner import process_run

    process_run(run_id)

