"""PRMBench: `modified_process` labelled by `error_steps` (1-based), one class per item.

Steps listed in error_steps are incorrect, the others correct; `classification`
maps one-to-one to an ErrorType slug (PRMBench's own spelling, e.g. `redundency`).
The problem is `modified_question`, as the official PRMBench loader uses it (a
perturbation such as missing_condition or counterfactual may change the question
itself), so a perturbed question is its own problem, identified by its text like every
format without problem ids; `question` only when an item has no `modified_question`. `idx` is not unique (one idx per perturbed source
solution, several classes each), so the solution id is `idx/classification`.
Everything else (original_process, original_question, question, reason,
modified_steps, the raw error_steps, extra keys) is kept in the solution's metadata.

Importer version 2 (`modified_question`) records itself in the import options, so a
file imported by version 1 (which took `question` first) imports again, as a new
dataset, instead of being skipped as already imported.

Some published items list an error step past the end of modified_process; such a step
cannot be labelled, so it is reported as a warning (and kept in metadata), not an error.
"""

from __future__ import annotations

from typing import Any

from ..taxonomy import ERROR_TYPES
from .base import CORRECT, INCORRECT, ParsedSolution, ParsedStep, Parser, question_key
from .errors import show

CLASSES = tuple(row["slug"] for row in ERROR_TYPES)
USED = {"modified_process", "error_steps", "classification", "idx", "modified_question"}
IMPORTER_VERSION = 2


class PRMBenchParser(Parser):
    fmt = "prmbench"
    derived_ids = True

    @classmethod
    def normalize_options(cls, options: dict[str, Any] | None, file_name: str = "options") -> dict[str, Any]:
        given = {k: v for k, v in (options or {}).items() if k != "importer_version"}
        return {**super().normalize_options(given, file_name), "importer_version": IMPORTER_VERSION}

    @classmethod
    def matches(cls, record: dict[str, Any]) -> bool:
        return {"modified_process", "error_steps"} <= record.keys()

    def parse_record(self, loc: str, record: dict[str, Any]) -> ParsedSolution:
        idx = self.get_id(record, "idx", loc)
        if record.get("modified_question") is not None:
            question = self.get_text(record, "modified_question", loc)
        else:
            question = self.get_text(record, "question", loc)
        texts = self.get_text_list(record, "modified_process", loc)
        classification = record.get("classification")
        if classification not in CLASSES:
            raise self.error(
                loc, "classification", f"expected one of {', '.join(CLASSES)}, got {show(classification)}"
            )
        error_steps = record.get("error_steps")
        if not isinstance(error_steps, list) or any(
            isinstance(e, bool) or not isinstance(e, int) or e < 1 for e in error_steps
        ):
            raise self.error(
                loc, "error_steps", f"expected a list of 1-based step numbers, got {show(error_steps)}"
            )
        wrong = {e - 1 for e in error_steps}
        beyond = sorted(e for e in error_steps if e > len(texts))
        if beyond:
            self.warn(
                loc,
                "error_steps",
                f"step(s) {beyond} past the last step ({len(texts)}) of modified_process; not labelled",
            )
        steps = [ParsedStep(t, INCORRECT if i in wrong else CORRECT) for i, t in enumerate(texts)]
        in_range = [e - 1 for e in error_steps if e <= len(texts)]
        return ParsedSolution(
            location=loc,
            problem_key=question_key(question),
            question=question,
            source_id=self.claim_id(f"{idx}/{classification}", loc, "idx"),
            steps=steps,
            first_error_index=min(in_range) if in_range else -1,
            error_type=classification,
            metadata={
                "idx": idx,
                # The exact text the model sees (problems are matched on stripped text).
                "prompt_question": question,
                "error_steps": error_steps,
                **{k: v for k, v in record.items() if k not in USED},
            },
        )
