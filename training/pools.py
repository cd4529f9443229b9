"""The SFT pool: which critiques may become supervised training data.

The method's rule: a critique is kept when it has a verdict (the strict line, or
what the authors' filter accepts) and that verdict agrees with the human label. As
the authors' ``operate-PRM-CoT-data.py`` does, ONE agreeing critique is kept per step
of a run (``per_step="one"``, the default): the last one in sample order (highest
``sample_index``), which is their ``target_list[-1]`` for one responses file.
``per_step="all"`` keeps every agreeing critique. Kept data is balanced yes/no 1:1, and a validation split is held out *by problem*, so no
problem appears in both splits. Choices are deterministic for a seed (hash
order, not random state), so the same inputs give the same pool on any machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet

from annotations.models import Dataset
from inference.models import Critique, GenerationRun
from review.reviews import training_exclusion_q


def _problem_key(question: str) -> str:
    # Split on the problem's text, not its row: the same question imported under two
    # ids (or from two datasets) must not land in both splits.
    return " ".join(question.lower().split())


def _unit(seed: int, kind: str, key: object) -> float:
    digest = hashlib.blake2b(f"{seed}:{kind}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def problem_split(question: str, seed: int, val_fraction: float) -> str:
    """ "train" or "val" for a problem: the one hash split, so a problem lands on the same side
    for the SFT pool, DPO pairs and snapshots."""
    return "val" if _unit(seed, "split", _problem_key(question)) < val_fraction else "train"


@dataclass
class SFTPool:
    train_ids: list[int] = field(default_factory=list)
    val_ids: list[int] = field(default_factory=list)
    stats: dict = field(default_factory=dict)


def eligible_critiques(
    runs: Iterable[GenerationRun] | None = None, datasets: Iterable[Dataset] | None = None
) -> QuerySet[Critique]:
    """Runs named: their critiques, whatever their role. None: teacher runs only (student
    samples are DPO material; they join the SFT pool only when asked for by run)."""
    qs = Critique.objects.sft_eligible()
    if runs is not None:
        qs = qs.filter(run__in=runs)
    else:
        qs = qs.filter(run__kind__in=GenerationRun.TEACHER_KINDS)
    if datasets is not None:
        qs = qs.filter(step__solution__dataset__in=datasets)
    return qs.exclude(excluded_by_review())


def excluded_by_review() -> Q:
    """Critiques reviewers marked flawed, or whose label is disputed, never reach training
    data: the one exclusion rule, for the SFT pool, DPO pairs and exports alike."""
    return training_exclusion_q()


PER_STEP_CHOICES = ("one", "all")


def build_sft_pool(
    critiques: QuerySet[Critique],
    *,
    val_fraction: float = 0.05,
    seed: int = 0,
    balance: bool = True,
    per_step: str = "one",
) -> SFTPool:
    if not 0 <= val_fraction < 1:
        raise ValueError("val_fraction must be in [0, 1)")
    if per_step not in PER_STEP_CHOICES:
        raise ValueError(f"per_step must be one of {', '.join(PER_STEP_CHOICES)}, got {per_step!r}")
    agreeing = list(
        critiques.values_list(
            "id", "verdict", "step__solution__problem__question", "step_id", "run_id", "sample_index"
        )
    )
    if per_step == "one":
        last: dict[tuple[int, int], tuple] = {}
        for row in agreeing:
            key = (row[4], row[3])  # (run, step)
            if key not in last or row[5] > last[key][5]:
                last[key] = row
        kept = sorted(last.values())
    else:
        kept = agreeing
    rows = [(r[0], r[1], r[2]) for r in kept]
    splits: dict[str, dict[str, list[int]]] = {"train": {"yes": [], "no": []}, "val": {"yes": [], "no": []}}
    val_problems = set()
    for cid, verdict, question in rows:
        split = problem_split(question, seed, val_fraction)
        if split == "val":
            val_problems.add(_problem_key(question))
        splits[split][verdict].append(cid)
    pool = SFTPool()
    stats: dict = {
        "eligible": len(rows),
        "agreeing": len(agreeing),
        "per_step": per_step,
        "val_problems": len(val_problems),
        "seed": seed,
        "val_fraction": val_fraction,
        "balanced": balance,
    }
    for split, by_verdict in splits.items():
        yes, no = by_verdict["yes"], by_verdict["no"]
        if balance:
            n = min(len(yes), len(no))
            yes = sorted(yes, key=lambda c: _unit(seed, "keep", c))[:n]
            no = sorted(no, key=lambda c: _unit(seed, "keep", c))[:n]
        chosen = sorted(yes + no)
        stats[split] = {
            "yes": len(yes),
            "no": len(no),
            "total": len(chosen),
            "dropped_for_balance": len(by_verdict["yes"]) + len(by_verdict["no"]) - len(chosen),
        }
        if split == "train":
            pool.train_ids = chosen
        else:
            pool.val_ids = chosen
    pool.stats = stats
    return pool
