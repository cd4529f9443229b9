"""Celery tasks for evaluations and guidance runs (gpu queue: they load models).

Both take a run id, claim the run with a conditional UPDATE and do only what is
still missing (unique constraints make duplicate rows impossible), so a task
delivered twice after a worker crash is harmless. Imports are lazy: this module is
imported from inference.models so the worker registers the tasks.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready

log = logging.getLogger(__name__)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def process_evaluation_run(run_id: int) -> None:
    from .workflow import process_evaluation

    process_evaluation(run_id)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def process_guidance_run(run_id: int) -> None:
    from .guidance_runs import process_guidance

    process_guidance(run_id)


@worker_ready.connect
def resume_interrupted(sender=None, **kwargs) -> None:
    """A gpu worker restarted under the same name re-queues the runs it held when killed
    (a SIGKILLed task is otherwise only redelivered after the broker's visibility timeout)."""
    try:
        queues = {q.name for q in sender.task_consumer.queues}
        hostname = sender.hostname
    except AttributeError:
        return
    if "gpu" not in queues:
        return
    from .models import EvaluationRun, GuidanceRun

    for model, task in ((EvaluationRun, process_evaluation_run), (GuidanceRun, process_guidance_run)):
        for run_id in model.objects.filter(status=model.Status.RUNNING, worker=hostname).values_list(
            "id", flat=True
        ):
            log.info("re-queueing interrupted %s %s", model.__name__, run_id)
            task.delay(run_id)
