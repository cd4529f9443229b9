"""The project's one percentile and one Cohen's kappa (with its bootstrap interval):
pure Python, no Django, no numpy.

Kept here, in the lowest Django-free layer that every user may import (the metrics,
the training data statistics, the review audit, the dashboards and the benchmarks).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["FEW_ITEMS", "KappaEstimate", "cohen_kappa", "kappa_estimate", "kappa_from_table", "percentile"]


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
    return kappa_from_table(Counter(pairs))


def kappa_from_table(table: Mapping[tuple[Any, Any], int]) -> float | None:
    """Cohen's kappa from a contingency table ``{(a, b): count}`` (the one formula)."""
    n = sum(table.values())
    if n == 0:
        return None
    p_o = sum(c for (a, b), c in table.items() if a == b) / n
    ca: Counter[Any] = Counter()
    cb: Counter[Any] = Counter()
    for (a, b), c in table.items():
        ca[a] += c
        cb[b] += c
    p_e = sum(ca[label] * cb[label] for label in ca) / (n * n)
    if p_e == 1:
        return None
    return (p_o - p_e) / (1 - p_e)


# Under this many items a kappa is shown with a warning: its interval is wide and the
# estimate moves a lot with each new item.
FEW_ITEMS = 30


@dataclass(frozen=True)
class KappaEstimate:
    """Kappa with its bootstrap interval and the number of items it rests on."""

    kappa: float | None
    lo: float | None
    hi: float | None
    n: int

    @property
    def few(self) -> bool:
        return self.n < FEW_ITEMS

    def as_dict(self) -> dict[str, Any]:
        return {"kappa": self.kappa, "lo": self.lo, "hi": self.hi, "n": self.n, "few": self.few}


def kappa_estimate(
    pairs: Iterable[tuple[Any, Any]] | Mapping[tuple[Any, Any], int],
    *,
    replicates: int = 500,
    level: float = 0.95,
    seed: int = 0,
) -> KappaEstimate:
    """Kappa and a percentile bootstrap interval, from pairs or a contingency table.

    Each replicate resamples the n items with replacement, i.e. draws the table's cells
    from a multinomial(n, observed shares); kappa depends on the table alone, so this is
    the item bootstrap at a cost independent of n. Replicates where kappa is undefined
    are left out. Seeded: the same data always shows the same interval.
    """
    table = Counter({k: v for k, v in Counter(pairs).items() if v > 0})
    n = sum(table.values())
    point = kappa_from_table(table)
    if point is None or n < 2:
        return KappaEstimate(point, None, None, n)
    rng = random.Random(seed)
    cells = list(table)
    shares = [table[c] / n for c in cells]
    values = []
    for _ in range(replicates):
        draw = _multinomial(rng, n, shares)
        k = kappa_from_table(dict(zip(cells, draw, strict=True)))
        if k is not None:
            values.append(k)
    if not values:
        return KappaEstimate(point, None, None, n)
    tail = (1 - level) / 2
    return KappaEstimate(point, percentile(values, tail), percentile(values, 1 - tail), n)


def _multinomial(rng: random.Random, n: int, shares: list[float]) -> list[int]:
    """One multinomial draw, as conditional binomials."""
    out, left, mass = [], n, 1.0
    for share in shares[:-1]:
        x = _binomial(rng, left, min(1.0, share / mass)) if mass > 0 else 0
        out.append(x)
        left -= x
        mass -= share
    out.append(left)
    return out


def _binomial(rng: random.Random, n: int, p: float) -> int:
    """Binomial(n, p): exact by geometric gaps when n*p*(1-p) is small (cost ~ n*p), the
    normal approximation otherwise (where it is accurate), so the cost never grows with n."""
    if n <= 0 or p <= 0:
        return 0
    if p >= 1:
        return n
    if p > 0.5:
        return n - _binomial(rng, n, 1 - p)
    var = n * p * (1 - p)
    if var >= 25:
        return min(n, max(0, round(rng.gauss(n * p, math.sqrt(var)))))
    log_q, x, pos = math.log1p(-p), 0, 0
    while True:
        pos += int(math.log(1.0 - rng.random()) / log_q) + 1
        if pos > n:
            return x
        x += 1
