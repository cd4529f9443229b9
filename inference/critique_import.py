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

from django.db import transaction
from django.utils import timezone

from annotations.models import Dataset, Step

from .core.backends.base import Completion
from .core.text import repair
from .models import Critique, GenerationRun, ModelEndpoint


class CritiqueImportError(ValueError):
    pass


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def import_critiques(
    path: str | Path, *, dataset: Dataset, model_name: str, template=None, user=None
) -> tuple[GenerationRun, bool]:
    """Returns (run, created). `model_name` names the endpoint the critiques are credited to."""
    from .actions import default_template
    from .runner import build_critique, summarise

    path = Path(path)
    sha = _sha256(path)
    existing = GenerationRun.objects.filter(
        dataset=dataset, kind=GenerationRun.Kind.IMPORTED, step_filter__sha256=sha
    ).first()
    if existing:
        return existing, False
    steps = {
        (sid, idx): step
        for sid, idx, step in (
            (s.solution.source_id, s.index, s)
            for s in Step.objects.filter(solution__dataset=dataset).select_related("solution")
        )
    }
    rows = []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path.name}: line {line_no}"
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
            rows.append((key, sample, obj["text"], p_yes, line_no))
    if not rows:
        raise CritiqueImportError(f"{path.name}: no critiques in the file")

    endpoint, _ = ModelEndpoint.objects.get_or_create(
        name=repair(model_name), defaults={"backend": ModelEndpoint.Backend.RECORDED, "path_or_url": repair(path.name)}
    )
    next_sample: dict[tuple, int] = defaultdict(int)
    seen: set[tuple] = set()
    now = timezone.now()
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
            started_at=now,
        )
        critiques = []
        for key, sample, text, p_yes, line_no in rows:
            index = sample if sample is not None else next_sample[key]
            next_sample[key] = max(next_sample[key], index + 1)
            if (key, index) in seen:
                raise CritiqueImportError(
                    f"{path.name}: line {line_no}: field 'sample_index': sample {index} of this step appears twice"
                )
            seen.add((key, index))
            completion = Completion(
                text=text,
                prompt_tokens=0,
                completion_tokens=len(text.split()),
                p_yes=p_yes,
                p_yes_source="imported" if p_yes is not None else None,
            )
            critiques.append(build_critique(run, steps[key], index, completion))
        Critique.objects.bulk_create(critiques, batch_size=1000)
        step_keys = {key for key, *_ in rows}
        run.n_samples = max(next_sample.values())
        run.steps_total = run.steps_done = len(step_keys)
        run.critiques_done = len(critiques)
        run.status = GenerationRun.Status.SUCCEEDED
        run.finished_at = timezone.now()
        run.summary = summarise(run)
        run.save()
        from annotations.tasks_review import queue_audit

        queue_audit(run.id)
    return run, True
