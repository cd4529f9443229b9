"""`manage.py register_endpoints`: register the deployment's model server from the environment.

Compose runs it before the web server starts: the `vllm` service (VLLM_URL, e.g.
http://vllm:8000/v1, serving VLLM_SERVED_MODEL) becomes two OpenAI-compatible
endpoints, a teacher and a scorer, that the web, the API and the workers call. The
default teacher/scorer settings name them, so the forms preselect them. Idempotent:
rerunning updates the URL and model name in place, never duplicates.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference.actions import register_server_endpoints
from rprm_web.cli import add_json_flag, write_json


class Command(BaseCommand):
    help = "Register (or update) the OpenAI-compatible server named by VLLM_URL as the default teacher and scorer."

    def add_arguments(self, parser: CommandParser) -> None:
        add_json_flag(parser)

    def handle(self, *args: Any, **o: Any) -> None:
        if not settings.VLLM_URL:
            self.stdout.write("VLLM_URL is not set: no model server to register")
            write_json(self, o, {"registered": []})
            return
        try:
            endpoints = register_server_endpoints(settings.VLLM_URL, settings.VLLM_SERVED_MODEL)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        for e in endpoints:
            self.stdout.write(f"{e.name} ({e.role}): {e.path_or_url} serving {e.served_model_name}")
        write_json(
            self,
            o,
            {
                "registered": [
                    {"name": e.name, "role": e.role, "url": e.path_or_url, "model": e.served_model_name}
                    for e in endpoints
                ]
            },
        )
