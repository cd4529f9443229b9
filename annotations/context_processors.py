from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from .models import WorkerHeartbeat


def live_queues() -> set[str]:
    """Queues with a worker that beat recently."""
    cutoff = timezone.now() - timedelta(seconds=settings.WORKER_STALE_AFTER_S)
    queues: set[str] = set()
    for row in WorkerHeartbeat.objects.filter(last_seen__gte=cutoff).values_list("queues", flat=True):
        queues.update(q for q in row.split(",") if q)
    return queues


def studio(request: HttpRequest) -> dict[str, list[str]]:
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return {"missing_queues": []}
    live = live_queues()
    return {"missing_queues": [q for q in ("default", "gpu") if q not in live]}
