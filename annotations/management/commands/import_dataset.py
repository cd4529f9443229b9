"""`manage.py import_dataset PATH`: import one file as one dataset, in one transaction."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotations.actions import import_file
from annotations.importers import FORMATS, RATING0_CHOICES, ImportValidationError


class Command(BaseCommand):
    help = (
        "Import a step-labelled dataset file (JSONL or JSON array, optionally .gz or .zst, or Parquet). The format is "
        "detected from the first record unless --format is given. Nothing is written if any record is "
        "invalid; a file already imported with the same format and options is reported and skipped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")
        parser.add_argument("--format", choices=FORMATS, help="skip auto-detection")
        parser.add_argument("--name", help="dataset name (default: the file name without extensions)")
        parser.add_argument("--split", default="", help="e.g. train, test, gsm8k")
        parser.add_argument(
            "--rating0",
            choices=RATING0_CHOICES,
            help="label for PRM800K/generic rating 0 ('not wrong, no progress'); default correct; recorded",
        )

    def handle(self, *args, **opts) -> None:
        options = {"rating0": opts["rating0"]} if opts["rating0"] else {}
        progress = self._progress if opts["verbosity"] >= 2 else None
        try:
            result = import_file(
                opts["path"],
                dataset_name=opts["name"],
                fmt=opts["format"],
                options=options,
                split=opts["split"],
                progress=progress,
            )
        except ImportValidationError as exc:
            raise CommandError(str(exc)) from exc
        if result.warnings:
            self.stdout.write(f"{result.job.counts.get('warnings', len(result.warnings))} warning(s):")
            for warning in result.warnings[:10]:
                self.stdout.write(f"  {warning}")
        self.stdout.write(result.summary())

    def _progress(self, done: int, total: int, solutions: int) -> None:
        pct = 100 * done // total if total else 0
        sys.stderr.write(f"\r{pct:3d}%  {solutions:,} solutions")
        sys.stderr.flush()
