from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotations.models import Dataset
from inference.prompt_export import ExportError, export_prompts, find_template
from rprm_web.cli import add_json_flag, write_json


class Command(BaseCommand):
    help = (
        "Write every step's critique prompt of a dataset as JSONL (messages for a chat template, "
        "prompt text otherwise), to run a teacher elsewhere and bring the critiques back with import_critiques."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--template", required=True, help="NAME (latest version) or NAME@VERSION")
        parser.add_argument("--out", required=True)
        parser.add_argument(
            "--through-first-error",
            action="store_true",
            help="only steps up to a solution's first wrong step (the authors' ProcessBench rows)",
        )
        add_json_flag(parser)

    def handle(
        self, *args: Any, dataset: str, template: str, out: str, through_first_error: bool, **opts: Any
    ) -> None:
        ds = Dataset.objects.filter(name=dataset).first()
        if ds is None:
            raise CommandError(f"no dataset named {dataset!r}")
        try:
            tpl = find_template(template)
            n = export_prompts(ds, tpl, out, through_first_error=through_first_error)
        except (OSError, ExportError) as exc:
            raise CommandError(str(exc)) from exc
        kind = "messages" if tpl.chat else "prompt text"
        self.stdout.write(
            f"wrote {n} step prompts ({kind}, template {tpl} sha256 {tpl.content_hash[:12]}) to {out}"
        )
        write_json(
            self,
            opts,
            {
                "rows": n,
                "out": out,
                "chat": tpl.chat,
                "template": tpl.name,
                "version": tpl.version,
                "sha256": tpl.content_hash,
            },
        )
