"""R-PRM step rows: `id, origin_id, question, previous_steps, now_step, label`.

One row judges one step; the rows of one `origin_id` are regrouped into a solution:
its steps are the longest `previous_steps + [now_step]` seen, each row labels the
step at position len(previous_steps). A row whose now_step differs from the
trajectory's step there is an alternative for that position. Steps no row judges
stay unlabelled. Rows of one origin must agree (question, previous steps, label).

Memory stays bounded because a group is flushed when the origin changes: the rows of
one origin must be contiguous (sort the file by origin_id otherwise); an origin that
reappears later is an error naming both lines.

`previous_steps` is a list of strings or the `Step i: <text>` lines of the R-PRM prompt
(a "no previous steps" statement, or empty text, means none). Labels may be booleans,
1/0, "Yes"/"No", "+"/"-", "Positive"/"Negative" or "correct"/"incorrect". The R-PRM
repository's own spellings `query`, `previous-steps`, `now-step`, `expert-judge` are
accepted for the same fields.

Integer labels: the authors' ProcessBench step rows (their ``*_filtered.json``) carry
the *solution's* first-error index in ``label`` (0-based, -1 when every step is right),
repeated on each of its rows, and the rows stop at the first wrong step. An origin
whose integer labels are all equal to L, with L = -1 or L = its last judged position,
is read that way: steps before L correct, step L incorrect. Other integer labels are
per-step 1/0. (The one overlap, two rows both labelled 1, is read as the authors'
first-error index: step 2 wrong.) Anything else with integers is refused with a
message saying what such a file is and which importer fits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from .base import (
    CORRECT,
    INCORRECT,
    UNLABELLED,
    ParsedSolution,
    ParsedStep,
    Parser,
    first_error_index,
    question_key,
)
from .errors import show

ALIASES = {
    "question": "query",
    "previous_steps": "previous-steps",
    "now_step": "now-step",
    "label": "expert-judge",
}
KNOWN = {"id", "origin_id", *ALIASES, *ALIASES.values()}
LABELS: dict[Any, str] = {
    "yes": CORRECT, "no": INCORRECT, "+": CORRECT, "-": INCORRECT, "1": CORRECT, "0": INCORRECT,
    "positive": CORRECT, "negative": INCORRECT, "correct": CORRECT, "incorrect": INCORRECT,
    "true": CORRECT, "false": INCORRECT,
}  # fmt: skip
STEP_LINE = re.compile(r"^Step (\d+):[ \t]?", re.MULTILINE)


class _Row:
    __slots__ = ("loc", "row_id", "question", "previous", "now", "label")

    def __init__(
        self, loc: str, row_id: str, question: str, previous: list[str], now: str, label: str | int
    ) -> None:
        self.loc, self.row_id, self.question = loc, row_id, question
        self.previous, self.now, self.label = previous, now, label


class RPRMStepsParser(Parser):
    fmt = "rprm_steps"

    @classmethod
    def matches(cls, record: dict[str, Any]) -> bool:
        return ("now_step" in record or "now-step" in record) and "origin_id" in record

    def _get(self, record: dict[str, Any], key: str) -> tuple[str, Any]:
        if key not in record and ALIASES[key] in record:
            return ALIASES[key], record[ALIASES[key]]
        return key, record.get(key)

    def _label(self, value: Any, loc: str, field: str) -> str:
        if isinstance(value, bool):
            return CORRECT if value else INCORRECT
        key = value if isinstance(value, int) else value.strip().lower() if isinstance(value, str) else None
        label = LABELS.get(str(key)) if key is not None else None
        if label is None:
            raise self.error(
                loc,
                field,
                f"expected a yes/no label (true/false, 1/0, Yes/No, +/-, Positive/Negative), got {show(value)}",
            )
        return label

    def _previous(self, value: Any, loc: str, field: str) -> list[str]:
        if isinstance(value, list):
            return [self.text(v, loc, f"{field}[{i}]", allow_empty=True) for i, v in enumerate(value)]
        text = self.text(value, loc, field, allow_empty=True)
        parts = STEP_LINE.split(text)
        # parts = [preamble, "1", text1, "2", text2, ...]
        if len(parts) == 1:
            if not text.strip() or "no previous step" in text.lower():
                return []
            raise self.error(loc, field, f"expected a list or 'Step i: ...' lines, got {show(text)}")
        steps = []
        for n, i in enumerate(range(1, len(parts), 2), 1):
            if int(parts[i]) != n:
                raise self.error(loc, field, f"expected 'Step {n}:' but found 'Step {parts[i]}:'")
            steps.append(parts[i + 1].rstrip("\n"))
        return steps

    def _row(self, loc: str, record: dict[str, Any]) -> tuple[str, _Row]:
        origin = self.get_id(record, "origin_id", loc)
        row_id = str(record.get("id", ""))
        qkey, question = self._get(record, "question")
        question = self.text(question, loc, qkey)
        pkey, previous = self._get(record, "previous_steps")
        if previous is None:
            previous = []
        previous = self._previous(previous, loc, pkey)
        nkey, now = self._get(record, "now_step")
        now = self.text(now, loc, nkey, allow_empty=True)
        m = STEP_LINE.match(now)
        if m and int(m.group(1)) == len(previous) + 1:  # "Step k: ..." as in the prompt
            now = now[m.end() :]
        lkey, label = self._get(record, "label")
        if lkey not in record:
            raise self.error(loc, "label", "is missing")
        if isinstance(label, int) and not isinstance(label, bool):
            return origin, _Row(loc, row_id, question, previous, now, label)  # resolved per origin
        return origin, _Row(loc, row_id, question, previous, now, self._label(label, loc, lkey))

    def parse(self, records: Iterable[tuple[str, Any]]) -> Iterator[ParsedSolution]:
        done: dict[str, str] = {}  # origin → location of its first row, to catch non-contiguous origins
        origin: str | None = None
        group: list[_Row] = []
        for loc, record in records:
            key, row = self._row(loc, self.as_object(loc, record))
            if key != origin:
                if group:
                    yield self._solution(origin, group)
                if key in done:
                    raise self.error(
                        loc,
                        "origin_id",
                        f"rows of origin {show(key)} are not contiguous (its group started at {done[key]} "
                        "and was already closed); sort the file by origin_id",
                    )
                origin, group = key, []
                done[key] = loc
            group.append(row)
        if group:
            yield self._solution(origin, group)

    def _integer_labels(self, origin: str, rows: list[_Row]) -> str | None:
        """Resolve integer labels in place; returns "first_error_index" when read that way."""
        ints = [r for r in rows if isinstance(r.label, int) and not isinstance(r.label, bool)]
        if not ints:
            return None
        values = {r.label for r in ints}
        last = max(len(r.previous) for r in rows)
        if len(ints) == len(rows) and len(values) == 1:
            (first_error,) = values
            if first_error == -1 or first_error == last:
                for r in rows:
                    k = len(r.previous)
                    r.label = INCORRECT if k == first_error else CORRECT
                return "first_error_index"
        if values <= {0, 1}:
            for r in ints:
                r.label = CORRECT if r.label == 1 else INCORRECT
            return None
        odd = next(r for r in ints if r.label not in (0, 1))
        raise self.error(
            odd.loc,
            "label",
            f"integer {odd.label} on origin {show(origin)} fits neither reading: in the R-PRM authors' "
            "*_filtered.json step rows `label` is the solution's first-error index (0-based, -1 = no error), "
            "the same on every row of the origin, and the rows stop at that step; per-step labels are 1/0 "
            "(or Yes/No). The original ProcessBench file (id, problem, steps, label) imports with the "
            "processbench format",
        )

    def _solution(self, origin: str | None, rows: list[_Row]) -> ParsedSolution:
        assert origin is not None
        reading = self._integer_labels(origin, rows)
        first = rows[0]
        longest = max(rows, key=lambda r: len(r.previous))
        texts = [*longest.previous, longest.now]
        labels = [UNLABELLED] * len(texts)
        labelled_by: list[_Row | None] = [None] * len(texts)
        alternatives: list[list[dict[str, Any]]] = [[] for _ in texts]
        for row in rows:
            k = len(row.previous)
            if row.question != first.question:
                raise self.error(
                    row.loc, "question", f"differs from the question of origin {show(origin)} at {first.loc}"
                )
            for i, (mine, theirs) in enumerate(zip(row.previous, texts, strict=False)):
                if mine != theirs:
                    raise self.error(
                        row.loc,
                        "previous_steps",
                        f"step {i + 1} differs from step {i + 1} of origin {show(origin)} as given at {longest.loc}",
                    )
            if row.now != texts[k]:
                alternatives[k].append({"text": row.now, "label": row.label, "row_id": row.row_id})
                continue
            other = labelled_by[k]
            if other is not None and other.label != row.label:
                raise self.error(
                    row.loc,
                    "label",
                    f"{show(row.label)} contradicts {show(other.label)} at {other.loc} for step {k + 1} of origin {show(origin)}",
                )
            assert isinstance(row.label, str)  # _integer_labels resolved the integers
            labels[k], labelled_by[k] = row.label, row
        steps = [
            ParsedStep(t, lab, None, alt or None)
            for t, lab, alt in zip(texts, labels, alternatives, strict=True)
        ]
        return ParsedSolution(
            location=first.loc,
            problem_key=question_key(first.question),
            question=first.question,
            source_id=self.claim_id(origin, first.loc, "origin_id"),
            steps=steps,
            first_error_index=first_error_index(labels),
            metadata={"row_ids": [r.row_id for r in rows], "prompt_question": first.question}
            | ({"label_reading": reading} if reading else {}),
        )
