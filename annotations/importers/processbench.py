"""ProcessBench (Qwen/ProcessBench): `id, generator, problem, steps, final_answer_correct, label`.

`label` is the 0-based index of the earliest wrong step, or -1 when every step is
correct. Steps before it are correct, the step at it incorrect, and the steps after
it unlabelled: ProcessBench says nothing about them, so nothing is invented.
"""

from __future__ import annotations

from typing import Any

from .base import CORRECT, INCORRECT, UNLABELLED, ParsedSolution, ParsedStep, Parser, question_key
from .errors import show

KNOWN = {"id", "generator", "problem", "steps", "final_answer_correct", "label"}


class ProcessBenchParser(Parser):
    fmt = "processbench"

    @classmethod
    def matches(cls, record: dict[str, Any]) -> bool:
        return {"problem", "steps", "label"} <= record.keys() and not isinstance(record.get("label"), dict)

    def parse_record(self, loc: str, record: dict[str, Any]) -> ParsedSolution:
        source_id = self.claim_id(self.get_id(record, "id", loc), loc, "id")
        question = self.get_text(record, "problem", loc)
        texts = self.get_text_list(record, "steps", loc)
        label = record.get("label")
        last = len(texts) - 1
        if isinstance(label, bool) or not isinstance(label, int) or not -1 <= label <= last:
            got = "nothing" if "label" not in record else show(label)
            raise self.error(
                loc, "label", f"expected an integer between -1 and {last} (number of steps - 1), got {got}"
            )
        if label == -1:
            steps = [ParsedStep(t, CORRECT) for t in texts]
        else:
            steps = [
                ParsedStep(t, CORRECT if i < label else INCORRECT if i == label else UNLABELLED)
                for i, t in enumerate(texts)
            ]
        return ParsedSolution(
            location=loc,
            problem_key=question_key(question),
            question=question,
            source_id=source_id,
            steps=steps,
            first_error_index=label,
            generator=self.generator(record, "generator", loc),
            final_answer_correct=self.get_opt_bool(record, "final_answer_correct", loc),
            metadata={k: v for k, v in record.items() if k not in KNOWN},
        )
