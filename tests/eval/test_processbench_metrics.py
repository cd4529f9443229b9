"""ProcessBench metrics against a straightforward re-implementation of the official code.

The reference below follows QwenLM/ProcessBench code/run_eval_prm_trl.py: split rows by
label, accuracy = mean(match) * 100 per group, F1 = 2ab/(a+b), headline = plain mean
of the subset F1s.
"""

from __future__ import annotations

import json
import random

import pytest

from inference.core.metrics import (
    processbench_f1,
    processbench_metrics,
    processbench_predict,
    processbench_report,
    threshold_sweep,
)


def ref_predict(scores, threshold):
    for i, s in enumerate(scores):
        if s < threshold:
            return i
    return -1


def ref_metrics(rows):
    error = [pred == label for label, pred in rows if label != -1]
    correct = [pred == label for label, pred in rows if label == -1]
    acc1 = sum(error) / len(error) * 100
    acc2 = sum(correct) / len(correct) * 100
    f1 = 2 * acc1 * acc2 / (acc1 + acc2) if acc1 + acc2 else 0.0
    return acc1, acc2, f1


def synthetic_items(seed, n=300):
    """(label, step_scores) with scores loosely tied to the label, some exactly 0.5."""
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        n_steps = rng.randint(1, 12)
        label = -1 if rng.random() < 0.45 else rng.randrange(n_steps)
        scores = []
        for j in range(n_steps):
            if rng.random() < 0.05:
                scores.append(0.5)
            elif label != -1 and j >= label:
                scores.append(rng.betavariate(2, 3))
            else:
                scores.append(rng.betavariate(4, 2))
        items.append((label, scores))
    return items


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.61])
def test_it_matches_the_reference_on_synthetic_scores(seed, threshold):
    items = synthetic_items(seed)
    rows = [(label, processbench_predict(s, threshold)) for label, s in items]
    assert [p for _, p in rows] == [ref_predict(s, threshold) for _, s in items]
    got = processbench_metrics(rows)
    acc1, acc2, f1 = ref_metrics(rows)
    assert got["error_acc"] == pytest.approx(acc1, abs=1e-9)
    assert got["correct_acc"] == pytest.approx(acc2, abs=1e-9)
    assert got["f1"] == pytest.approx(f1, abs=1e-9)
    assert got["n_error"] == sum(1 for lab, _ in items if lab != -1)
    assert got["n_correct"] == sum(1 for lab, _ in items if lab == -1)
    assert processbench_f1([s for _, s in items], [lab for lab, _ in items], threshold) == pytest.approx(
        f1, abs=1e-9
    )


def test_it_reads_rows_shaped_like_the_published_file(tmp_path):
    rows = [
        {
            "id": "gsm8k-0",
            "generator": "Qwen2-7B-Instruct",
            "problem": "p0",
            "steps": ["a", "b", "c", "d"],
            "final_answer_correct": False,
            "label": 1,
        },
        {
            "id": "gsm8k-1",
            "generator": "Qwen2-7B-Instruct",
            "problem": "p1",
            "steps": ["a", "b"],
            "final_answer_correct": True,
            "label": -1,
        },
        {
            "id": "gsm8k-2",
            "generator": "Llama-3.1-8B-Instruct",
            "problem": "p2",
            "steps": ["a", "b", "c"],
            "final_answer_correct": False,
            "label": 0,
        },
        {
            "id": "gsm8k-3",
            "generator": "Llama-3.1-8B-Instruct",
            "problem": "p3",
            "steps": ["a"],
            "final_answer_correct": True,
            "label": -1,
        },
    ]
    path = tmp_path / "processbench_gsm8k.json"
    path.write_text(json.dumps(rows))
    loaded = json.loads(path.read_text())
    scores = {
        "gsm8k-0": [0.9, 0.2, 0.1, 0.1],  # first error found: hit
        "gsm8k-1": [0.8, 0.7],  # no error: hit
        "gsm8k-2": [0.6, 0.3, 0.9],  # error flagged one step late: miss
        "gsm8k-3": [0.4],  # false alarm: miss
    }
    pairs = [(r["label"], processbench_predict(scores[r["id"]])) for r in loaded]
    assert pairs == [(1, 1), (-1, -1), (0, 1), (-1, 0)]
    m = processbench_metrics(pairs)
    assert (m["error_acc"], m["correct_acc"], m["f1"]) == (50.0, 50.0, 50.0)
    assert ref_metrics(pairs) == (50.0, 50.0, 50.0)


