"""External step scores (any other PRM) read from a JSONL file: every error names the
file, the line and the field, and a bad file writes nothing."""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from pathlib import Path

from annotations.models import Dataset, Solution


class ScoreFileError(ValueError):
    """A bad external scores file: names the file, the line and the field."""

    def __init__(self, file: str, line: int | None, field: str | None, message: str) -> None:
        self.file, self.line, self.field, self.message = file, line, field, message
        where = file + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}")


def _sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_external_scores(
    path: str | Path, datasets: list[Dataset], display_name: str | None = None
) -> dict[int, list[float]]:
    """Parse and validate a JSONL file of `{"id": <solution source id>, "step_scores": [...]}`.

    Returns {solution pk: step scores}. Every solution of the datasets must be scored
    exactly once, with one finite score in [0, 1] per step; an optional "dataset" key
    (name) disambiguates ids shared by several datasets.
    """
    file = display_name or Path(path).name
    by_id: dict[str, list[tuple[int, int, str]]] = defaultdict(list)  # source id -> [(pk, n_steps, dataset)]
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
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ScoreFileError(file, line_no, None, f"not valid JSON ({exc.msg})") from None
                if not isinstance(record, dict):
                    raise ScoreFileError(file, line_no, None, "expected a JSON object")
                sid = record.get("id")
                if isinstance(sid, bool) or not isinstance(sid, str | int) or sid == "":
                    raise ScoreFileError(file, line_no, "id", "expected the solution's source id (string)")
                matches = by_id.get(str(sid), [])
                if "dataset" in record:
                    matches = [m for m in matches if m[2] == record["dataset"]]
                if not matches:
                    raise ScoreFileError(
                        file, line_no, "id", f"no solution {sid!r} in {', '.join(names.values())}"
                    )
                if len(matches) > 1:
                    raise ScoreFileError(
                        file, line_no, "id", f'{sid!r} is in several datasets; add a "dataset" key'
                    )
                pk, n_steps, _ = matches[0]
                if pk in seen_line:
                    raise ScoreFileError(
                        file, line_no, "id", f"{sid!r} already scored on line {seen_line[pk]}"
                    )
                scores = record.get("step_scores")
                if not isinstance(scores, list):
                    raise ScoreFileError(file, line_no, "step_scores", "expected a list of numbers")
                if len(scores) != n_steps:
                    raise ScoreFileError(
                        file,
                        line_no,
                        "step_scores",
                        f"{len(scores)} scores for a solution of {n_steps} steps",
                    )
                for i, s in enumerate(scores):
                    if (
                        isinstance(s, bool)
                        or not isinstance(s, int | float)
                        or not math.isfinite(s)
                        or not 0 <= s <= 1
                    ):
                        raise ScoreFileError(
                            file,
                            line_no,
                            f"step_scores[{i}]",
                            f"expected a number in [0, 1], got {json.dumps(s)}",
                        )
                out[pk] = [float(s) for s in scores]
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
