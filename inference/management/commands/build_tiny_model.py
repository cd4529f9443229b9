from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from inference.core.tiny_model import build_tiny_model
from rprm_web.cli import add_json_flag, write_json


class Command(BaseCommand):
    help = "Build a random-initialised Qwen2 model with a locally trained tokenizer (offline, seconds)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dir")
        parser.add_argument("--seed", type=int, default=0)
        add_json_flag(parser)

    def handle(self, *args: Any, dir: str, seed: int, **opts: Any) -> None:
        path = build_tiny_model(dir, seed=seed)
        self.stdout.write(f"tiny model written to {path}")
        write_json(self, opts, {"path": path, "seed": seed})