def test_it_gives_the_synthetic_predictor_values():
    labels = [-1, -1, 0, 3, 2, -1, 1]
    always_correct = processbench_metrics([(lab, -1) for lab in labels])
    assert always_correct == {"error_acc": 0.0, "correct_acc": 100.0, "f1": 0.0, "n_error": 4, "n_correct": 3,
                              "undefined": {}}
    oracle = processbench_metrics([(lab, lab) for lab in labels])
    assert (oracle["error_acc"], oracle["correct_acc"], oracle["f1"]) == (100.0, 100.0, 100.0)
    always_first = processbench_metrics([(lab, 0) for lab in labels])
    assert always_first["error_acc"] == 25.0
    assert always_first["correct_acc"] == 0.0
    assert always_first["f1"] == 0.0


def test_it_treats_a_threshold_tie_as_correct_and_needs_every_score():
    assert processbench_predict([0.5, 0.5], 0.5) == -1
    assert processbench_predict([0.5, 0.4999], 0.5) == 1
    assert processbench_predict([]) == -1
    with pytest.raises(ValueError):
        processbench_predict([0.9, None])


def test_it_reports_empty_groups_as_undefined_and_none_predictions_as_misses():
    only_errors = processbench_metrics([(0, 0), (2, 1)])
    assert only_errors["error_acc"] == 50.0
    assert only_errors["correct_acc"] is None
    assert only_errors["f1"] is None
    assert only_errors["undefined"] == {"correct_acc": "no correct solutions in this subset",
                                        "f1": "no correct solutions in this subset"}
    m = processbench_metrics([(0, None), (-1, None), (-1, -1)])
    assert m["error_acc"] == 0.0
    assert m["correct_acc"] == 50.0
    with pytest.raises(ValueError):
        processbench_metrics([(-2, 0)])
    with pytest.raises(ValueError):
        processbench_metrics([(True, 0)])


def test_it_averages_subset_f1_without_weighting_by_size():
    small = [(0, 0), (-1, -1)]  # F1 100
    large = [(0, -1)] * 50 + [(-1, -1)] * 50 + [(1, 1)] * 50  # e=50, c=100 -> 66.67
    report = processbench_report({"gsm8k": small, "math": large})
    f1_large = 2 * 50 * 100 / 150
    assert report["subsets"]["gsm8k"]["f1"] == 100.0
    assert report["subsets"]["math"]["f1"] == pytest.approx(f1_large, abs=1e-9)
    assert report["avg_f1"] == pytest.approx((100.0 + f1_large) / 2, abs=1e-9)
    pooled = processbench_metrics(small + large)["f1"]
    assert report["avg_f1"] != pytest.approx(pooled)
    assert report["complete"] is False
    full = processbench_report({name: small for name in ("gsm8k", "math", "olympiadbench", "omnimath")})
    assert full["complete"] is True
    assert full["avg_f1"] == 100.0
    undefined = processbench_report({"gsm8k": small, "math": [(0, 0)]})
    assert undefined["avg_f1"] is None
    assert undefined["avg_f1_undefined"] == "F1 of math is undefined (no correct solutions in this subset)"
    assert full["avg_f1_undefined"] is None


def test_it_sweeps_thresholds_like_the_reference():
    subsets = {"gsm8k": synthetic_items(10, 120), "math": synthetic_items(11, 200)}
    sweep = threshold_sweep(subsets, thresholds=[0.7, 0.2, 0.5])
    assert [row["threshold"] for row in sweep] == [0.2, 0.5, 0.7]
    for row in sweep:
        f1s = []
        for name, items in subsets.items():
            rows = [(lab, ref_predict(s, row["threshold"])) for lab, s in items]
            f1s.append(ref_metrics(rows)[2])
            assert row["subsets"][name]["f1"] == pytest.approx(f1s[-1], abs=1e-9)
        assert row["avg_f1"] == pytest.approx(sum(f1s) / len(f1s), abs=1e-9)
    assert len(threshold_sweep(subsets)) == 19


def test_it_reads_the_subset_from_the_official_id_prefix():
    from inference.core.metrics import processbench_subset_from_id

    assert [processbench_subset_from_id(i) for i in ("gsm8k-0", "math-12", "olympiadbench-3", "omnimath-9")] == [
        "gsm8k", "math", "olympiadbench", "omnimath",
    ]  # fmt: skip
    assert processbench_subset_from_id("mathematics-1") is None and processbench_subset_from_id("math") is None


def test_a_reward_exactly_at_the_threshold_is_not_an_error():
    from inference.core.metrics import TIE_RULES

    assert processbench_predict([0.5, 0.49], 0.5) == 1
    assert "< the threshold" in TIE_RULES["processbench"] and "> the threshold" in TIE_RULES["prmbench"]
