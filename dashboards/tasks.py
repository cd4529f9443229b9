"""Celery task of the audit dashboards (default queue: CPU work).

Safe to run twice: the task claims its DashboardRefresh row through the run lifecycle
(rprm_web.runs; a dead worker's refresh is taken over), and the rebuild itself takes a table lock and rewrites every summary row in
one transaction, so two rebuilds never interleave.
"""

from __future__ import annotations

import logging

from celery import shared_task

from rprm_web import runs

from .models import DashboardRefresh
from .summaries import run_refresh

log = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
def refresh_dashboards_task(refresh_id: int) -> None:
    """Rebuild the dashboard summaries for a queued DashboardRefresh."""
    refresh = run_refresh(refresh_id)
    if refresh is not None:
        log.info("dashboard refresh %s: %s in %.1f s", refresh_id, refresh.status, refresh.seconds or 0)


runs.register(DashboardRefresh, refresh_dashboards_task, queue="default")
