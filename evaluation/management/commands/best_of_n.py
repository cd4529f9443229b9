"""Best-of-N (or, with --guided, greedy guided search) of a policy with a PRM."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotations.models import Dataset
from evaluation.guidance_runs import create_guidance_run, process_guidance
from evaluation.management.options import add_n_samples
from evaluation.models import GuidanceRun
from inference.models import ModelEndpoint
from inference.scorers import scorer_endpoint
from rprm_web.cli import Progress, write_json


class Command(BaseCommand):
    help = (
        "Best-of-N: the policy samples N solutions per problem, the PRM scores them, the best by min-step "
        "and last-step reward is checked against the reference answer. --guided: guided search instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True, help="dataset whose problems have reference answers")
        parser.add_argument("--policy", required=True, help="policy endpoint name")
        parser.add_argument("--scorer", required=True, help="scorer/student endpoint name")
        parser.add_argument(
            "--n", type=int, default=8, help="solutions (or next-step candidates) per problem"
        )
        add_n_samples(parser)
        parser.add_argument("--limit", type=int, help="only the first N problems")
        parser.add_argument("--max-steps", type=int, default=30)
        parser.add_argument("--guided", action="store_true", help="greedy guided search instead of Best-of-N")
        parser.add_argument("--policy-max-new-tokens", type=int)
        parser.add_argument("--policy-temperature", type=float)
        parser.add_argument("--max-new-tokens", type=int, help="critique length (default 4,096)")
        parser.add_argument("--seed", type=int)
        parser.add_argument(
            "--queue", action="store_true", help="queue on the gpu worker instead of running here"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")

    def handle(self, *args: Any, **o: Any) -> None:
        dataset = Dataset.objects.filter(name=o["dataset"]).first()
        if dataset is None:
            raise CommandError(f"no dataset named {o['dataset']!r}")
        policy = ModelEndpoint.objects.filter(name=o["policy"]).first()
        if policy is None:
            raise CommandError(f"no model endpoint named {o['policy']!r}")
        scorer = scorer_endpoint(o["scorer"])
        if scorer is None:
            raise CommandError(f"no scorer or student model named {o['scorer']!r}")
        kind = GuidanceRun.Kind.GUIDED_SEARCH if o["guided"] else GuidanceRun.Kind.BEST_OF_N
        try:
            run = create_guidance_run(
                kind=kind,
                dataset=dataset,
                policy=policy,
                scorer=scorer,
                queue=o["queue"],
                n_candidates=o["n"],
                n_samples=o["n_samples"],
                problem_limit=o["limit"],
                max_steps=o["max_steps"],
                policy_max_new_tokens=o["policy_max_new_tokens"],
                policy_temperature=o["policy_temperature"],
                max_new_tokens=o["max_new_tokens"],
                seed=o["seed"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if o["queue"]:
            self.stdout.write(
                f"queued {run.get_kind_display()} run {run.uuid} ({run.problems_total} problems)"
            )
            write_json(self, o, {"run": str(run.uuid), "kind": run.kind, "status": run.status})
            return

        with Progress(
            run.get_kind_display(), total=run.problems_total, unit="problems", stream=self.stderr
        ) as bar:
            claimed = process_guidance(
                run.id, progress=lambda r: bar.update(r.problems_done, r.problems_total)
            )
        if claimed is None:
            raise CommandError(f"run {run.id} could not be claimed")
        run.refresh_from_db()
        r = run.results
        if kind == GuidanceRun.Kind.BEST_OF_N and r.get("n_problems"):
            self.stdout.write(
                f"Best-of-{run.n_candidates} on {r['n_problems']} problems: min-step {r['min']:.1f}%, "
                f"last-step {r['last']:.1f}%, pass@1 {r['pass@1']:.1f}%, "
                f"pass@{run.n_candidates} {r['pass@n']:.1f}%"
            )
        elif r.get("n_problems"):
            self.stdout.write(
                f"guided search on {r['n_problems']} problems: {r['guided']:.1f}% "
                f"({r['mean_steps']:.1f} steps on average)"
            )
        write_json(self, o, {"run": str(run.uuid), "kind": run.kind, "status": run.status, **r})
        if run.status != GuidanceRun.Status.SUCCEEDED:
            raise CommandError(run.error.splitlines()[0] if run.error else f"run {run.status}")
