"""Score every step of every solution in a JSONL file with a scorer model.

Input: one `{"id", "question", "steps": [str]}` per line ("problem" is accepted
for "question"). Output: one line per input line with `step_scores` (the per-step
rewards, so the file can be fed to `evaluate --scores`) and, per step, every
sample's verdict and p_yes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from evaluation.management.options import add_n_samples
from inference import scorers
from inference.core.backends.base import Sampling
from inference.core.generation import MAX_K
from inference.core.solution_scoring import score_solutions
from inference.models import PromptTemplate
from inference.runner import get_backend
from rprm_web.cli import Progress, write_json


class Command(BaseCommand):
    help = "Score the steps of solutions in a JSONL file (per-step rewards and per-sample verdicts / p_yes)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("input", help='JSONL: {"id", "question", "steps": [str]} per line')
        parser.add_argument("--model", required=True, help="scorer/student endpoint name")
        add_n_samples(parser)
        parser.add_argument("--out", help="output JSONL (default: stdout)")
        parser.add_argument("--batch-size", type=int, default=4, help="solutions per backend call")
        parser.add_argument("--max-new-tokens", type=int)
        parser.add_argument("--seed", type=int)
        parser.add_argument("--template", help="prompt template name or name@version (default: built-in)")
        parser.add_argument("--keep-text", action="store_true", help="include each critique's text")
        parser.add_argument(
            "--json", action="store_true", help="with --out: print a summary JSON object as the last line"
        )

    def handle(self, *args: Any, **o: Any) -> None:
        path = Path(o["input"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        if not 1 <= o["n_samples"] <= MAX_K:
            raise CommandError(f"--samples must be within 1..{MAX_K}")
        endpoint = scorers.scorer_endpoint(o["model"])
        if endpoint is None:
            raise CommandError(f"no scorer or student model named {o['model']!r}")
        try:
            template = scorers.template_for(o["template"])
        except PromptTemplate.DoesNotExist as exc:
            raise CommandError(str(exc)) from exc
        if o["json"] and not o["out"]:
            raise CommandError("--json needs --out: without it stdout already carries the JSON Lines")
        rows = read_rows(path)  # validated before any model is loaded
        sampling = Sampling(
            **scorers.eval_sampling_values(endpoint, max_new_tokens=o["max_new_tokens"], seed=o["seed"])
        )
        backend = get_backend(endpoint)
        core = template.to_core()
        out = open(o["out"], "w", encoding="utf-8") if o["out"] else self.stdout  # noqa: SIM115
        bar = Progress("score", total=len(rows), unit="solutions", stream=self.stderr)
        try:
            size = max(1, o["batch_size"])
            for start in range(0, len(rows), size):
                batch = rows[start : start + size]
                scored = score_solutions(
                    backend,
                    core,
                    [(r["question"], r["steps"]) for r in batch],
                    o["n_samples"],
                    sampling,
                    keep_text=o["keep_text"],
                )
                for row, s in zip(batch, scored, strict=True):
                    line = {
                        "id": row["id"],
                        "step_scores": s.rewards,
                        "model": endpoint.name,
                        "K": o["n_samples"],
                        "steps": [
                            {"reward": st.reward, "samples": [x.as_dict() for x in st.samples]}
                            for st in s.steps
                        ],
                    }
                    out.write(json.dumps(line, ensure_ascii=False) + "\n")
                bar.update(min(start + size, len(rows)))
        finally:
            bar.close()
            if o["out"]:
                out.close()
        write_json(
            self, o, {"out": o["out"], "solutions": len(rows), "model": endpoint.name, "K": o["n_samples"]}
        )


def read_rows(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CommandError(f"{path.name}, line {n}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise CommandError(f"{path.name}, line {n}: expected a JSON object")
            question = record.get("question", record.get("problem"))
            if not isinstance(question, str) or not question.strip():
                raise CommandError(f"{path.name}, line {n}: question: expected a non-empty string")
            steps = record.get("steps")
            if (
                not isinstance(steps, list)
                or not steps
                or not all(isinstance(s, str) and s.strip() for s in steps)
            ):
                raise CommandError(
                    f"{path.name}, line {n}: steps: expected a non-empty list of non-empty strings"
                )
            rows.append({"id": record.get("id", n), "question": question, "steps": steps})
    if not rows:
        raise CommandError(f"{path.name}: no solutions")
    return rows
