"""The Celery app: two queues, JSON only, late acks for idempotent tasks.

`default` takes CPU work (imports, exports, audits); `gpu` takes generation,
scoring and training and runs with concurrency 1. Every task takes ids, claims
its run row with a conditional UPDATE and keeps progress on that row, so a task
delivered twice (late ack after a crash) does only what is still missing.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rprm_web.settings")

app = Celery("rprm_web", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue="default",
    task_queues=(Queue("default"), Queue("gpu")),
    # Everything that loads a model goes to gpu; imports, audits, exports and
    # dashboard refreshes stay on default (exact names win over the globs).
    task_routes={
        "training.tasks.export_task": {"queue": "default"},
        "inference.*": {"queue": "gpu"},
        "evaluation.*": {"queue": "gpu"},
        "training.*": {"queue": "gpu"},
    },
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
)
app.autodiscover_tasks()


@worker_ready.connect
def resume_interrupted_runs(sender: Any = None, **kwargs: Any) -> None:
    """Re-queue interrupted runs and start the periodic sweep of stale and long-queued ones
    (every app registers its run types with rprm_web.runs.register, in its tasks.py)."""
    from rprm_web.runs import on_worker_ready  # after Django is set up: runs defines a model

    on_worker_ready(sender, **kwargs)


@worker_shutdown.connect
def stop_run_sweep(**kwargs: Any) -> None:
    from rprm_web.runs import on_worker_shutdown  # after Django is set up: runs defines a model

    on_worker_shutdown(**kwargs)
