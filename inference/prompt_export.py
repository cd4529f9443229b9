"""Every step's critique prompt of a dataset as JSONL, for a teacher run elsewhere.

One line per step: ``{"solution": <source id>, "step": <1-based>, "messages": [...]}``
for a chat template (system if any, few-shot pairs, user: what the authors'
``inference.py`` passes to ``apply_chat_template``), or ``"prompt": <text>`` for a
non-chat template. A vLLM batch job applies the model's chat template to
``messages``; its critiques come back with ``import_critiques`` (which accepts the
``solution``/``step`` keys as they are).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from annotations.models import Dataset, Solution, Step

from .core.prompts import question_for_prompt
from .models import PromptTemplate


class ExportError(ValueError):
    pass


def find_template(spec: str) -> PromptTemplate:
    """``NAME`` (latest version) or ``NAME@VERSION``."""
    name, _, version = spec.partition("@")
    qs = PromptTemplate.objects.filter(name=name)
    if version:
        if not version.isdigit():
            raise ExportError(f"template {spec!r}: the version after '@' must be a number")
        found = qs.filter(version=int(version)).first()
    else:
        found = qs.order_by("-version").first()
    if found is None:
        known = ", ".join(str(t) for t in PromptTemplate.objects.filter(name=name)) or "none"
        raise ExportError(f"no template {spec!r} (versions of {name!r}: {known})")
    return found


def step_rows(dataset: Dataset, template: PromptTemplate, through_first_error: bool = False) -> Iterator[dict]:
    """The export rows in solution then step order.

    ``through_first_error``: only the steps up to and including a solution's first
    wrong one, as in the authors' ProcessBench step rows (rows stop at the first error).
    """
    core = template.to_core()
    solutions = Solution.objects.filter(dataset=dataset).select_related("problem").order_by("id")
    for solution in solutions.iterator(chunk_size=200):
        texts = list(Step.objects.filter(solution=solution).order_by("index").values_list("text", flat=True))
        last = len(texts)
        if through_first_error and solution.first_error_index is not None and solution.first_error_index >= 0:
            last = min(last, solution.first_error_index + 1)
        question = question_for_prompt(solution.problem.question, solution.metadata)
        for k in range(last):
            row: dict = {"solution": solution.source_id, "step": k + 1}
            prompt = core.render(question, texts[:k], texts[k])
            row["messages" if core.chat else "prompt"] = prompt
            yield row


def export_prompts(
    dataset: Dataset, template: PromptTemplate, out: str | Path, *, through_first_error: bool = False
) -> int:
    """Write the rows to ``out`` (atomically: a failed export leaves no partial file)."""
    out = Path(out)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for row in step_rows(dataset, template, through_first_error):
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n
