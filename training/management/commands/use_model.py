"""Use a model version as a scorer or student: the model page's buttons, from the shell."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rprm_web.cli import add_json_flag, write_json
from training.actions import register_endpoint
from training.models import ModelVersion


class Command(BaseCommand):
    help = "Register a model version as a scorer or student endpoint (in the gpu worker, or a served URL)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("version", help="the model version's name")
        parser.add_argument("--as", dest="role", choices=["scorer", "student"], default="scorer")
        parser.add_argument(
            "--served-url", default="", help="OpenAI-compatible base URL, e.g. http://vllm-model:8001/v1"
        )
        parser.add_argument(
            "--served-model-name", default="", help="the server's model name (default: the version's)"
        )
        add_json_flag(parser)

    def handle(self, *args: Any, **o: Any) -> None:
        version = ModelVersion.objects.filter(name=o["version"]).first()
        if version is None:
            raise CommandError(f"no model version named {o['version']!r}")
        try:
            endpoint = register_endpoint(
                version, o["role"], served_url=o["served_url"], served_model_name=o["served_model_name"]
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{version.name}: {o['role']} endpoint {endpoint.name!r} ({endpoint.backend} {endpoint.path_or_url})"
        )
        write_json(self, o, {"version": version.name, "role": o["role"], "endpoint": endpoint.name,
                             "backend": endpoint.backend, "path_or_url": endpoint.path_or_url})  # fmt: skip
