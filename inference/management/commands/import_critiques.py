from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotations.models import Dataset
from inference.critique_import import CritiqueImportError, import_critiques
from inference.prompt_export import ExportError, find_template
from rprm_web.cli import add_json_flag, write_json


class Command(BaseCommand):
    help = "Import critiques written elsewhere (JSONL) as a finished run of a dataset."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--model", required=True, help="name the critiques are credited to")
        parser.add_argument(
            "--template",
            help="NAME or NAME@VERSION the critiques were written with "
            "(e.g. the one given to export_prompts); default: the built-in template",
        )
        add_json_flag(parser)

    def handle(
        self, *args: Any, path: str, dataset: str, model: str, template: str | None = None, **opts: Any
    ) -> None:
        ds = Dataset.objects.filter(name=dataset).first()
        if ds is None:
            raise CommandError(f"no dataset named {dataset!r}")
        try:
            tpl = find_template(template) if template else None
            run, created = import_critiques(path, dataset=ds, model_name=model, template=tpl)
        except (OSError, CritiqueImportError, ExportError) as exc:
            raise CommandError(str(exc)) from exc
        verb = "imported" if created else "already imported"
        self.stdout.write(
            f"{verb}: run {run.id}, {run.critiques_done} critiques for {run.steps_total} steps; "
            f"strict parse rate {run.summary.get('parse_rate')}, agreement {run.summary.get('agreement')}"
        )
        write_json(
            self,
            opts,
            {
                "run": run.id,
                "created": created,
                "critiques": run.critiques_done,
                "steps": run.steps_total,
                "summary": run.summary,
            },
        )
