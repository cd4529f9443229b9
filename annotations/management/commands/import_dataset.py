"""`manage.py import_dataset PATH [PATH ...]`: import one file, or several files of one format,
as one dataset, in one transaction."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotations.actions import import_file
from annotations.importers import FORMATS
from annotations.importers.base import RATING0_CHOICES
from annotations.importers.errors import ImportValidationError
from rprm_web.cli import Progress, add_json_flag, write_json


class Command(BaseCommand):
    help = (
        "Import a step-labelled dataset file (JSONL or JSON array, optionally .gz or .zst, or Parquet). The format is "
        "detected from the first record unless --format is given. Several paths make one dataset (all of one "
        "format). Nothing is written if any record of any file is invalid; files already imported with the same "
        "format and options are reported and skipped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", nargs="+", help="one file, or several files imported as one dataset")
        parser.add_argument("--format", choices=FORMATS, help="skip auto-detection")
        parser.add_argument(
            "--name",
            help="dataset name (default: the file name without extensions; several: their common prefix)",
        )
        parser.add_argument("--split", default="", help="e.g. train, test, gsm8k")
        parser.add_argument(
            "--rating0",
            choices=RATING0_CHOICES,
            help="label for PRM800K/generic rating 0 ('not wrong, no progress'); default correct; recorded",
        )
        add_json_flag(parser)

    def handle(self, *args: Any, **opts: Any) -> None:
        options = {"rating0": opts["rating0"]} if opts["rating0"] else {}
        bar = Progress("import", unit="%", stream=self.stderr) if opts["verbosity"] >= 2 else None

        def progress(done: int, total: int, solutions: int) -> None:
            assert bar is not None  # passed to the import only with a bar
            bar.update(100 * done // total if total else 0, 100, f"{solutions:,} solutions")

        try:
            result = import_file(
                opts["path"] if len(opts["path"]) > 1 else opts["path"][0],
                dataset_name=opts["name"],
                fmt=opts["format"],
                options=options,
                split=opts["split"],
                progress=progress if bar else None,
            )
            if bar:
                bar.update(100, 100, f"{result.n_solutions:,} solutions")
        except ImportValidationError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if bar:
                bar.close()
        if result.warnings:
            self.stdout.write(f"{result.job.counts.get('warnings', len(result.warnings))} warning(s):")
            for warning in result.warnings[:10]:
                self.stdout.write(f"  {warning}")
        self.stdout.write(result.summary())
        write_json(
            self,
            opts,
            {
                "dataset": result.dataset.name,
                "dataset_uuid": result.dataset.uuid,
                "format": result.format,
                "already_imported": result.already_imported,
                "job": result.job.uuid,
                "counts": result.job.counts,
                "warnings": result.warnings,
                "seconds": round(result.seconds, 3),
            },
        )
