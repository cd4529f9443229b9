"""Start a teacher run from the command line; with --wait, run it here to the end."""

from __future__ import annotations

from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotations.models import Dataset
from inference.actions import create_run, endpoint_for
from inference.core.generation import TEACHER
from inference.models import GenerationRun
from inference.prompt_export import ExportError, find_template
from inference.runner import process_run
from inference.trust import EndpointRejected
from rprm_web.cli import Progress, add_json_flag, write_json


class Command(BaseCommand):
    help = "Generate R-PRM critiques for a dataset's steps with a teacher model."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True, help="dataset name")
        parser.add_argument("--model", required=True, help="endpoint name, model path / id, or server URL")
        parser.add_argument("--backend", choices=["transformers", "openai", "vllm"])
        parser.add_argument("--served-model-name", default="", help="OpenAI-compatible: the model name")
        parser.add_argument(
            "--n-samples",
            "--samples",
            "-K",
            dest="n_samples",
            type=int,
            default=TEACHER.n_samples,
            help=f"K critiques per step (default {TEACHER.n_samples})",
        )
        parser.add_argument("--limit", type=int, help="at most this many steps")
        parser.add_argument("--labels", default="", help="comma-separated step labels to include")
        parser.add_argument("--temperature", type=float)
        parser.add_argument("--top-p", type=float)
        parser.add_argument("--max-new-tokens", type=int)
        parser.add_argument("--batch-size", type=int)
        parser.add_argument("--seed", type=int)
        parser.add_argument("--template", help="NAME (latest version) or NAME@VERSION instead of the default")
        parser.add_argument("--kind", default="teacher_seed", choices=["teacher_seed", "student_sample"])
        parser.add_argument("--wait", action="store_true", help="run here to the end, with a progress bar")
        add_json_flag(parser)

    def handle(self, *args: Any, **o: Any) -> None:
        dataset = Dataset.objects.filter(name=o["dataset"]).first()
        if dataset is None:
            raise CommandError(f"no dataset named {o['dataset']!r}")
        if o["n_samples"] < 1:
            raise CommandError("--n-samples (K) must be at least 1")
        template = None
        if o["template"]:
            try:
                template = find_template(o["template"])
            except ExportError as exc:
                raise CommandError(str(exc)) from exc
        try:
            endpoint = endpoint_for(
                o["model"], backend=o["backend"], served_model_name=o["served_model_name"]
            )
        except EndpointRejected as exc:  # one line, no traceback: the operator fixes the URL or the setting
            raise CommandError(str(exc)) from None
        step_filter = {"limit": o["limit"]} if o["limit"] else {}
        if o["labels"]:
            step_filter["labels"] = [x.strip() for x in o["labels"].split(",") if x.strip()]
        try:
            run = create_run(
                dataset=dataset,
                endpoint=endpoint,
                template=template,
                kind=o["kind"],
                step_filter=step_filter,
                queue=not o["wait"],
                n_samples=o["n_samples"],
                temperature=o["temperature"],
                top_p=o["top_p"],
                max_new_tokens=o["max_new_tokens"],
                batch_size=o["batch_size"],
                seed=o["seed"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if not o["wait"]:
            self.stdout.write(
                f"queued run {run.id} ({run.steps_total} steps x {run.n_samples} samples) on the gpu queue"
            )
            write_json(
                self,
                o,
                {
                    "run": run.id,
                    "status": run.status,
                    "steps_total": run.steps_total,
                    "n_samples": run.n_samples,
                },
            )
            return
        self.run_here(run, o)

    def run_here(self, run: GenerationRun, o: dict[str, Any]) -> None:
        # OutputWrapper delegates to its TextIO (Progress writes to the wrapped stream).
        with Progress(
            f"run {run.id}", total=run.steps_total, unit="steps", stream=cast(TextIO, self.stderr)
        ) as bar:
            result = process_run(
                run.id,
                progress=lambda r: bar.update(r.steps_done, r.steps_total, f"{r.critiques_done} critiques"),
            )
        if result is None:
            raise CommandError(f"run {run.id} could not be claimed")
        result.refresh_from_db()
        s = result.summary

        def pct(x: float | None) -> str:
            return "n/a" if x is None else f"{100 * x:.1f}%"

        self.stdout.write(
            f"run {result.id} {result.status}: {s.get('critiques', 0)} critiques for {result.steps_total} steps; "
            f"strict parse rate {pct(s.get('parse_rate'))}; agreement with labels {pct(s.get('agreement'))} "
            f"(correct steps {pct(s.get('agreement_correct'))}, incorrect steps {pct(s.get('agreement_incorrect'))}); "
            f"{s.get('sft_eligible', 0)} SFT-eligible; {s.get('text_repaired', 0)} with text repaired "
            f"(unstorable characters -> U+FFFD), {s.get('truncated', 0)} cut at the token limit"
        )
        write_json(
            self,
            o,
            {"run": result.id, "status": result.status, "steps_total": result.steps_total, "summary": s},
        )
        if result.status != "succeeded":
            raise CommandError(result.error.splitlines()[0] if result.error else f"run {result.status}")
