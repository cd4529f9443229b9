"""Review reacts to finished generation runs without inference importing review."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from inference.models import GenerationRun
from rprm_web.runs import run_finished

from .tasks import queue_audit


@receiver(run_finished, sender=GenerationRun)
def audit_finished_generation(sender: object, run: GenerationRun, status: str, **kwargs: Any) -> None:
    """Audit signals order the review queue; computed on the default queue once committed."""
    if run.critiques_done:
        queue_audit(run.id)
