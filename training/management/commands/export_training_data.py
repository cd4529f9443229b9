"""`manage.py export_training_data`: write an SFT/DPO snapshot (JSONL + Parquet + manifest)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from rprm_web.cli import add_json_flag, write_json
from training.export import create_export_job, run_export_job


class Command(BaseCommand):
    help = (
        "Export accepted critiques as TRL prompt-completion (SFT) and preference (DPO) rows, in JSONL and "
        "Parquet, with a manifest. Flawed critiques and disputed labels are left out. Runs in this process "
        "unless --queue is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kind", choices=["sft", "dpo", "both"], default="both")
        parser.add_argument(
            "--dataset", type=int, action="append", default=[], help="dataset id (repeatable)"
        )
        parser.add_argument("--run", type=int, action="append", default=[], help="run id (repeatable)")
        parser.add_argument("--error-type", action="append", default=[], help="error type slug (repeatable)")
        parser.add_argument("--require-review", action="store_true", help="only critiques reviewed as sound")
        parser.add_argument("--no-balance", action="store_true", help="keep the yes/no ratio as it is")
        parser.add_argument("--val-fraction", type=float, default=0.05)
        parser.add_argument("--pairs-per-step", type=int, default=2)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--user", help="record this username as the author")
        parser.add_argument("--queue", action="store_true", help="send to the Celery default queue instead")
        add_json_flag(parser)

    def handle(self, *args: Any, **opts: Any) -> None:
        user = None
        if opts["user"]:
            user = User.objects.filter(username=opts["user"]).first()
            if user is None:
                raise CommandError(f"no such user: {opts['user']}")
        filters = {
            "kinds": ["sft", "dpo"] if opts["kind"] == "both" else [opts["kind"]],
            "datasets": opts["dataset"],
            "runs": opts["run"],
            "error_types": opts["error_type"],
            "require_review": opts["require_review"],
            "balance": not opts["no_balance"],
            "val_fraction": opts["val_fraction"],
            "dpo_pairs_per_step": opts["pairs_per_step"],
            "seed": opts["seed"],
        }
        try:
            job = create_export_job(user, filters, queue=opts["queue"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if opts["queue"]:
            self.stdout.write(f"export {job.uuid} queued")
            write_json(self, opts, {"export": job.uuid, "status": job.status})
            return
        done = run_export_job(job.id)
        if done is None:
            raise CommandError(f"export {job.uuid} was claimed by another worker")
        job = done
        if job.status != job.Status.SUCCEEDED:
            raise CommandError(
                f"export failed: {job.error.splitlines()[0] if job.error else 'unknown error'}"
            )
        self.stdout.write(f"export {job.uuid}: {job.folder()}")
        for key, value in job.manifest["counts"].items():
            self.stdout.write(f"  {key}: {value}")
        write_json(
            self,
            opts,
            {
                "export": job.uuid,
                "status": job.status,
                "folder": job.folder(),
                "counts": job.manifest["counts"],
            },
        )
