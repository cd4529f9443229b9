from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference.actions import import_template_file
from rprm_web.cli import add_json_flag, write_json


class Command(BaseCommand):
    help = (
        "Load a prompt template file verbatim (e.g. the official R-PRM GenPRM-evaluate-new3.json) "
        "as a new, versioned template."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")
        parser.add_argument("--name")
        add_json_flag(parser)

    def handle(self, *args: Any, path: str, name: str | None, **opts: Any) -> None:
        try:
            template = import_template_file(path, name=name)
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        kind = "chat messages" if template.chat else "raw text"
        self.stdout.write(
            f"template {template.name} v{template.version} ({kind}, {template.style} placeholders; "
            f"content sha256 {template.content_hash[:12]}, file sha256 {template.source_sha256[:12]})"
        )
        write_json(
            self,
            opts,
            {
                "template": template.name,
                "version": template.version,
                "sha256": template.content_hash,
                "file_sha256": template.source_sha256,
                "source": template.source,
                "chat": template.chat,
                "style": template.style,
            },
        )
