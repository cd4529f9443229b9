"""Which solutions an evaluation covers when it is limited to the first N.

"The first N" is a seeded sample stratified by label, never the first rows of the file:
ProcessBench files are ordered, and the first 8 of its math subset all hold an error,
which leaves F1 undefined (no correct solution). Each stratum (ProcessBench: with / without
an error; PRMBench: the class) gets at least one solution when N allows, the rest in
proportion to its size; within a stratum a seeded shuffle picks which. The run keeps the
chosen ids, so a resumed or retried run scores the same solutions.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, TypedDict

from annotations.models import Dataset, Solution

WITH_ERROR = "with an error"
WITHOUT_ERROR = "without an error"
UNLABELLED = "no label"


class Stratum(TypedDict):
    name: str
    available: int
    taken: int


class Selection(TypedDict):
    """What a limited run covers; stored on the run (`EvaluationRun.selection`)."""

    n: int
    seed: int
    by: str  # what the strata are, in words
    strata: list[Stratum]
    solution_ids: list[int]


def allocate(available: dict[str, int], n: int) -> dict[str, int]:
    """How many of each stratum: one each while N allows, the rest proportional to size."""
    names = sorted(name for name, size in available.items() if size > 0)
    total = sum(available[name] for name in names)
    taken = dict.fromkeys(names, 0)
    remaining = min(n, total)
    for name in names:
        if remaining:
            taken[name], remaining = 1, remaining - 1
    while remaining:
        # The stratum furthest below its proportional share (ties: by name) takes the next one.
        open_ = [name for name in names if taken[name] < available[name]]
        name = max(open_, key=lambda s: (n * available[s] / total - taken[s], s))
        taken[name], remaining = taken[name] + 1, remaining - 1
    return taken


def stratified_sample(keyed: Sequence[tuple[int, str]], n: int, seed: int) -> tuple[list[int], list[Stratum]]:
    """`n` of the `(id, stratum)` pairs: allocated by `allocate`, shuffled per stratum with `seed`."""
    by_stratum: dict[str, list[int]] = defaultdict(list)
    for solution_id, stratum in keyed:
        by_stratum[stratum].append(solution_id)
    counts = allocate({name: len(ids) for name, ids in by_stratum.items()}, n)
    chosen: list[int] = []
    strata: list[Stratum] = []
    for name in sorted(by_stratum):
        ids = sorted(by_stratum[name])
        random.Random(f"{seed}:{name}").shuffle(ids)
        chosen += ids[: counts.get(name, 0)]
        strata.append({"name": name, "available": len(ids), "taken": counts.get(name, 0)})
    return sorted(chosen), strata


def label_stratum(benchmark: str, first_error_index: int | None, classification: str | None) -> str:
    if benchmark == "prmbench":
        return classification or "unknown"
    if first_error_index is None:
        return UNLABELLED
    return WITHOUT_ERROR if first_error_index == -1 else WITH_ERROR


def select_solutions(benchmark: str, datasets: list[Dataset], n: int, seed: int) -> Selection:
    """The stratified first N of the datasets' solutions."""
    rows = Solution.objects.filter(dataset__in=datasets).values_list(
        "id", "first_error_index", "error_type__slug", "metadata__classification"
    )
    keyed = [(pk, label_stratum(benchmark, fei, slug or meta_cls)) for pk, fei, slug, meta_cls in rows]
    ids, strata = stratified_sample(keyed, n, seed)
    by = "class" if benchmark == "prmbench" else "label (with / without an error)"
    return {"n": n, "seed": seed, "by": by, "strata": strata, "solution_ids": ids}


def describe(selection: Selection | dict[str, Any]) -> str:
    """One line for the run page and the CLI: what "the first N" means for this run."""
    if not selection:
        return ""
    parts = ", ".join(
        f"{s['taken']} of {s['available']} {s['name']}" for s in selection["strata"] if s["taken"]
    )
    return (
        f"first {len(selection['solution_ids'])} solutions, stratified by {selection['by']}, "
        f"seed {selection['seed']}: {parts}"
    )
