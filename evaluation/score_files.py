"""External step scores (any other PRM) read from a JSONL file: every error names the
file, the line and the field, and a bad file writes nothing."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from annotations.models import Dataset, Solution


class ScoreFileError(ValueError):
    """A bad external scores file: names the file, the line and the field."""

    def __init__(self, file: str, line: int | None, field: str | None, message: str) -> None:
        self.file, self.line, self.field, self.message = file, line, field, message
        where = file + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}")


# source id -> [(solution pk, n_steps, dataset name)]
SolutionsById = dict[str, list[tuple[int, int, str]]]


def read_external_scores(
    path: str | Path, datasets: list[Dataset], display_name: str | None = None
) -> dict[int, list[float]]:
    """Parse and validate a JSONL file of `{"id": <solution source id>, "step_scores": [...]}`.

    Returns {solution pk: step scores}. Every solution of the datasets must be scored
    exactly once, with one finite score in [0, 1] per step; an optional "dataset" key
    (name) disambiguates ids shared by several datasets.
    """
    file = display_name or Path(path).name
    by_id: SolutionsById = defaultdict(list)
    names = {d.id: d.name for d in datasets}
    for pk, source_id, n_steps, ds in Solution.objects.filter(dataset__in=datasets).values_list(
        "id", "source_id", "n_steps", "dataset_id"
    ):
        by_id[source_id].append((pk, n_steps, names[ds]))
    out: dict[int, list[float]] = {}
    seen_line: dict[int, int] = {}
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise ScoreFileError(file, None, None, f"cannot be read ({exc.strerror})") from exc
    with handle:
        try:
            for line_no, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                record = _record(file, line_no, line)
                pk, n_steps = _solution_of(file, line_no, record, by_id, seen_line, list(names.values()))
                out[pk] = _step_scores(file, line_no, record, n_steps)
                seen_line[pk] = line_no
        except UnicodeDecodeError as exc:
            raise ScoreFileError(file, None, None, f"not UTF-8 text ({exc.reason})") from None
    missing = [(sid, m[2]) for sid, ms in by_id.items() for m in ms if m[0] not in out]
    if missing:
        first = ", ".join(f"{s!r}" for s, _ in missing[:3])
        raise ScoreFileError(file, None, "id", f"{len(missing)} solution(s) have no scores (e.g. {first})")
    if not out:
        raise ScoreFileError(file, None, None, "the file holds no scores")
    return out


def _record(file: str, line_no: int, line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ScoreFileError(file, line_no, None, f"not valid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise ScoreFileError(file, line_no, None, "expected a JSON object")
    return record


def _solution_of(
    file: str,
    line_no: int,
    record: dict[str, Any],
    by_id: SolutionsById,
    seen_line: dict[int, int],
    dataset_names: list[str],
) -> tuple[int, int]:
    """(pk, n_steps) of the one solution the record's id (and optional dataset) names."""
    sid = record.get("id")
    if isinstance(sid, bool) or not isinstance(sid, str | int) or sid == "":
        raise ScoreFileError(file, line_no, "id", "expected the solution's source id (string)")
    matches = by_id.get(str(sid), [])
    if "dataset" in record:
        matches = [m for m in matches if m[2] == record["dataset"]]
    if not matches:
        raise ScoreFileError(file, line_no, "id", f"no solution {sid!r} in {', '.join(dataset_names)}")
    if len(matches) > 1:
        raise ScoreFileError(file, line_no, "id", f'{sid!r} is in several datasets; add a "dataset" key')
    pk, n_steps, _ = matches[0]
    if pk in seen_line:
        raise ScoreFileError(file, line_no, "id", f"{sid!r} already scored on line {seen_line[pk]}")
    return pk, n_steps


def _step_scores(file: str, line_no: int, record: dict[str, Any], n_steps: int) -> list[float]:
    scores = record.get("step_scores")
    if not isinstance(scores, list):
        raise ScoreFileError(file, line_no, "step_scores", "expected a list of numbers")
    if len(scores) != n_steps:
        raise ScoreFileError(
            file, line_no, "step_scores", f"{len(scores)} scores for a solution of {n_steps} steps"
        )
    for i, s in enumerate(scores):
        if isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s) or not 0 <= s <= 1:
            raise ScoreFileError(
                file, line_no, f"step_scores[{i}]", f"expected a number in [0, 1], got {json.dumps(s)}"
            )
    return [float(s) for s in scores]
