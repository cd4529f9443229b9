"""Put a failed or cancelled run of any type back in the queue:

    python manage.py retry_run evaluation 12

It resumes from what it stored (critiques, scores, checkpoints) and does only what is
missing; `rprm_web.runs.retry` is the one place that does it (the run pages' Retry
button calls the same function)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rprm_web import runs


class Command(BaseCommand):
    help = "Retry a failed or cancelled run: it goes back to the queue and resumes from what it stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", help="generation, evaluation, guidance, training, import or export")
        parser.add_argument("id", type=int)

    def handle(self, *args: Any, kind: str, id: int, **options: Any) -> None:
        model = _model(kind)
        row = model.objects.filter(id=id).values("status").first()
        if row is None:
            raise CommandError(f"no {kind} run {id}")
        if not runs.retry(model, id):
            raise CommandError(
                f"{kind} run {id} is {row['status']}: only a failed or cancelled run can be retried"
            )
        self.stdout.write(f"{kind} run {id} queued again (it resumes from what it stored)")


def _model(kind: str) -> Any:
    try:
        return runs.model_for(kind)
    except LookupError as exc:
        raise CommandError(str(exc)) from exc
