"""Celery tasks of the inference app (gpu queue: they load models)."""

from __future__ import annotations

from celery import shared_task

from rprm_web import runs

from .models import GenerationRun
from .runner import process_run


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def process_generation_run(run_id: int) -> None:
    """gpu queue. Idempotent: claims the run, does only the missing critiques."""
    process_run(run_id)


# A gpu worker that starts re-queues the generation runs it held when it was killed.
runs.register(GenerationRun, process_generation_run)
