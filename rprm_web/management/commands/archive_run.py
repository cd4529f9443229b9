"""Hide a finished run from the run lists (never deletes it), or show it again:

python manage.py archive_run generation 4
python manage.py archive_run generation 4 --undo
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rprm_web import runs


class Command(BaseCommand):
    help = "Archive a finished run (hidden from lists, never deleted); --undo shows it again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", help="generation, evaluation, guidance, training, import or export")
        parser.add_argument("id", type=int)
        parser.add_argument("--undo", action="store_true", help="unarchive")

    def handle(self, *args: Any, kind: str, id: int, undo: bool, **options: Any) -> None:
        try:
            model = runs.model_for(kind)
        except LookupError as exc:
            raise CommandError(str(exc)) from exc
        row = model.objects.filter(id=id).values("status", "archived").first()
        if row is None:
            raise CommandError(f"no {kind} run {id}")
        if runs.set_archived(model, id, not undo):
            self.stdout.write(f"{kind} run {id} {'unarchived' if undo else 'archived'}")
        elif row["archived"] != undo:
            self.stdout.write(f"{kind} run {id} was already {'unarchived' if undo else 'archived'}")
        else:
            raise CommandError(f"{kind} run {id} is {row['status']}: only a finished run can be archived")
