"""Worker heartbeat: each Celery worker writes a row every few seconds (the UI's banner;
re-queueing runs is the kernel's: rprm_web.runs.on_worker_ready).

Independent of the broker (the embedded filesystem broker has no broadcast, so
`control.ping` cannot be used there), and it tells the UI which queues have a
live consumer, so a job never sits silently in a queue nobody listens to.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from django.db import close_old_connections
from django.utils import timezone

# Imported from AnnotationsConfig.ready(), once the models are loaded.
from .models import WorkerHeartbeat

log = logging.getLogger(__name__)
HEARTBEAT_EVERY_S = 10
_stop = threading.Event()


def _beat(hostname: str, queues: str) -> None:
    started = timezone.now()
    while not _stop.is_set():
        try:
            close_old_connections()
            WorkerHeartbeat.objects.update_or_create(
                hostname=hostname,
                defaults={
                    "queues": queues,
                    "pid": os.getpid(),
                    "started_at": started,
                    "last_seen": timezone.now(),
                },
            )
        except Exception:  # the DB may be briefly unavailable; keep beating
            log.exception("worker heartbeat failed")
        _stop.wait(HEARTBEAT_EVERY_S)


@worker_ready.connect
def start_heartbeat(sender: Any = None, **kwargs: Any) -> None:
    consumer = sender
    try:
        queues = ",".join(sorted(q.name for q in consumer.task_consumer.queues))
        hostname = consumer.hostname
    except AttributeError:
        queues, hostname = "default", socket.gethostname()
    threading.Thread(target=_beat, args=(hostname, queues), daemon=True, name="rprm-heartbeat").start()


@worker_shutdown.connect
def stop_heartbeat(**kwargs: Any) -> None:
    _stop.set()
    try:
        WorkerHeartbeat.objects.filter(pid=os.getpid()).delete()
    except Exception:
        log.exception("could not clear worker heartbeat")
