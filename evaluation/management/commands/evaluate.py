"""Evaluate a model or an external scores file on ProcessBench or PRMBench.

Runs here to the end (or, with --queue, on the gpu worker). With --json the last
line printed is one JSON object with the metrics (per subset or class, and the headline).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotations.models import Dataset
from evaluation.management.options import add_n_samples
from evaluation.models import EvaluationRun
from evaluation.results import json_summary
from evaluation.selection import describe as describe_selection
from evaluation.workflow import create_evaluation, process_evaluation
from inference import scorers
from inference.actions import endpoint_for
from inference.models import ModelEndpoint, PromptTemplate
from rprm_web.cli import Progress


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _datasets(args: list[str]) -> list[Dataset]:
    """--dataset values (repeated or comma-separated) as datasets."""
    datasets = []
    for name in (n.strip() for arg in args for n in arg.split(",") if n.strip()):
        ds = Dataset.objects.filter(name=name).first()
        if ds is None:
            raise CommandError(f"no dataset named {name!r}")
        datasets.append(ds)
    return datasets


def _scorer(model: str) -> ModelEndpoint:
    """An endpoint's name, or a model version's own name (its scorer / student endpoint),
    or a model path / server URL (an endpoint is made for it)."""
    endpoint = ModelEndpoint.objects.filter(name=model).first() or scorers.scorer_endpoint(model)
    if endpoint is None:
        if not (Path(model).exists() or model.startswith(("http://", "https://"))):
            raise CommandError(f"no model endpoint named {model!r} (and no such path)")
        return endpoint_for(model, role=ModelEndpoint.Role.SCORER)
    if endpoint.role not in scorers.SCORER_ROLES:
        raise CommandError(f"endpoint {endpoint.name!r} has role {endpoint.role}; use a scorer or student")
    return endpoint


class Command(BaseCommand):
    help = "Evaluate a PRM (a model endpoint, or a JSONL file of external step scores) on a benchmark."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--benchmark", required=True, choices=["processbench", "prmbench"])
        parser.add_argument(
            "--dataset",
            required=True,
            action="append",
            help="dataset name; repeat (or comma-separate) for ProcessBench's subset datasets",
        )
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--model", help="scorer/student endpoint name, or a model path / server URL")
        source.add_argument("--scores", help='JSONL: {"id": <solution source id>, "step_scores": [floats]}')
        add_n_samples(parser)
        parser.add_argument("--threshold", type=float, default=0.5)
        parser.add_argument("--name", default="", help="row label on the results page")
        parser.add_argument("--max-new-tokens", type=int, help="default 4,096 (or the endpoint's own limit)")
        parser.add_argument("--temperature", type=float, help="default 0.95")
        parser.add_argument("--top-p", type=float, help="default 0.95")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--batch-size", type=int, default=4, help="solutions per backend call")
        parser.add_argument(
            "--limit",
            type=int,
            help="only the first N solutions, stratified by label (ProcessBench: with/without an error; "
            "PRMBench: by class) and seeded (--limit-seed)",
        )
        parser.add_argument(
            "--limit-seed", type=int, default=0, help="seed of the stratified first N (default 0)"
        )
        parser.add_argument(
            "--scored-steps",
            choices=["first_error", "all", "predicted_error"],
            help="ProcessBench default first_error: critique steps through the labelled first error (the "
            "authors' rows, same metrics); predicted_error also stops at the first predicted error "
            "(exact at --threshold only); PRMBench scores all steps",
        )
        parser.add_argument("--template", help="prompt template name or name@version (default: built-in)")
        parser.add_argument(
            "--queue", action="store_true", help="queue on the gpu worker instead of running here"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")

    def handle(self, *args: Any, **o: Any) -> None:
        common: dict[str, Any] = {
            "benchmark": o["benchmark"],
            "datasets": _datasets(o["dataset"]),
            "threshold": o["threshold"],
            "name": o["name"],
        }
        try:
            if o["scores"]:
                if not Path(o["scores"]).is_file():
                    raise CommandError(f"{o['scores']}: no such file")
                run = create_evaluation(scores_path=o["scores"], **common)
            else:
                run = self.create_model_run(o, common)
                if o["queue"]:
                    self.stdout.write(
                        f"queued evaluation {run.uuid} ({run.solutions_total} solutions, K={run.n_samples})"
                    )
                    if o["json"]:
                        self.stdout.write(json.dumps(json_summary(run)))
                    return
                self.run_here(run)
        except ValueError as exc:  # ScoreFileError too
            raise CommandError(str(exc)) from exc
        run = EvaluationRun.objects.get(id=run.id)
        self.report(run)
        if o["json"]:
            self.stdout.write(json.dumps(json_summary(run), default=str))
        if run.status != EvaluationRun.Status.SUCCEEDED:
            raise CommandError(run.error.splitlines()[0] if run.error else f"evaluation {run.status}")

    def create_model_run(self, o: dict[str, Any], common: dict[str, Any]) -> EvaluationRun:
        try:
            template = scorers.template_for(o["template"])
        except PromptTemplate.DoesNotExist as exc:
            raise CommandError(str(exc)) from exc
        return create_evaluation(
            endpoint=_scorer(o["model"]),
            template=template,
            n_samples=o["n_samples"],
            solution_limit=o["limit"],
            solution_seed=o["limit_seed"],
            scored_steps=o["scored_steps"],
            batch_size=o["batch_size"],
            queue=o["queue"],
            max_new_tokens=o["max_new_tokens"],
            temperature=o["temperature"],
            top_p=o["top_p"],
            seed=o["seed"],
            **common,
        )

    def run_here(self, run: EvaluationRun) -> None:
        with Progress(
            f"evaluation {run.id}", total=run.solutions_total, unit="solutions", stream=self.stderr
        ) as bar:
            claimed = process_evaluation(
                run.id,
                progress=lambda r: bar.update(r.solutions_done, r.solutions_total, f"{r.steps_done} steps"),
            )
        if claimed is None:
            raise CommandError(f"evaluation {run.id} could not be claimed")

    def report(self, run: EvaluationRun) -> None:
        r = run.results or {}
        w = self.stdout.write
        w(
            f"evaluation {run.uuid} ({run.name}) {run.status}: {r.get('n_solutions', 0)} solutions, "
            f"threshold {run.threshold}"
        )
        if run.selection:
            w(describe_selection(run.selection))
        if "n_steps" in r:
            w(
                f"steps critiqued: {r['n_steps']} of {r.get('n_steps_total', r['n_steps'])} "
                f"({run.get_scored_steps_display()})"
            )
        if r.get("headline", {}).get("undefined"):
            w(f"{r['headline'].get('label') or 'headline'} undefined: {r['headline']['undefined']}")
        if "processbench" in r:
            w(f"{'subset':<16}{'error_acc':>10}{'correct_acc':>12}{'f1':>8}{'n_err':>7}{'n_ok':>6}")
            for name, m in r["processbench"]["subsets"].items():
                w(
                    f"{name:<16}{fmt(m['error_acc']):>10}{fmt(m['correct_acc']):>12}{fmt(m['f1']):>8}"
                    f"{m['n_error']:>7}{m['n_correct']:>6}"
                )
            note = "" if r["processbench"]["complete"] else " (not all four official subsets)"
            w(f"Avg. F1 (unweighted over subsets): {fmt(r['processbench']['avg_f1'])}{note}")
        if "prmbench" in r:
            w(f"{'class':<22}{'PRMScore':>10}{'items':>7}")
            for name, m in r["prmbench"]["classes"].items():
                w(f"{name:<22}{fmt(100 * m['prmscore']):>10}{m['n_items']:>7}")
            for name, m in r["prmbench"]["dimensions"].items():
                w(f"dimension {name:<12}{fmt(None if m['prmscore'] is None else 100 * m['prmscore']):>10}")
            w(f"PRMScore overall: {fmt(r['headline']['value'])}")
        for p in r.get("k_scaling") or []:
            if p["value"] is None:
                w(f"K={p['k']:<3} skipped: {p.get('undefined', 'metric undefined')}")
            else:
                w(f"K={p['k']:<3} {fmt(p['value'])} [{fmt(p['ci_low'])}, {fmt(p['ci_high'])}]")
        c = r.get("contamination")
        if c:
            w(
                f"contamination vs {', '.join(c['train_datasets'])}: {c['normalized']['problems']}/{c['n_problems']} "
                f"problems ({c['exact']['problems']} verbatim), {c['normalized']['solutions']}/{c['n_solutions']} solutions"
            )
