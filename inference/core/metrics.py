"""Benchmark metrics: ProcessBench, PRMBench, K-scaling, and two small statistics.

Plain Python (numpy only for K-scaling); no Django import. Each metric follows the
official evaluation code, checked by reading it; the source paths are named in the
docstrings. Where that code has an edge case (empty groups, zero divisions) this
module says what it does and why.

ProcessBench numbers are percentages (the official scripts multiply by 100);
PRMBench numbers are fractions in [0, 1] (the official result dict stores
fractions and only its table printer multiplies by 100).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

import numpy as np

# --------------------------------------------------------------------------------------
# ProcessBench
# --------------------------------------------------------------------------------------

PROCESSBENCH_SUBSETS: tuple[str, ...] = ("gsm8k", "math", "olympiadbench", "omnimath")


# Official tie rules, stated on the results page.
TIE_RULES = {
    "processbench": "ProcessBench: the predicted error is the first step whose reward is < the threshold; "
    "a reward exactly at the threshold counts as correct (the authors' get-GenPRM-Score.py, value < threshold).",
    "prmbench": "PRMBench: a step is predicted correct when its score is > the threshold; a score exactly at "
    "the threshold counts as wrong (the official PRMBench code, score > validity_threshold).",
}


def processbench_subset_from_id(item_id: str) -> str | None:
    """The subset a ProcessBench id names (``gsm8k-12``, ``math-3``...), or None.

    A file holding several subsets is split by this prefix, as the official data ids are.
    """
    head = str(item_id).split("-", 1)[0].lower()
    return head if head in PROCESSBENCH_SUBSETS and "-" in str(item_id) else None


MissingScore = Literal["raise", "miss"]


def processbench_predict(
    step_scores: Sequence[float | None], threshold: float = 0.5, missing: MissingScore = "raise"
) -> int | None:
    """Index of the first step whose reward is < ``threshold``, else -1.

    Same rule as NJUNLP/R-PRM ``src/evaluate/ProcessBench/get-GenPRM-Score.py``
    (``compute_match``: ``value < threshold``) on the per-step mean reward. A step without a score is an error
    here, never silently "correct": the caller decides what a missing reward means
    (``missing="miss"``: no prediction, None, which the metrics count as a miss, as the
    official ``run_eval.py`` counts an unreadable answer).

    ``step_scores`` may stop early (steps after the labelled first error are not scored
    by default): a solution whose scored steps all pass is predicted -1, a miss for a
    solution with an error at any threshold, exactly as the unscored steps would give.
    """
    for i, score in enumerate(step_scores):
        if score is None:
            if missing == "miss":
                return None
            raise ValueError(f"step {i} has no score")
        if score < threshold:
            return i
    return -1


def _check_label(label: Any) -> int:
    if isinstance(label, bool) or not isinstance(label, int | np.integer) or label < -1:
        raise ValueError(f"a ProcessBench label is an integer >= -1, got {label!r}")
    return int(label)


# Why a ProcessBench number is undefined, in the words the results page shows.
NO_ERROR_ROWS = "no solutions with an error in this subset"
NO_CORRECT_ROWS = "no correct solutions in this subset"


class SubsetMetrics(TypedDict):
    """One ProcessBench subset: percentages, or None with the reason in ``undefined``."""

    error_acc: float | None
    correct_acc: float | None
    f1: float | None
    n_error: int
    n_correct: int
    undefined: dict[str, str]  # metric name -> why it is undefined (empty when all are defined)


class ProcessBenchReport(TypedDict):
    subsets: dict[str, SubsetMetrics]
    avg_f1: float | None
    avg_f1_undefined: str | None  # why avg_f1 is None
    complete: bool


class KPoint(TypedDict):
    """One K of a K-scaling curve; ``value`` None means skipped, ``undefined`` says why."""

    k: int
    first_k: float | None
    value: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    n_resamples: int
    n_steps_clipped: int
    undefined: NotRequired[str]


def processbench_metrics(rows: Iterable[tuple[int, int | None]]) -> SubsetMetrics:
    """error_acc, correct_acc and F1 (percent) from ``(label, prediction)`` pairs.

    Matches QwenLM/ProcessBench ``code/run_eval_prm_trl.py`` and
    ``code/run_eval_prm_rlhflow.py``: rows split by ``label != -1`` (error) and
    ``label == -1`` (correct); each accuracy is ``mean(prediction == label) * 100``;
    ``f1 = 2*e*c/(e+c)``. Nothing is rounded (the scripts only round when printing,
    ``:.1f``, and average the unrounded F1s).

    Edge cases, where the official scripts print NaN with a numpy warning:

    * ``e + c == 0`` gives ``f1 = 0.0`` (as NJUNLP/R-PRM
      ``src/evaluate/ProcessBench/get-GenPRM-Score.py``).
    * An empty group (no error rows, or no correct rows) gives ``None`` for its
      accuracy and for F1: the number is undefined, and 0 (what R-PRM's script
      writes) would look like a result.

    A ``None`` prediction (e.g. an unparseable critic answer, as in the official
    ``run_eval.py``) counts as a miss.
    """
    err_hits = err_n = ok_hits = ok_n = 0
    for label, prediction in rows:
        label = _check_label(label)
        hit = prediction is not None and int(prediction) == label
        if label == -1:
            ok_n += 1
            ok_hits += hit
        else:
            err_n += 1
            err_hits += hit
    error_acc = err_hits / err_n * 100 if err_n else None
    correct_acc = ok_hits / ok_n * 100 if ok_n else None
    undefined: dict[str, str] = {}
    if error_acc is None:
        undefined["error_acc"] = NO_ERROR_ROWS
    if correct_acc is None:
        undefined["correct_acc"] = NO_CORRECT_ROWS
    if undefined:
        undefined["f1"] = "; ".join(undefined.values())
    return {
        "error_acc": error_acc,
        "correct_acc": correct_acc,
        "f1": _harmonic(error_acc, correct_acc),
        "n_error": err_n,
        "n_correct": ok_n,
        "undefined": undefined,
    }


def _harmonic(e: float | None, c: float | None) -> float | None:
    if e is None or c is None:
        return None
    return 0.0 if e + c == 0 else 2 * e * c / (e + c)


def processbench_report(subset_rows: Mapping[str, Iterable[tuple[int, int | None]]]) -> ProcessBenchReport:
    """Per-subset metrics and the headline ``avg_f1``.

    ``avg_f1`` is the UNWEIGHTED mean of the subset F1s (``np.mean(all_f1_scores)``
    in QwenLM/ProcessBench ``code/run_eval_prm_trl.py``), not a mean over rows.
    It is ``None`` when any subset F1 is undefined, and ``avg_f1_undefined`` says
    which and why. ``complete`` says whether all four official subsets are present:
    an average over fewer is not the headline.
    """
    subsets = {name: processbench_metrics(rows) for name, rows in subset_rows.items()}
    f1s = [m["f1"] for m in subsets.values() if m["f1"] is not None]
    why = [f"F1 of {name} is undefined ({m['undefined']['f1']})" for name, m in subsets.items()
           if m["f1"] is None]  # fmt: skip
    if not subsets:
        why = ["no solutions"]
    return {
        "subsets": subsets,
        "avg_f1": None if why else math.fsum(f1s) / len(f1s),
        "avg_f1_undefined": "; ".join(why) or None,
        "complete": set(PROCESSBENCH_SUBSETS) <= subsets.keys(),
    }


def processbench_f1(
    step_scores_by_item: Sequence[Sequence[float | None]], labels: Sequence[int], threshold: float = 0.5
) -> float | None:
    """F1 (percent) of one subset from per-step rewards: the default K-scaling metric."""
    if len(step_scores_by_item) != len(labels):
        raise ValueError("one label per item")
    rows = [
        (lab, processbench_predict(s, threshold, "miss"))
        for s, lab in zip(step_scores_by_item, labels, strict=True)
    ]
    return processbench_metrics(rows)["f1"]


def threshold_sweep(
    subset_items: Mapping[str, Sequence[tuple[int, Sequence[float | None]]]],
    thresholds: Iterable[float] | None = None,
    missing: MissingScore = "raise",
) -> list[dict[str, Any]]:
    """ProcessBench metrics at each threshold, from ``(label, step_scores)`` items per subset.

    Returns one row per threshold (ascending): ``threshold``, ``avg_f1`` and the
    per-subset metrics. R-PRM's threshold figure does this; choosing the threshold
    on the benchmark itself is optimistic, so report 0.5 as the headline.
    Default thresholds: 0.05, 0.10, ..., 0.95.
    """
    if thresholds is None:
        thresholds = [round(0.05 * i, 2) for i in range(1, 20)]
    out = []
    for t in sorted(float(t) for t in thresholds):
        rows = {
            name: [(label, processbench_predict(scores, t, missing)) for label, scores in items]
            for name, items in subset_items.items()
        }
        report = processbench_report(rows)
        out.append({"threshold": t, "avg_f1": report["avg_f1"], "subsets": report["subsets"]})
    return out


# --------------------------------------------------------------------------------------
# PRMBench
# --------------------------------------------------------------------------------------

PRMBENCH_DIMENSIONS: dict[str, tuple[str, ...]] = {
    "simplicity": ("redundency", "circular"),
    "soundness": ("counterfactual", "step_contradiction", "domain_inconsistency", "confidence"),
    "sensitivity": ("missing_condition", "deception", "multi_solutions"),
}
# Items of this class have no wrong step, so negative F1 is meaningless for it.
POSITIVE_ONLY_CLASSES = frozenset({"multi_solutions"})
# The official loader adds unmodified solutions under this class; they are scored
# per class but kept out of the overall counts.
PRMBENCH_CORRECT_CLASS = "correct"

ZeroDivision = Literal["official", "zero"]


@dataclass(frozen=True)
class Confusion:
    """Step counts with positive = correct step (PRMBench's convention)."""

    tp: int = 0  # correct step, predicted correct
    fn: int = 0  # correct step, predicted wrong
    fp: int = 0  # wrong step, predicted correct
    tn: int = 0  # wrong step, predicted wrong

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(self.tp + other.tp, self.fn + other.fn, self.fp + other.fp, self.tn + other.tn)

    @property
    def n(self) -> int:
        return self.tp + self.fn + self.fp + self.tn


def prmbench_step_predictions(step_scores: Sequence[float], threshold: float = 0.5) -> list[bool]:
    """Predicted correct iff ``score > threshold``.

    Strict ``>`` as in ssmisya/PRMBench ``mr_eval/models/qwen_prm.py``
    (``item > self.validity_threshold``, default 0.5). NJUNLP/R-PRM's own
    ``src/evaluate/PRMBench/code/collate.py`` uses ``>=``; the two differ only for
    a score exactly at the threshold.
    """
    out = []
    for i, s in enumerate(step_scores):
        if s is None:
            raise ValueError(f"step {i} has no score")
        out.append(s > threshold)
    return out


def prmbench_confusion(
    error_steps: Iterable[int], step_scores: Sequence[float], threshold: float = 0.5
) -> Confusion:
    """Confusion counts of one item; ``error_steps`` are 1-based.

    As ``eval_on_hallucination_step`` in ssmisya/PRMBench
    ``mr_eval/tasks/prmtest_classified/task.py``: only scored steps count (an
    error step past the last score is ignored), a step is wrong iff listed.
    """
    wrong = {int(e) - 1 for e in error_steps}
    tp = fn = fp = tn = 0
    for i, predicted_correct in enumerate(prmbench_step_predictions(step_scores, threshold)):
        if i in wrong:
            fp += predicted_correct
            tn += not predicted_correct
        else:
            tp += predicted_correct
            fn += not predicted_correct
    return Confusion(tp, fn, fp, tn)


def _ratio(num: int, den: int, zero_division: ZeroDivision) -> float:
    if den:
        return num / den
    return -1.0 if zero_division == "official" else 0.0


def _f1(p: float, r: float, zero_division: ZeroDivision) -> float:
    if p + r != 0:
        return 2 * p * r / (p + r)
    return -1.0 if zero_division == "official" else 0.0


def f1_scores(
    tp: int, fn: int, fp: int, tn: int, zero_division: ZeroDivision = "official"
) -> dict[str, float]:
    """Positive and negative precision, recall and F1.

    Negative class: precision ``TN/(TN+FN)``, recall ``TN/(TN+FP)``.

    ``zero_division="official"`` reproduces ssmisya/PRMBench
    ``mr_eval/tasks/prmtest_classified/task.py`` (``evaluate_function``) to the
    letter: a ratio with a zero denominator is -1, and F1 is -1 when
    ``precision + recall == 0`` (so TP == 0 with FP, FN > 0 gives F1 = -1, not 0),
    otherwise ``2pr/(p+r)`` even with a -1 operand. ``"zero"`` gives the textbook
    value instead (0 for every undefined ratio and F1). The two agree whenever
    every denominator is non-zero and TP, TN > 0.
    """
    p = _ratio(tp, tp + fp, zero_division)
    r = _ratio(tp, tp + fn, zero_division)
    np_ = _ratio(tn, tn + fn, zero_division)
    nr = _ratio(tn, tn + fp, zero_division)
    return {
        "precision": p,
        "recall": r,
        "f1_positive": _f1(p, r, zero_division),
        "negative_precision": np_,
        "negative_recall": nr,
        "f1_negative": _f1(np_, nr, zero_division),
    }


def prmscore(
    tp: int,
    fn: int,
    fp: int,
    tn: int,
    positive_only: bool = False,
    zero_division: ZeroDivision = "official",
    clamp: bool = True,
) -> float:
    """PRMScore = 0.5*F1_positive + 0.5*F1_negative; F1_positive alone if ``positive_only``.

    As ``get_prmscore_from_current_res_dict`` in NJUNLP/R-PRM
    ``src/evaluate/PRMBench/code/get_result.py`` (the PRMBench authors' table code).
    A fraction in [0, 1] (or negative when the official -1 sentinels enter, see
    :func:`f1_scores`).
    """
    f = f1_scores(tp, fn, fp, tn, zero_division)
    value = f["f1_positive"] if positive_only else 0.5 * f["f1_positive"] + 0.5 * f["f1_negative"]
    # The official table reports a PRMScore below 0 (from the -1 sentinels) as 0.
    return max(0.0, value) if clamp else value


class PRMBenchItem(TypedDict):
    """One solution for :func:`prmbench_report`."""

    classification: str
    error_steps: list[int]  # 1-based
    step_scores: Sequence[float | None] | None


class Counts(TypedDict):
    tp: int
    fn: int
    fp: int
    tn: int


class ClassScores(Counts):
    """One PRMBench class: PRMScore (fraction), the F1s and the pooled step counts."""

    prmscore: float
    prmscore_unclamped: float
    precision: float
    recall: float
    f1_positive: float
    negative_precision: float
    negative_recall: float
    f1_negative: float
    n_items: int
    n_steps: int


class DimensionScore(TypedDict):
    prmscore: float | None  # mean of its present classes' PRMScores; None when none is present
    missing: list[str]


class PRMBenchReport(TypedDict):
    overall: float | None
    overall_counts: Counts
    classes: dict[str, ClassScores]
    dimensions: dict[str, DimensionScore]
    n_items: int
    n_invalid: int
    threshold: float
    zero_division: ZeroDivision


def _class_scores(c: Confusion, cls: str, n_items: int, zero_division: ZeroDivision) -> ClassScores:
    positive_only = cls in POSITIVE_ONLY_CLASSES
    f = f1_scores(c.tp, c.fn, c.fp, c.tn, zero_division)
    return {
        "prmscore": prmscore(c.tp, c.fn, c.fp, c.tn, positive_only, zero_division),
        "prmscore_unclamped": prmscore(c.tp, c.fn, c.fp, c.tn, positive_only, zero_division, clamp=False),
        "precision": f["precision"],
        "recall": f["recall"],
        "f1_positive": f["f1_positive"],
        "negative_precision": f["negative_precision"],
        "negative_recall": f["negative_recall"],
        "f1_negative": f["f1_negative"],
        "tp": c.tp,
        "fn": c.fn,
        "fp": c.fp,
        "tn": c.tn,
        "n_items": n_items,
        "n_steps": c.n,
    }


def prmbench_report(
    items: Iterable[PRMBenchItem],
    threshold: float = 0.5,
    zero_division: ZeroDivision = "official",
) -> PRMBenchReport:
    """PRMBench scores from items with ``classification``, ``error_steps`` (1-based), ``step_scores``.

    Follows ssmisya/PRMBench ``mr_eval/tasks/prmtest_classified/task.py``
    (``evaluate_function``) and the table code in NJUNLP/R-PRM
    ``src/evaluate/PRMBench/code/get_result.py``:

    * per class: TP/FN/FP/TN summed over its items' steps; PRMScore from those;
      ``multi_solutions`` uses F1_positive only.
    * per dimension: unweighted mean of its classes' PRMScores (classes absent
      from ``items`` are skipped and listed in ``missing``; the official code would
      raise instead). ``None`` when none of its classes is present.
    * overall: ONE PRMScore (0.5*F1_pos + 0.5*F1_neg, never positive-only) of the
      counts pooled over every step of every item, multi_solutions included. Items
      of class ``"correct"`` (unmodified solutions, which the official loader adds)
      get their own class entry but stay out of the overall, as there.
    * an item whose ``step_scores`` is None or holds a None is invalid: skipped and
      counted in ``n_invalid`` (the official ``validity=False``).
    """
    per_class: dict[str, Confusion] = {}
    n_items: Counter[str] = Counter()
    overall = Confusion()
    n_invalid = 0
    for item in items:
        cls = item["classification"]
        raw = item.get("step_scores")
        scores = [s for s in raw if s is not None] if raw is not None else []
        if raw is None or len(scores) != len(raw):
            n_invalid += 1
            continue
        c = prmbench_confusion(item["error_steps"], scores, threshold)
        per_class[cls] = per_class.get(cls, Confusion()) + c
        n_items[cls] += 1
        if cls != PRMBENCH_CORRECT_CLASS:
            overall = overall + c

    classes = {cls: _class_scores(c, cls, n_items[cls], zero_division) for cls, c in per_class.items()}
    dimensions: dict[str, DimensionScore] = {}
    for dim, members in PRMBENCH_DIMENSIONS.items():
        present = [classes[m]["prmscore"] for m in members if m in classes]
        dimensions[dim] = {
            "prmscore": math.fsum(present) / len(present) if present else None,
            "missing": [m for m in members if m not in classes],
        }
    return {
        "overall": prmscore(overall.tp, overall.fn, overall.fp, overall.tn, False, zero_division)
        if overall.n
        else None,
        "overall_counts": {"tp": overall.tp, "fn": overall.fn, "fp": overall.fp, "tn": overall.tn},
        "classes": classes,
        "dimensions": dimensions,
        "n_items": sum(n_items.values()),
        "n_invalid": n_invalid,
        "threshold": threshold,
        "zero_division": zero_division,
    }


# --------------------------------------------------------------------------------------
# K-scaling
# --------------------------------------------------------------------------------------


def _default_ks(k_max: int) -> list[int]:
    ks, k = [], 1
    while k < k_max:
        ks.append(k)
        k *= 2
    return ks + [k_max]


def k_scaling(
    samples_by_item: Sequence[Sequence[Sequence[float | None]]],
    labels: Sequence[Any],
    ks: Iterable[int] | None = None,
    n_resamples: int = 200,
    seed: int = 0,
    metric_fn: Callable[[list[list[float | None]], Sequence[Any]], float | None] | None = None,
    ci: float = 0.95,
) -> list[KPoint]:
    """Metric at K = 1, 2, 4, ... K_max critiques per step, from one run at K_max.

    ``samples_by_item[i][j]`` holds the stored p_yes of every sampled critique of
    step j of item i. For each K and each resample, every step's reward is the mean
    of a uniformly random K-subset (without replacement) of its samples; the metric
    is ``metric_fn(step_scores_by_item, labels)`` (default: ProcessBench F1 at 0.5,
    with ``labels`` the ProcessBench labels; pass a closure for anything else).

    Returns, per K: ``first_k``, the authors' estimator (every step's reward is the
    mean of its FIRST K samples, in sample order, as their K-scaling curve takes them),
    the mean over resamples (``value``), ``std``, and a percentile
    interval (``ci_low``, ``ci_high``: numpy's linear percentiles at
    ``(1-ci)/2`` and ``(1+ci)/2``). The interval shows the spread from *which* K
    critiques were drawn; it is not a confidence interval over benchmark items.

    A resample whose metric is undefined (``metric_fn`` returns None, e.g. F1 of a
    subset without correct solutions) is left out of the mean; a K where every
    resample is undefined is kept as a skipped point (``value`` None, ``undefined``
    says so) instead of failing the curve: the other points stay.

    ``None`` samples (unreadable p_yes) are dropped; a step left with no sample
    counts as unreadable (its reward None, which the metric must handle).
    K_max is the largest sample count of any step; a step with fewer samples than K
    uses all of them (counted in ``n_steps_clipped``). Deterministic for a seed: a
    step's draw is a hash of ``(seed, K, resample, item, step)``, so a K's result does
    not depend on which other Ks were asked, and a step's draws do not depend on which
    other steps were scored (a run through the first labelled errors gives the same
    ProcessBench curve as one over every step).
    """
    if len(samples_by_item) != len(labels):
        raise ValueError("one label per item")
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    if not 0 < ci < 1:
        raise ValueError("ci must be in (0, 1)")
    table = _SampleTable(samples_by_item)
    ks = sorted({int(k) for k in ks}) if ks is not None else _default_ks(table.k_max)
    if any(k < 1 or k > table.k_max for k in ks):
        raise ValueError(f"every K must be within 1..{table.k_max}")
    metric = metric_fn or processbench_f1
    return [_k_point(table, k, n_resamples, seed, ci, lambda s: metric(s, labels)) for k in ks]


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a well-mixed uint64 per input (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return np.asarray(x ^ (x >> np.uint64(31)), dtype=np.uint64)


class _SampleTable:
    """Every step's readable samples, grouped by count so a group is drawn as one matrix.

    The random draw of a step depends only on (seed, K, resample, item, step), never on
    which other steps are in the table: a run that scored only the steps through each
    labelled first error gets the very same K curve as a run that scored every step."""

    def __init__(self, samples_by_item: Sequence[Sequence[Sequence[float | None]]]) -> None:
        self.steps: list[np.ndarray] = []
        self.offsets = [0]
        keys: list[int] = []
        for i, item in enumerate(samples_by_item):
            for j, step in enumerate(item):
                self.steps.append(np.array([float(v) for v in step if v is not None], dtype=float))
                keys.append((i << 24) | j)
            self.offsets.append(len(self.steps))
        self.counts = np.array([s.size for s in self.steps], dtype=int)
        self.keys = _mix(np.array(keys, dtype=np.uint64))
        self.k_max = int(self.counts.max()) if self.steps and self.counts.max() > 0 else 0
        if self.k_max == 0:
            raise ValueError("no step has a readable sample")
        usable = self.counts > 0
        self.groups = {
            int(n): np.flatnonzero(usable & (self.counts == n)) for n in np.unique(self.counts[usable])
        }
        self.matrices = {n: np.stack([self.steps[i] for i in idx]) for n, idx in self.groups.items()}

    def by_item(self, flat: np.ndarray) -> list[list[float | None]]:
        values: list[float | None] = [
            None if c == 0 else float(v) for v, c in zip(flat, self.counts, strict=True)
        ]
        return [values[self.offsets[i] : self.offsets[i + 1]] for i in range(len(self.offsets) - 1)]

    def draw(self, k: int, stream: np.uint64 | None) -> np.ndarray:
        """One reward per step: the mean of a random K-subset (of the first K, stream None)."""
        flat = np.full(len(self.steps), np.nan)
        for n, idx in self.groups.items():
            m = self.matrices[n]
            if k >= n:
                flat[idx] = m.mean(axis=1)
            elif stream is None:
                flat[idx] = m[:, :k].mean(axis=1)
            else:
                with np.errstate(over="ignore"):
                    bits = _mix((self.keys[idx] ^ stream)[:, None] + np.arange(n, dtype=np.uint64) * _GOLDEN)
                pick = np.argsort(bits, axis=1)[:, :k]  # a uniformly random K-subset per row
                flat[idx] = np.take_along_axis(m, pick, axis=1).mean(axis=1)
        return flat


def _stream(seed: int, k: int, resample: int) -> np.uint64:
    """The key of one resample at one K, from the seed (every part a full 64 bits)."""
    x = np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
    with np.errstate(over="ignore"):
        for part in (k, resample):
            x = _mix(x + _GOLDEN) + np.uint64(part)
        return np.uint64(_mix(x)[0])


def _k_point(
    table: _SampleTable,
    k: int,
    n_resamples: int,
    seed: int,
    ci: float,
    metric: Callable[[list[list[float | None]]], float | None],
) -> KPoint:
    # With every step at or below K, every draw is the full set: one pass suffices.
    draws = 1 if k >= table.k_max else n_resamples
    values = [metric(table.by_item(table.draw(k, _stream(seed, k, r)))) for r in range(draws)]
    defined = np.array([float(v) for v in values if v is not None])
    first = metric(table.by_item(table.draw(k, None)))
    point: KPoint = {
        "k": k,
        "first_k": None if first is None else float(first),
        "value": None,
        "std": None,
        "ci_low": None,
        "ci_high": None,
        "n_resamples": int(defined.size),  # 1 at K >= K_max: every draw is the same
        "n_steps_clipped": int((table.counts < k).sum()),
    }
    if defined.size == 0:
        point["undefined"] = f"metric undefined at K={k}"
        return point
    low, high = np.percentile(defined, [100 * (1 - ci) / 2, 100 * (1 + ci) / 2])
    point["value"], point["std"] = float(defined.mean()), float(defined.std())
    point["ci_low"], point["ci_high"] = float(low), float(high)
    return point


# --------------------------------------------------------------------------------------
# Statistics for the dashboards
# --------------------------------------------------------------------------------------


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (z=1.959964: 95%).

    ``n == 0`` gives (0.0, 1.0): no data, no information.
    """
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return (max(0.0, centre - half), min(1.0, centre + half))
