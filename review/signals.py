"""Review reacts to finished generation runs without inference importing review."""

from __future__ import annotations

from django.dispatch import receiver

from inference.models import GenerationRun
from rprm_web.runs import run_finished

from .tasks import queue_audit


@receiver(run_finished, sender=GenerationRun)
def audit_finished_generation(sender, run, status, **kwargs) -> None:
    """Audit signals order the review queue; computed on the default queue once committed."""
    if run.critiques_done:
        queue_audit(run.id)
