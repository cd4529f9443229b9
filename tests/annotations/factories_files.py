"""Small hand-made files in every import format, written into a test's tmp_path.

Each `*_row` builds one record with sensible defaults; each `write_*` writes rows (a
default handful when none are given) and returns the path.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def write_jsonl(path: Path, rows: Iterable[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def write_json_array(path: Path, rows: Iterable[Any], indent: int | None = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(rows), indent=indent), encoding="utf-8")
    return path


def gzipped(path: Path) -> Path:
    target = path.with_name(path.name + ".gz")
    with open(path, "rb") as src, gzip.open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return target


# -- ProcessBench ---------------------------------------------------------------------
def processbench_row(
    rid: str, label: int = -1, n_steps: int = 3, problem: str = "What is 2 + 3?", **extra: Any
) -> dict:
    return {
        "id": rid,
        "generator": "Qwen2-7B-Instruct",
        "problem": problem,
        "steps": [f"{rid} step {i + 1}: 2 + 3 = 5." for i in range(n_steps)],
        "final_answer_correct": label == -1,
        "label": label,
        **extra,
    }


def write_processbench(path: Path, rows: list[dict] | None = None) -> Path:
    rows = rows or [
        processbench_row("pb-0", -1),
        processbench_row("pb-1", 1, n_steps=4),
        processbench_row("pb-2", 0, problem="What is 7 * 6?"),
    ]
    return write_json_array(path, rows)


# -- PRM800K --------------------------------------------------------------------------
def completion(text: str, rating: int | None = 1, flagged: bool | None = None) -> dict:
    return {"text": text, "rating": rating, "flagged": flagged}


def prm_step(completions: list[dict], chosen: int | None = 0, human: Any = None) -> dict:
    return {"completions": completions, "human_completion": human, "chosen_completion": chosen}


def prm800k_row(
    steps: list[dict] | None = None,
    *,
    problem: str = "What is the greatest common factor of 12 and 18?",
    labeler: str = "labeler-1",
    timestamp: str = "2023-01-22T04:34:27.052924",
    generation: int | None = 9,
    finish_reason: str = "found_error",
) -> dict:
    if steps is None:
        steps = [
            prm_step([completion("Factor 12 = 2^2 * 3.", 1)]),
            prm_step([completion("Factor 18 = 2 * 3^2.", 0)]),
            prm_step(
                [
                    completion("So the GCF is 3.", -1),
                    completion("So the GCF is 6.", 1),
                    completion("Hmm.", 0),
                ],
                chosen=None,
            ),
        ]
    return {
        "labeler": labeler,
        "timestamp": timestamp,
        "generation": generation,
        "is_quality_control_question": False,
        "is_initial_screening_question": False,
        "question": {
            "problem": problem,
            "ground_truth_solution": "12 = 2^2 3 and 18 = 2 3^2, so the GCF is 6.",
            "ground_truth_answer": "6",
            "pre_generated_steps": ["Factor 12 = 2^2 * 3.", "Factor 18 = 2 * 3^2.", "So the GCF is 3."],
            "pre_generated_answer": "3",
            "pre_generated_verifier_score": 0.01,
        },
        "label": {"steps": steps, "total_time": 278270, "finish_reason": finish_reason},
    }


def write_prm800k(path: Path, rows: list[dict] | None = None) -> Path:
    rows = rows or [
        prm800k_row(),
        prm800k_row(
            [
                prm_step([completion("Factor 12.", 1)]),
                prm_step(
                    [completion("Wrong.", -1)], chosen=None, human={"text": "Factor 18.", "rating": None}
                ),
                prm_step([completion("The GCF is 6.", 1)]),
            ],
            timestamp="2023-01-23T00:00:00",
            finish_reason="solution",
        ),
    ]
    return write_jsonl(path, rows)


# -- PRMBench -------------------------------------------------------------------------
def prmbench_row(idx: str, classification: str = "confidence", error_steps: list[int] | None = None,
                 n_steps: int = 4, question: str = "Compute $58_9 - 18_9$.", **extra: Any) -> dict:  # fmt: skip
    error_steps = [2, 3] if error_steps is None else error_steps
    process = [f"{idx} step {i + 1}." for i in range(n_steps)]
    return {
        "original_question": question,
        "modified_question": question,
        "original_process": process,
        "modified_process": [
            p + (" (modified)" if i + 1 in error_steps else "") for i, p in enumerate(process)
        ],
        "modified_steps": error_steps,
        "error_steps": error_steps,
        "reason": "Steps 2 and 3 state a wrong result with confidence.",
        "idx": idx,
        "question": question,
        "classification": classification,
        **extra,
    }


def write_prmbench(path: Path, rows: list[dict] | None = None) -> Path:
    rows = rows or [
        prmbench_row("prm_test_p1_0", "confidence", [2, 3]),
        prmbench_row("prm_test_p1_0", "redundency", [4]),
        prmbench_row("prm_test_p1_2", "multi_solutions", [], question="What is 1 + 1?"),
    ]
    return write_jsonl(path, rows)


# -- R-PRM step rows --------------------------------------------------------------------
def rprm_rows(origin: str, steps: list[str], labels: list[Any], question: str = "What is 2 + 3?",
              as_text: bool = False) -> list[dict]:  # fmt: skip
    """One row per labelled step (label None = no row for that step)."""
    rows = []
    for k, (now, label) in enumerate(zip(steps, labels, strict=True)):
        if label is None:
            continue
        previous: Any = steps[:k]
        if as_text:
            previous = "\n".join(f"Step {i + 1}: {s}" for i, s in enumerate(previous)) or (
                "Since the Now Step is the first step, there are no Previous Steps."
            )
        rows.append({"id": f"{origin}-{k}", "origin_id": origin, "question": question,
                     "previous_steps": previous, "now_step": now, "label": label})  # fmt: skip
    return rows


def write_rprm_steps(path: Path, rows: list[dict] | None = None) -> Path:
    rows = rows or [
        *rprm_rows("o1", ["2 + 3 = 5.", "So the answer is 5."], ["Yes", "Yes"]),
        *rprm_rows("o2", ["2 + 3 = 6.", "So the answer is 6."], [True, False], question="What is 2 + 4?"),
    ]
    return write_jsonl(path, rows)


# -- generic --------------------------------------------------------------------------------
def generic_row(rid: str, labels: list[Any] | None = None, n_steps: int = 3, **extra: Any) -> dict:
    row: dict[str, Any] = {
        "id": rid,
        "question": "What is 10 / 4?",
        "steps": [f"{rid} step {i + 1}." for i in range(n_steps)],
        "reference_answer": "2.5",
        "generator": "my-model",
        **extra,
    }
    if labels is not None:
        row["labels"] = labels
    return row


def write_generic(path: Path, rows: list[dict] | None = None) -> Path:
    rows = rows or [generic_row("g-0", [1, 1, 1]), generic_row("g-1", [1, 0, -1]), generic_row("g-2")]
    return write_jsonl(path, rows)


def row_counts() -> dict[str, int]:
    """Rows an import writes, to check that a failed import wrote nothing."""
    from annotations.models import Dataset, Problem, Solution, Step

    return {m.__name__: m.objects.count() for m in (Dataset, Problem, Solution, Step)}
