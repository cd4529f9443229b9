"""The project's one percentile and one Cohen's kappa: pure Python, no Django, no numpy.

Kept here, in the lowest Django-free layer that every user may import (the metrics,
the training data statistics, the review audit, the dashboards and the benchmarks).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Literal

__all__ = ["cohen_kappa", "percentile"]


def percentile(
    values: Iterable[float], fraction: float, *, method: Literal["linear", "nearest"] = "linear"
) -> float | None:
    """The ``fraction`` (0..1) percentile of ``values``; None when there are none.

    ``linear``: position (n - 1) * fraction with linear interpolation, the rule of
    Postgres ``percentile_cont``, numpy's default and ``statistics.quantiles(...,
    method="inclusive")``. ``nearest``: the nearest-rank value ceil(fraction * n),
    always a value that occurs in the data (sequence lengths to cut at).
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    ordered = sorted(values)
    if not ordered:
        return None
    if method == "nearest":
        return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]
    if method != "linear":
        raise ValueError(f"unknown percentile method {method!r}")
    pos = (len(ordered) - 1) * fraction
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def cohen_kappa(pairs: Iterable[tuple[Any, Any]] | Sequence[tuple[Any, Any]]) -> float | None:
    """Cohen's kappa of two raters over nominal labels, from ``(a, b)`` pairs.

    ``(p_o - p_e) / (1 - p_e)``. ``None`` when undefined: no pairs, or both raters
    used one and the same label throughout (p_e == 1).
    """
    pairs = list(pairs)
    n = len(pairs)
    if n == 0:
        return None
    p_o = sum(a == b for a, b in pairs) / n
    ca = Counter(a for a, _ in pairs)
    cb = Counter(b for _, b in pairs)
    p_e = sum(ca[label] * cb[label] for label in ca) / (n * n)
    if p_e == 1:
        return None
    return (p_o - p_e) / (1 - p_e)
