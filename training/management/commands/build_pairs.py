"""Build DPO preference pairs from a finished student sampling run (idempotent)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference.models import GenerationRun
from rprm_web.cli import add_json_flag, write_json
from training.data import TrainingDataError, build_preference_pairs_for


class Command(BaseCommand):
    help = "Pair a student run's critiques: chosen agrees with the step's label, rejected does not."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run", type=int, help="student sampling run id")
        parser.add_argument("--max-pairs-per-step", type=int, default=2, help="0: no cap")
        parser.add_argument(
            "--min-agree-fraction",
            type=float,
            default=1 / 3,
            help="drop steps whose agreeing samples are at most this fraction (default: the authors' 1/3; 0: off)",
        )
        parser.add_argument(
            "--no-balance",
            action="store_true",
            help="keep every pair instead of as many chosen-Yes as chosen-No pairs",
        )
        parser.add_argument("--seed", type=int, default=0)
        add_json_flag(parser)

    def handle(self, *args: Any, **o: Any) -> None:
        run = GenerationRun.objects.filter(id=o["run"]).first()
        if run is None:
            raise CommandError(f"no generation run {o['run']}")
        fraction = o["min_agree_fraction"]
        if fraction is not None and abs(fraction - 1 / 3) < 1e-3:
            fraction = 1 / 3  # the rule compares exactly: 0.3333 means the authors' 1/3
        try:
            build = build_preference_pairs_for(
                run, o["max_pairs_per_step"] or None, fraction or None, o["seed"], not o["no_balance"]
            )
        except TrainingDataError as exc:
            raise CommandError(str(exc)) from exc
        s = build.stats
        self.stdout.write(
            f"{len(build.pairs)} pairs over {build.steps} steps ({build.created} new) from run {run.id}: "
            f"{s['steps_considered']} labelled steps, {s['steps_dropped_by_filter']} dropped by the filter, "
            f"{s['steps_without_pair']} without both sides, {s['samples_unparseable']} unparseable samples"
            + (
                f", {s['dropped_for_balance']} dropped to balance chosen Yes/No"
                if "dropped_for_balance" in s
                else ""
            )
        )
        write_json(
            self,
            o,
            {
                "run": run.id,
                "pairs": len(build.pairs),
                "steps": build.steps,
                "created": build.created,
                "stats": s,
            },
        )
