"""K-scaling by subsampling stored critiques: determinism, exactness at K_max, sampling law."""

from __future__ import annotations

import itertools
import random

import pytest

from inference.core.metrics import k_scaling, processbench_metrics, processbench_predict


def synthetic_run(seed, n_items=40, k_max=8):
    rng = random.Random(seed)
    samples, labels = [], []
    for _ in range(n_items):
        n_steps = rng.randint(1, 6)
        label = -1 if rng.random() < 0.5 else rng.randrange(n_steps)
        item = []
        for j in range(n_steps):
            bad = label != -1 and j >= label
            item.append([rng.betavariate(2, 3) if bad else rng.betavariate(3, 2) for _ in range(k_max)])
        samples.append(item)
        labels.append(label)
    return samples, labels


def mean_of_all_steps(step_scores_by_item, labels):
    flat = [s for item in step_scores_by_item for s in item]
    return sum(flat) / len(flat)


def test_it_is_deterministic_for_a_seed_and_independent_of_the_other_ks():
    samples, labels = synthetic_run(0)
    a = k_scaling(samples, labels, n_resamples=30, seed=7)
    b = k_scaling(samples, labels, n_resamples=30, seed=7)
    assert a == b
    assert [row["k"] for row in a] == [1, 2, 4, 8]
    only_two = k_scaling(samples, labels, ks=[2], n_resamples=30, seed=7)
    assert only_two[0] == a[1]
    other = k_scaling(samples, labels, ks=[2], n_resamples=30, seed=8)
    assert other[0]["value"] != a[1]["value"]


def test_it_equals_the_full_run_metric_at_k_max():
    samples, labels = synthetic_run(1)
    [row] = k_scaling(samples, labels, ks=[8], n_resamples=50)
    means = [[sum(step) / len(step) for step in item] for item in samples]
    expected = processbench_metrics(
        [(lab, processbench_predict(m)) for m, lab in zip(means, labels, strict=True)]
    )["f1"]
    assert row["value"] == pytest.approx(expected, abs=1e-9)
    assert row["ci_low"] == row["ci_high"] == pytest.approx(expected, abs=1e-9)
    assert row["std"] == 0.0


def test_it_draws_subsets_without_replacement():
    # One step, samples [0, 0, 1, 1], K=2: subset means 0, 0.5, 1 with odds 1:4:1
    # (with replacement they would be 1:2:1).
    seen = []

    def record(step_scores_by_item, labels):
        seen.append(step_scores_by_item[0][0])
        return step_scores_by_item[0][0]

    [row] = k_scaling([[[0.0, 0.0, 1.0, 1.0]]], [-1], ks=[2], n_resamples=3000, seed=3, metric_fn=record)
    assert set(seen) <= {0.0, 0.5, 1.0}
    assert seen.count(0.5) / len(seen) == pytest.approx(4 / 6, abs=0.03)
    assert row["value"] == pytest.approx(0.5, abs=0.02)
    assert (row["ci_low"], row["ci_high"]) == (0.0, 1.0)


def test_it_matches_the_exact_expectation_of_a_linear_metric():
    samples = [[[0.1, 0.4, 0.9], [0.2, 0.8, 0.5]], [[0.7, 0.3, 0.6]]]
    for k in (1, 2):
        exact = []
        for item in samples:
            for step in item:
                means = [sum(c) / k for c in itertools.combinations(step, k)]
                exact.append(sum(means) / len(means))
        [row] = k_scaling(samples, [-1, -1], ks=[k], n_resamples=4000, seed=0, metric_fn=mean_of_all_steps)
        assert row["value"] == pytest.approx(sum(exact) / len(exact), abs=0.01)
        assert row["ci_low"] <= row["value"] <= row["ci_high"]


