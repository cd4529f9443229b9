"""Create a bearer token for the scoring API; the token is printed once, only its hash is stored."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference.scorers import TokenRefused, create_api_token
from rprm_web.cli import add_json_flag, write_json


class Command(BaseCommand):
    help = "Create a scoring-API token for a user (printed once; store it now)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="what the token is for")
        add_json_flag(parser)

    def handle(self, *args: Any, **o: Any) -> None:
        user = get_user_model().objects.filter(username=o["username"]).first()
        if user is None:
            raise CommandError(f"no user named {o['username']!r}")
        try:
            token, raw = create_api_token(user, o["name"])
        except TokenRefused as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(f"token for {user.username} (shown once; send 'Authorization: Bearer <token>'):")
        if o["json"]:  # the token, once, inside the JSON object instead of on its own line
            write_json(self, o, {"user": user.username, "name": o["name"], "token": raw, "id": token.pk})
        else:
            self.stdout.write(raw)
