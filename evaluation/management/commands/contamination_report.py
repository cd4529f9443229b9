"""Overlap of evaluation problems with training problems (exact and normalised text)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotations.models import Dataset, Problem
from evaluation.results import contamination


def _datasets(names: list[str]) -> list[Dataset]:
    out = []
    for name in names:
        ds = Dataset.objects.filter(name=name).first()
        if ds is None:
            raise CommandError(f"no dataset named {name!r}")
        out.append(ds)
    return out


class Command(BaseCommand):
    help = (
        "Report evaluation problems that also occur in training data (e.g. PRMBench items built from "
        "PRM800K train problems): exact and normalised-text matches."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dataset", required=True, action="append", help="evaluation dataset (repeatable)"
        )
        parser.add_argument(
            "--train",
            action="append",
            help="training dataset (repeatable; default: every PRM800K / R-PRM step-rows dataset)",
        )
        parser.add_argument("--ids", action="store_true", help="list the matching problems' source ids")
        parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")

    def handle(self, *args: Any, **o: Any) -> None:
        eval_sets = _datasets(o["dataset"])
        train = _datasets(o["train"]) if o["train"] else None
        report = contamination(eval_sets, train)
        if report is None:
            raise CommandError("no training dataset to compare with (import PRM800K or pass --train)")
        source_ids = dict(
            Problem.objects.filter(id__in=report["normalized"]["problem_ids"]).values_list("id", "source_id")
        )
        for kind in ("exact", "normalized"):
            report[kind]["source_ids"] = [source_ids.get(i) for i in report[kind]["problem_ids"]]
        w = self.stdout.write
        w(
            f"{', '.join(report['eval_datasets'])} vs {', '.join(report['train_datasets'])} "
            f"({report['n_train_questions']} distinct training questions)"
        )
        for kind in ("exact", "normalized"):
            r = report[kind]
            w(
                f"{kind:<11} {r['problems']:>6} of {report['n_problems']} problems ({100 * r['problem_rate']:.1f}%), "
                f"{r['solutions']:>6} of {report['n_solutions']} solutions ({100 * r['solution_rate']:.1f}%)"
            )
        if o["ids"]:
            for sid in report["normalized"]["source_ids"]:
                w(str(sid))
        if o["json"]:
            w(json.dumps(report))
