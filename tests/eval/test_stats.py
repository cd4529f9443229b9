"""Wilson interval and Cohen's kappa against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from inference.core.metrics import wilson_interval
from inference.core.stats import cohen_kappa


def test_it_gives_the_textbook_wilson_intervals():
    # 5/10, z=1.96: centre 0.5, half-width 1.96*sqrt(0.025 + 0.009604)/1.38416.
    low, high = wilson_interval(5, 10, z=1.96)
    half = 1.96 * math.sqrt(0.025 + 3.8416 / 400) / 1.38416
    assert (low, high) == (pytest.approx(0.5 - half, abs=1e-12), pytest.approx(0.5 + half, abs=1e-12))
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    # 0/10: (0, z^2/(n+z^2)) = (0, 3.8416/13.8416).
    low, high = wilson_interval(0, 10, z=1.96)
    assert low == 0.0
    assert high == pytest.approx(3.8416 / 13.8416, abs=1e-12)
    low, high = wilson_interval(10, 10, z=1.96)
    assert low == pytest.approx(10 / 13.8416, abs=1e-12)
    assert high == 1.0
    # 81/263 (a common worked example): (0.2553, 0.3662).
    low, high = wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)


def test_it_handles_wilson_edge_cases():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    for k, n in [(-1, 5), (6, 5), (0, -1)]:
        with pytest.raises(ValueError):
            wilson_interval(k, n)


def test_it_gives_the_textbook_kappa():
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15.
    # p_o = 0.7; p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.4.
    pairs = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4, abs=1e-12)


def test_it_handles_three_labels_and_edge_cases():
    # a: x x y y z z ; b: x y y y z x -> p_o = 4/6.
    # a: x 2, y 2, z 2 ; b: x 2, y 3, z 1 -> p_e = (4 + 6 + 2)/36 = 1/3; kappa = (2/3-1/3)/(2/3) = 0.5.
    pairs = list(zip("xxyyzz", "xyyyzx", strict=True))
    assert cohen_kappa(pairs) == pytest.approx(0.5, abs=1e-12)
    assert cohen_kappa([("a", "a"), ("b", "b")]) == 1.0
    assert cohen_kappa([("a", "b"), ("b", "a")]) == -1.0
    assert cohen_kappa([]) is None
    assert cohen_kappa([("a", "a"), ("a", "a")]) is None


def test_one_percentile_for_every_caller():
    import statistics

    import numpy as np

    from inference.core.stats import percentile

    values = [7, 1, 3, 10, 4, 4, 9]
    for f in (0, 0.25, 0.5, 0.9, 0.95, 1):
        assert percentile(values, f) == pytest.approx(float(np.percentile(values, f * 100)), abs=1e-12)
    inclusive = statistics.quantiles(sorted(values), n=100, method="inclusive")
    assert percentile(values, 0.95) == pytest.approx(inclusive[94], abs=1e-12)
    # Nearest rank: ceil(f * n), a value of the data (token lengths to cut at).
    assert percentile(values, 0.5, method="nearest") == 4  # rank 4 of [1,3,4,4,7,9,10]
    assert percentile(values, 0.9, method="nearest") == 10  # rank ceil(6.3) = 7
    assert percentile(values, 0.0, method="nearest") == 1
    assert percentile([], 0.5) is None
    with pytest.raises(ValueError):
        percentile(values, 95)


def test_there_is_one_kappa_and_no_alias_of_it():
    from inference.core import metrics
    from review import audit

    for module in (metrics, audit):
        assert not any("kappa" in name for name in vars(module)), module.__name__


def test_kappa_comes_with_a_bootstrap_interval_and_its_n():
    from inference.core.stats import FEW_ITEMS, kappa_estimate

    pairs = [("s", "s")] * 40 + [("f", "f")] * 30 + [("s", "f")] * 10 + [("f", "s")] * 5
    e = kappa_estimate(pairs)
    assert e.kappa == pytest.approx(cohen_kappa(pairs)) and e.n == 85 and not e.few
    assert e.lo < e.kappa < e.hi and 0.1 < e.hi - e.lo < 0.5
    assert kappa_estimate(pairs) == e  # seeded: a page shows the same interval twice
    # Ten times the items: the same kappa, a far narrower interval (a table works as input).
    big = kappa_estimate({("s", "s"): 400, ("f", "f"): 300, ("s", "f"): 100, ("f", "s"): 50})
    assert big.kappa == pytest.approx(e.kappa) and (big.hi - big.lo) < 0.5 * (e.hi - e.lo)
    small = kappa_estimate([("s", "s"), ("f", "s"), ("s", "f")])
    assert small.n == 3 and small.few and FEW_ITEMS == 30
    assert small.lo is not None and small.lo <= small.kappa <= small.hi
    assert kappa_estimate([]).kappa is None and kappa_estimate([("a", "a")] * 5).lo is None