def test_it_drops_missing_samples_and_clips_short_steps():
    samples = [[[0.9, None, 0.8, 0.7], [0.2, 0.3]]]
    rows = k_scaling(samples, [1], n_resamples=20, metric_fn=mean_of_all_steps)
    assert [r["k"] for r in rows] == [1, 2, 3]
    assert [r["n_steps_clipped"] for r in rows] == [0, 0, 1]
    assert rows[-1]["value"] == pytest.approx((0.8 + 0.25) / 2)


def test_it_uses_powers_of_two_then_k_max():
    samples = [[[0.5] * 10]]
    assert [r["k"] for r in k_scaling(samples, [-1], n_resamples=2, metric_fn=mean_of_all_steps)] == [
        1,
        2,
        4,
        8,
        10,
    ]


def test_it_rejects_bad_arguments():
    samples, labels = synthetic_run(2, n_items=3, k_max=4)
    with pytest.raises(ValueError):
        k_scaling(samples, labels, ks=[5])
    with pytest.raises(ValueError):
        k_scaling(samples, labels[:-1])
    with pytest.raises(ValueError):
        k_scaling([[[None, None]]], [-1])
    with pytest.raises(ValueError):
        k_scaling(samples, labels, n_resamples=0)


def test_it_reports_the_authors_first_k_estimator_beside_the_resampled_mean():
    # Two items, one step each; samples in order. First K takes the prefix, as the authors do.
    samples = [[[0.9, 0.1, 0.1, 0.1]], [[0.2, 0.8, 0.8, 0.8]]]
    labels = [-1, 0]  # item 1 all correct, item 2 wrong at step 0
    points = {p["k"]: p for p in k_scaling(samples, labels, ks=[1, 2, 4], n_resamples=50, seed=0)}
    # K=1: first samples 0.9 (correct, right) and 0.2 (error found, right): F1 = 100.
    assert points[1]["first_k"] == pytest.approx(100.0)
    # K=2: means 0.5 (>= 0.5: correct) and 0.5 (not < 0.5: error missed): F1 = 0.
    assert points[2]["first_k"] == pytest.approx(0.0)
    assert points[4]["first_k"] == points[4]["value"]  # all samples: both estimators agree
    assert points[1]["value"] != points[1]["first_k"]  # random subsets differ from the prefix


def test_it_skips_and_labels_a_k_whose_metric_is_undefined_instead_of_failing():
    # Every solution has an error: F1 is undefined at every K (no correct solution).
    samples = [[[0.9, 0.2], [0.1, 0.3]], [[0.8, 0.7], [0.6, 0.9]]]
    curve = k_scaling(samples, [1, 0], n_resamples=20)
    assert [p["k"] for p in curve] == [1, 2]
    for p in curve:
        assert p["value"] is None and p["first_k"] is None and p["n_resamples"] == 0
        assert p["undefined"] == f"metric undefined at K={p['k']}"


def test_it_keeps_the_defined_points_beside_an_undefined_one():
    # A metric defined only from K=2 on: K=1 is skipped, K=2 stays exact.
    samples = [[[0.0, 1.0], [0.0, 1.0]]]
    curve = k_scaling(
        samples, [-1], n_resamples=50, metric_fn=lambda s, _: s[0][0] if s[0][0] == 0.5 else None
    )
    assert curve[0]["value"] is None and "undefined" in curve[0]
    assert curve[1]["value"] == 0.5 and "undefined" not in curve[1]


def test_a_run_through_the_first_errors_gives_the_full_runs_curve_exactly():
    # Steps after the labelled first error cannot change a ProcessBench number; the
    # resampling of the steps that remain must not depend on them either.
    samples, labels = synthetic_run(5, n_items=60, k_max=6)
    partial = [item if lab == -1 else item[: lab + 1] for item, lab in zip(samples, labels, strict=True)]
    assert sum(map(len, partial)) < sum(map(len, samples))
    full_curve = k_scaling(samples, labels, n_resamples=40, seed=2)
    assert k_scaling(partial, labels, n_resamples=40, seed=2) == full_curve
    assert full_curve[0]["std"] > 0  # K=1 really resamples
