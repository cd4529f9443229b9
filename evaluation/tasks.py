"""Celery tasks for evaluations and guidance runs (gpu queue: they load models).

Both take a run id, claim the run through rprm_web.runs and do only what is still
missing (unique constraints make duplicate rows impossible), so a task delivered
twice after a worker crash is harmless.
"""

from __future__ import annotations

from celery import shared_task

from rprm_web import runs

from .guidance_runs import process_guidance
from .models import EvaluationRun, GuidanceRun
from .workflow import process_evaluation


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def process_evaluation_run(run_id: int) -> None:
    process_evaluation(run_id)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def process_guidance_run(run_id: int) -> None:
    process_guidance(run_id)


runs.register(EvaluationRun, process_evaluation_run)
runs.register(GuidanceRun, process_guidance_run)
