"""The project's own JSONL format (docs/formats.md), for data from anywhere else.

`{"id", "question", "steps": [str], "labels"?: [1|0|-1|true|false|null],
"reference_answer"?, "generator"?, "final_answer_correct"?, "metadata"?: {}}`.
Labels are ratings as in PRM800K: 1/true correct, -1/false incorrect, null
unlabelled, 0 per the recorded `rating0` option. Unknown top-level keys are an error
(a misspelt "label" would otherwise import everything unlabelled): extra data goes in
`metadata`.
"""

from __future__ import annotations

from typing import Any

from .base import ParsedSolution, ParsedStep, Parser, first_error_index, question_key
from .errors import show

KNOWN = (
    "id",
    "question",
    "steps",
    "labels",
    "reference_answer",
    "generator",
    "final_answer_correct",
    "metadata",
)


class GenericParser(Parser):
    fmt = "generic"
    uses_options = ("rating0",)

    @classmethod
    def matches(cls, record: dict[str, Any]) -> bool:
        return {"id", "question", "steps"} <= record.keys()

    def parse_record(self, loc: str, record: dict[str, Any]) -> ParsedSolution:
        for key in record:
            if key not in KNOWN:
                raise self.error(
                    loc, key, f"unknown field (allowed: {', '.join(KNOWN)}); put extra data under 'metadata'"
                )
        source_id = self.claim_id(self.get_id(record, "id", loc), loc, "id")
        question = self.get_text(record, "question", loc)
        texts = self.get_text_list(record, "steps", loc)
        raw_labels = record.get("labels")
        if raw_labels is None:
            raw_labels = [None] * len(texts)
        elif not isinstance(raw_labels, list) or len(raw_labels) != len(texts):
            raise self.error(
                loc,
                "labels",
                f"expected a list of {len(texts)} labels (one per step), got {show(raw_labels)}",
            )
        steps = []
        for i, (text, raw) in enumerate(zip(texts, raw_labels, strict=True)):
            if isinstance(raw, bool):
                rating: int | None = 1 if raw else -1
            elif raw is None or (isinstance(raw, int) and raw in (-1, 0, 1)):
                rating = raw
            else:
                raise self.error(
                    loc, f"labels[{i}]", f"expected 1, 0, -1, true, false or null, got {show(raw)}"
                )
            steps.append(ParsedStep(text, self.rating_label(rating), rating))
        metadata = record.get("metadata")
        metadata = {} if metadata is None else metadata
        if not isinstance(metadata, dict):
            raise self.error(loc, "metadata", f"expected an object, got {show(metadata)}")
        reference = record.get("reference_answer")
        return ParsedSolution(
            location=loc,
            problem_key=question_key(question),
            question=question,
            source_id=source_id,
            steps=steps,
            first_error_index=first_error_index(s.label for s in steps),
            reference_answer=""
            if reference is None
            else self.text(str(reference), loc, "reference_answer", allow_empty=True),
            generator=self.generator(record, "generator", loc),
            final_answer_correct=self.get_opt_bool(record, "final_answer_correct", loc),
            metadata=metadata,
        )
