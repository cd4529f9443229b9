"""`manage.py audit_critiques --run ID`: compute audit signals and fill the review queues."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference.models import GenerationRun
from review.audit import audit_run
from review.tasks import audit_run_task
from rprm_web.cli import add_json_flag, write_json


class Command(BaseCommand):
    help = (
        "Compute the automatic audit signals (sample disagreement, sympy arithmetic check, conclusion vs "
        "verdict, phantom step references, missing sections, p(yes) near 0.5) for every critique of a run, "
        "store them with their evidence and put the critiques in the review queues. Idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--run", type=int, action="append", help="run id (repeatable)")
        target.add_argument("--all", action="store_true", help="every finished run")
        parser.add_argument("--queue", action="store_true", help="send to the Celery default queue instead")
        add_json_flag(parser)

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["all"]:
            ids = list(
                GenerationRun.objects.exclude(status__in=GenerationRun.ACTIVE).values_list("id", flat=True)
            )
        else:
            ids = opts["run"]
            missing = set(ids) - set(GenerationRun.objects.filter(id__in=ids).values_list("id", flat=True))
            if missing:
                raise CommandError(f"no such run: {', '.join(map(str, sorted(missing)))}")
        results: dict[str, object] = {}
        for run_id in ids:
            if opts["queue"]:
                audit_run_task.delay(run_id)
                self.stdout.write(f"run {run_id}: audit queued")
                results[str(run_id)] = "queued"
                continue
            summary = audit_run(run_id)
            results[str(run_id)] = summary
            self.stdout.write(f"run {run_id}: {json.dumps(summary, sort_keys=True)}")
        write_json(self, opts, {"runs": results})
