"""Import critiques written elsewhere (an offline `vllm serve` job, another team's
teacher, the quickstart's hand-written demo teacher) as a finished run.

One JSON object per line: ``{"solution_id": <solution source id>, "step_index":
<0-based>, "sample_index": <int, optional: order of appearance>, "text": <critique>,
"p_yes": <float, optional>}``. The keys of an ``export_prompts`` line, ``"solution"`` and
``"step"`` (1-based), are accepted instead, so a batch job can copy them through. The verdict and sections are parsed here exactly as
for generated critiques. The import is one transaction; a bad line is refused with
file, line and field, and nothing is written. The same file for the same dataset
imports once.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, NamedTuple

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from annotations.models import Dataset, Step
from rprm_web import runs

from .actions import default_template
from .core.backends.base import Completion
from .core.text import repair
from .models import Critique, GenerationRun, ModelEndpoint, PromptTemplate
from .runner import build_critique, summarise


class CritiqueImportError(ValueError):
    pass


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _Row(NamedTuple):
    """One validated line: the step's (solution source id, index), its sample index if given."""

    key: tuple[str, int]
    sample: int | None
    text: str
    p_yes: float | None
    line_no: int


def _parse_line(line: str, where: str) -> dict[str, Any]:
    """The line's JSON object, with an export_prompts line's keys mapped to ours."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CritiqueImportError(f"{where}: not valid JSON ({exc.msg})") from exc
    if not isinstance(obj, dict):
        raise CritiqueImportError(f"{where}: expected a JSON object")
    if "solution_id" not in obj and "step_index" not in obj and "solution" in obj and "step" in obj:
        # An export_prompts line carried through: 1-based "step".
        step = obj["step"]
        if not isinstance(step, int) or isinstance(step, bool) or step < 1:
            raise CritiqueImportError(f"{where}: field 'step': expected an integer >= 1")
        obj = {**obj, "solution_id": obj["solution"], "step_index": step - 1}
    return obj


def _validate(
    obj: dict[str, Any], where: str, line_no: int, dataset: Dataset, steps: dict[tuple[str, int], Step]
) -> _Row:
    for field, kind in (("solution_id", (str, int)), ("step_index", int), ("text", str)):
        if not isinstance(obj.get(field), kind) or isinstance(obj.get(field), bool):
            raise CritiqueImportError(f"{where}: field '{field}': missing or of the wrong type")
    key = (str(obj["solution_id"]), obj["step_index"])
    if key not in steps:
        raise CritiqueImportError(
            f"{where}: field 'step_index': dataset {dataset.name!r} has no step {key[1]} in solution {key[0]!r}"
        )
    p_yes = obj.get("p_yes")
    if p_yes is not None and (not isinstance(p_yes, int | float) or not 0 <= p_yes <= 1):
        raise CritiqueImportError(f"{where}: field 'p_yes': expected a number in [0, 1]")
    sample = obj.get("sample_index")
    if sample is not None and (not isinstance(sample, int) or sample < 0):
        raise CritiqueImportError(f"{where}: field 'sample_index': expected an integer >= 0")
    return _Row(key, sample, obj["text"], p_yes, line_no)


def _read_rows(path: Path, dataset: Dataset, steps: dict[tuple[str, int], Step]) -> list[_Row]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path.name}: line {line_no}"
            rows.append(_validate(_parse_line(line, where), where, line_no, dataset, steps))
    if not rows:
        raise CritiqueImportError(f"{path.name}: no critiques in the file")
    return rows


def _build_critiques(
    run: GenerationRun, rows: list[_Row], steps: dict[tuple[str, int], Step], file_name: str
) -> tuple[list[Critique], int]:
    """The critiques and the run's samples per step; a sample index seen twice is refused."""
    next_sample: dict[tuple[str, int], int] = defaultdict(int)
    seen: set[tuple[tuple[str, int], int]] = set()
    critiques = []
    for row in rows:
        index = row.sample if row.sample is not None else next_sample[row.key]
        next_sample[row.key] = max(next_sample[row.key], index + 1)
        if (row.key, index) in seen:
            raise CritiqueImportError(
                f"{file_name}: line {row.line_no}: field 'sample_index': sample {index} of this step appears twice"
            )
        seen.add((row.key, index))
        completion = Completion(
            text=row.text,
            prompt_tokens=0,
            completion_tokens=len(row.text.split()),
            p_yes=row.p_yes,
            p_yes_source="imported" if row.p_yes is not None else None,
        )
        critiques.append(build_critique(run, steps[row.key], index, completion))
    return critiques, max(next_sample.values())


def import_critiques(
    path: str | Path,
    *,
    dataset: Dataset,
    model_name: str,
    template: PromptTemplate | None = None,
    user: User | None = None,
) -> tuple[GenerationRun, bool]:
    """Returns (run, created). `model_name` names the endpoint the critiques are credited to."""
    path = Path(path)
    sha = _sha256(path)
    existing = GenerationRun.objects.filter(
        dataset=dataset, kind=GenerationRun.Kind.IMPORTED, step_filter__sha256=sha
    ).first()
    if existing:
        return existing, False
    steps = {
        (s.solution.source_id, s.index): s
        for s in Step.objects.filter(solution__dataset=dataset).select_related("solution")
    }
    rows = _read_rows(path, dataset, steps)
    endpoint, _ = ModelEndpoint.objects.get_or_create(
        name=repair(model_name),
        defaults={"backend": ModelEndpoint.Backend.RECORDED, "path_or_url": repair(path.name)},
    )
    with transaction.atomic():
        run = GenerationRun.objects.create(
            kind=GenerationRun.Kind.IMPORTED,
            dataset=dataset,
            endpoint=endpoint,
            template=template or default_template(),
            n_samples=1,
            temperature=0,
            status=GenerationRun.Status.RUNNING,
            step_filter={"imported_from": repair(path.name), "sha256": sha},
            created_by=user,
            started_at=timezone.now(),
        )
        critiques, run.n_samples = _build_critiques(run, rows, steps, path.name)
        Critique.objects.bulk_create(critiques, batch_size=1000)
        run.steps_total = run.steps_done = len({row.key for row in rows})
        run.critiques_done = len(critiques)
        run.status = GenerationRun.Status.SUCCEEDED
        run.finished_at = timezone.now()
        run.summary = summarise(run)
        run.save()
        # Review audits it (rprm_web.runs.run_finished; inference does not import review).
        runs.run_finished.send(sender=GenerationRun, run=run, status=run.status)
    return run, True
