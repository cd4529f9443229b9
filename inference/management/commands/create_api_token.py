"""Create a bearer token for the scoring API; the token is printed once, only its hash is stored."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create a scoring-API token for a user (printed once; store it now)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="what the token is for")

    def handle(self, *args, **o):
        from inference.scorers import create_api_token

        user = get_user_model().objects.filter(username=o["username"]).first()
        if user is None:
            raise CommandError(f"no user named {o['username']!r}")
        _, raw = create_api_token(user, o["name"])
        self.stderr.write(f"token for {user.username} (shown once; send 'Authorization: Bearer <token>'):")
        self.stdout.write(raw)
