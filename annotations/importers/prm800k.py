"""PRM800K (openai/prm800k), phase 1 and phase 2: one labelled trajectory per line.

Trajectory step i is `completions[chosen_completion]`, or `human_completion` (a dict
with `text` and a `rating` that may be null, or a bare string) when chosen_completion
is null. When both are null and the step has a completion rated -1 (the labeller
found the error there), the first such completion is the final, erroneous step; with
no -1 completion the trajectory ends before that step (its completions are kept in
the solution's metadata as `unchosen_completions`). Either way it must be the last step.

Raw ratings are kept in `source_rating`; labels: 1 correct, -1 incorrect, null
unlabelled, 0 per the recorded `rating0` option (default correct: "not wrong, no
progress"). The other completions of a step are its `alternatives`, labelled the same way.
"""

from __future__ import annotations

from typing import Any

from .base import ParsedSolution, ParsedStep, Parser, first_error_index, question_key
from .errors import show

TOP_LEVEL = (
    "labeler",
    "timestamp",
    "generation",
    "is_quality_control_question",
    "is_initial_screening_question",
)
PROBLEM_LEVEL_SKIP = {"problem", "ground_truth_answer"}  # stored as Problem.question / reference_answer


class PRM800KParser(Parser):
    fmt = "prm800k"
    uses_options = ("rating0",)
    derived_ids = True

    @classmethod
    def matches(cls, record: dict[str, Any]) -> bool:
        return isinstance(record.get("label"), dict) and isinstance(record.get("question"), dict)

    def _rating(self, value: Any, loc: str, field: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or value not in (-1, 0, 1):
            raise self.error(loc, field, f"expected -1, 0, 1 or null, got {show(value)}")
        return int(value)

    def _completion(self, value: Any, loc: str, field: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(loc, field, f"expected an object with 'text' and 'rating', got {show(value)}")
        rating = self._rating(value.get("rating"), loc, f"{field}.rating")
        out = {
            "text": self.text(value.get("text"), loc, f"{field}.text", allow_empty=True),
            "rating": rating,
            "label": self.rating_label(rating),
            "flagged": value.get("flagged"),
        }
        return out

    def _question(self, loc: str, record: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
        """(the question object, its problem text, its reference answer or "")."""
        q = record.get("question")
        if not isinstance(q, dict):
            raise self.error(loc, "question", f"expected an object with 'problem', got {show(q)}")
        question = self.get_text(q, "problem", loc, field="question.problem")
        reference = q.get("ground_truth_answer")
        reference = (
            ""
            if reference is None
            else self.text(str(reference), loc, "question.ground_truth_answer", allow_empty=True)
        )
        return q, question, reference

    def _label_steps(self, loc: str, record: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
        """(the label object, its raw steps)."""
        label = record.get("label")
        if not isinstance(label, dict):
            raise self.error(loc, "label", f"expected an object with 'steps', got {show(label)}")
        raw_steps = label.get("steps")
        if not isinstance(raw_steps, list):
            raise self.error(loc, "label.steps", f"expected a list, got {show(raw_steps)}")
        return label, raw_steps

    def _pick(
        self, loc: str, i: int, raw: Any, is_last: bool
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]], bool]:
        """(step i's completion, the step's other completions, whether a human wrote it). The
        completion is None when the trajectory ends before this step; then the others are
        its unchosen completions."""
        f = f"label.steps[{i}]"
        if not isinstance(raw, dict):
            raise self.error(loc, f, f"expected an object with 'completions', got {show(raw)}")
        raw_completions = raw.get("completions") or []
        if not isinstance(raw_completions, list):
            raise self.error(loc, f"{f}.completions", f"expected a list, got {show(raw_completions)}")
        completions = [
            self._completion(c, loc, f"{f}.completions[{j}]") for j, c in enumerate(raw_completions)
        ]
        chosen = raw.get("chosen_completion")
        human = raw.get("human_completion")
        if chosen is not None:
            if isinstance(chosen, bool) or not isinstance(chosen, int) or not 0 <= chosen < len(completions):
                raise self.error(
                    loc,
                    f"{f}.chosen_completion",
                    f"expected null or an index between 0 and {len(completions) - 1}, got {show(chosen)}",
                )
            return completions[chosen], completions[:chosen] + completions[chosen + 1 :], False
        if human is not None:
            if isinstance(human, str):
                human = {"text": human, "rating": None}
            return self._completion(human, loc, f"{f}.human_completion"), completions, True
        wrong = next((j for j, c in enumerate(completions) if c["rating"] == -1), None)
        if not is_last:
            raise self.error(
                loc,
                f"{f}.chosen_completion",
                "null with no human_completion, but later steps follow "
                "(only the last step may have no chosen completion)",
            )
        if wrong is None:
            return None, completions, False
        return completions[wrong], completions[:wrong] + completions[wrong + 1 :], False

    @staticmethod
    def _metadata(record: dict[str, Any], label: dict[str, Any], q: dict[str, Any]) -> dict[str, Any]:
        """The solution's metadata from the record's top level, its label and its question."""
        metadata: dict[str, Any] = {k: record.get(k) for k in TOP_LEVEL if k in record}
        for k in ("total_time", "finish_reason"):
            if k in label:
                metadata[k] = label[k]
        for k, v in q.items():
            if k.startswith("pre_generated_"):  # per solution in phase 2, not per problem
                metadata[k] = v
        return metadata

    @staticmethod
    def _source_id(record: dict[str, Any], question: str, steps: list[ParsedStep]) -> str:
        labeler, timestamp = record.get("labeler"), record.get("timestamp")
        if isinstance(labeler, str) and isinstance(timestamp, str) and labeler and timestamp:
            generation = record.get("generation")  # null in phase 1
            return f"{labeler}/{timestamp}" + ("" if generation is None else f"/{generation}")
        # no natural key: the problem and the trajectory identify it
        return "s-" + question_key(question + "\n" + "\n".join(s.text for s in steps))[2:]

    def parse_record(self, loc: str, record: dict[str, Any]) -> ParsedSolution:
        q, question, reference = self._question(loc, record)
        label, raw_steps = self._label_steps(loc, record)
        steps: list[ParsedStep] = []
        flagged: list[int] = []
        human_steps: list[int] = []
        metadata = self._metadata(record, label, q)
        for i, raw in enumerate(raw_steps):
            step, others, by_human = self._pick(loc, i, raw, is_last=i == len(raw_steps) - 1)
            if step is None:
                if others:
                    metadata["unchosen_completions"] = others
                break
            if by_human:
                human_steps.append(i)
            if step.get("flagged"):
                flagged.append(i)
            steps.append(ParsedStep(step["text"], step["label"], step["rating"], others or None))
        if flagged:
            metadata["flagged_steps"] = flagged
        if human_steps:
            metadata["human_steps"] = human_steps
        problem_metadata = {
            k: v for k, v in q.items() if k not in PROBLEM_LEVEL_SKIP and not k.startswith("pre_generated_")
        }
        return ParsedSolution(
            location=loc,
            problem_key=question_key(question),
            question=question,
            source_id=self.claim_id(self._source_id(record, question, steps), loc, "labeler"),
            steps=steps,
            first_error_index=first_error_index(s.label for s in steps),
            reference_answer=reference,
            problem_metadata=problem_metadata,
            # "solution": the labeller reached a step concluding in the correct answer.
            final_answer_correct=True if label.get("finish_reason") == "solution" else None,
            metadata=metadata,
        )
