"""`manage.py lineage NAME`: a model version's chain, as the lineage page shows it."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lineage.graph import version_lineage
from lineage.report import lineage_lines
from training.models import ModelVersion


class Command(BaseCommand):
    help = (
        "Print the chain that made a model version: datasets, runs, review, snapshot, training, evaluations."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the model version's name")

    def handle(self, *args: Any, **options: Any) -> None:
        version = ModelVersion.objects.filter(name=options["name"]).first()
        if version is None:
            raise CommandError(f"No model version named {options['name']!r}.")
        self.stdout.write("\n".join(lineage_lines(version_lineage(version))))
