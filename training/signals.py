"""When a gpu worker starts, re-queue the training runs it held when it was killed."""

from __future__ import annotations

import logging

from celery.signals import worker_ready

log = logging.getLogger(__name__)


@worker_ready.connect
def resume_training_runs(sender=None, **kwargs) -> None:
    try:
        queues = {q.name for q in sender.task_consumer.queues}
        hostname = sender.hostname
    except AttributeError:
        return
    if "gpu" not in queues:
        return
    from .tasks import recover_interrupted_runs

    ids = recover_interrupted_runs(hostname)
    if ids:
        log.info("re-queued interrupted training runs %s", ids)
