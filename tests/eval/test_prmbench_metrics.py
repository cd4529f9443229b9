"""PRMBench metrics against a straightforward re-implementation of the official code.

The reference follows ssmisya/PRMBench mr_eval/tasks/prmtest_classified/task.py
(eval_on_hallucination_step + evaluate_function: -1 for a zero denominator, F1 = -1
when precision + recall == 0, "correct" items kept out of the totals) and the table
code in NJUNLP/R-PRM src/evaluate/PRMBench/code/get_result.py (PRMScore, multi_solutions
positive-only, dimension = mean of its classes).
"""

from __future__ import annotations

import json
import random

import pytest

from inference.core.metrics import (
    PRMBENCH_DIMENSIONS,
    Confusion,
    f1_scores,
    prmbench_confusion,
    prmbench_report,
    prmbench_step_predictions,
    prmscore,
)

CLASSES = [c for members in PRMBENCH_DIMENSIONS.values() for c in members]


def ref_counts(error_steps, labels):
    hallucination_steps = [i - 1 for i in error_steps]
    TP = FP = TN = FN = 0
    for idx in range(len(labels)):
        if idx in hallucination_steps:
            if labels[idx] == 1:
                FP += 1
            else:
                TN += 1
        else:
            if labels[idx] == 1:
                TP += 1
            else:
                FN += 1
    return dict(TP=TP, FP=FP, TN=TN, FN=FN)


def ref_f1s(m):
    TP, FP, FN, TN = m["TP"], m["FP"], m["FN"], m["TN"]
    precision = TP / (TP + FP) if (TP + FP) != 0 else -1
    recall = TP / (TP + FN) if (TP + FN) != 0 else -1
    f1 = 2 * precision * recall / (precision + recall) if (precision + recall) != 0 else -1
    negative_precision = TN / (TN + FN) if (TN + FN) != 0 else -1
    negative_recall = TN / (TN + FP) if (TN + FP) != 0 else -1
    negative_f1 = (
        2 * negative_precision * negative_recall / (negative_precision + negative_recall)
        if (negative_precision + negative_recall) != 0
        else -1
    )
    return f1, negative_f1


def ref_evaluate(items, threshold=0.5):
    total = dict(TP=0, FP=0, TN=0, FN=0)
    per_class = {}
    for item in items:
        labels = [s > threshold for s in item["step_scores"]]
        m = ref_counts(item["error_steps"], labels)
        cls = item["classification"]
        per_class.setdefault(cls, dict(TP=0, FP=0, TN=0, FN=0))
        for k in m:
            per_class[cls][k] += m[k]
            if cls != "correct":
                total[k] += m[k]
    f1, nf1 = ref_f1s(total)
    overall = f1 * 0.5 + nf1 * 0.5
    class_scores = {}
    for cls, m in per_class.items():
        f1, nf1 = ref_f1s(m)
        class_scores[cls] = f1 if cls == "multi_solutions" else f1 * 0.5 + nf1 * 0.5
    # The official table code raises KeyError for a missing class; here that dimension is None.
    dims = {
        d: sum(class_scores[c] for c in members) / len(members)
        if all(c in class_scores for c in members)
        else None
        for d, members in PRMBENCH_DIMENSIONS.items()
    }
    return overall, class_scores, dims, total


def synthetic_items(seed, per_class=25):
    rng = random.Random(seed)
    items = []
    for cls in CLASSES + ["correct"]:
        for _ in range(per_class if cls != "multi_solutions" else 6):
            n = rng.randint(2, 15)
            if cls in ("multi_solutions", "correct"):
                error_steps = []
            else:
                error_steps = sorted(rng.sample(range(1, n + 1), rng.randint(1, min(3, n))))
            scores = []
            for j in range(1, n + 1):
                if rng.random() < 0.05:
                    scores.append(0.5)
                elif j in error_steps:
                    scores.append(rng.betavariate(2, 3))
                else:
                    scores.append(rng.betavariate(4, 2))
            items.append({"classification": cls, "error_steps": error_steps, "step_scores": scores})
    return items


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("threshold", [0.5, 0.61])
def test_it_matches_the_reference_on_synthetic_scores(seed, threshold):
    items = synthetic_items(seed)
    report = prmbench_report(items, threshold=threshold)
    overall, class_scores, dims, total = ref_evaluate(items, threshold)
    # The official table reports a PRMScore below 0 as 0.
    assert report["overall"] == pytest.approx(max(0.0, overall), abs=1e-9)
    assert report["overall_counts"] == {
        "tp": total["TP"],
        "fn": total["FN"],
        "fp": total["FP"],
        "tn": total["TN"],
    }
    assert set(report["classes"]) == set(class_scores)
    for cls, value in class_scores.items():
        assert report["classes"][cls]["prmscore_unclamped"] == pytest.approx(value, abs=1e-9)
        assert report["classes"][cls]["prmscore"] == pytest.approx(max(0.0, value), abs=1e-9)
    for dim, members in PRMBENCH_DIMENSIONS.items():
        clamped = [max(0.0, class_scores[m]) for m in members]
        assert report["dimensions"][dim]["prmscore"] == pytest.approx(sum(clamped) / len(clamped), abs=1e-9)
        assert report["dimensions"][dim]["missing"] == []
    assert report["n_items"] == len(items)


def test_it_reads_rows_shaped_like_the_published_file(tmp_path):
    rows = [
        {
            "original_question": "q",
            "modified_question": "q",
            "original_process": ["s1", "s2", "s3"],
            "modified_process": ["s1", "s2 wrong", "s3 wrong"],
            "modified_steps": [2, 3],
            "error_steps": [2, 3],
            "reason": "r",
            "idx": "prm_test_p1_0",
            "question": "q",
            "classification": "confidence",
        },
        {
            "original_question": "q2",
            "modified_question": "q2",
            "original_process": ["a", "b"],
            "modified_process": ["a", "b", "c", "d"],
            "modified_steps": [],
            "error_steps": [],
            "reason": "r",
            "idx": "prm_test_p1_1",
            "question": "q2",
            "classification": "multi_solutions",
        },
        {
            "original_question": "q3",
            "modified_question": "q3",
            "original_process": ["x", "y"],
            "modified_process": ["x", "x again", "y"],
            "modified_steps": [2],
            "error_steps": [2],
            "reason": "r",
            "idx": "prm_test_p1_2",
            "question": "q3",
            "classification": "redundency",
        },
    ]
    path = tmp_path / "prmbench.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    loaded = [json.loads(line) for line in path.read_text().splitlines()]
    scores = {
        "confidence": [0.9, 0.2, 0.7],
        "multi_solutions": [0.8, 0.4, 0.9, 0.6],
        "redundency": [0.6, 0.5, 0.55],
    }
    for row in loaded:
        row["step_scores"] = scores[row["classification"]]
    report = prmbench_report(loaded)
    c = report["classes"]
    assert (c["confidence"]["tp"], c["confidence"]["fn"], c["confidence"]["fp"], c["confidence"]["tn"]) == (
        1,
        0,
        1,
        1,
    )
    assert (c["multi_solutions"]["tp"], c["multi_solutions"]["fn"]) == (3, 1)
    # confidence: F1+ = 2/3 (p=1/2, r=1), F1- = 2/3 (p=1, r=1/2)
    assert c["confidence"]["prmscore"] == pytest.approx(2 / 3, abs=1e-12)
    # multi_solutions: positive only, p=1, r=3/4
    assert c["multi_solutions"]["prmscore"] == pytest.approx(6 / 7, abs=1e-12)
    # redundency: 0.5 is not > 0.5, so step 2 is predicted wrong: TP 2, TN 1
    assert c["redundency"]["prmscore"] == 1.0
    assert report["dimensions"]["simplicity"] == {"prmscore": 1.0, "missing": ["circular"]}
    assert report["dimensions"]["sensitivity"]["prmscore"] == pytest.approx(6 / 7)
    assert report["overall_counts"] == {"tp": 6, "fn": 1, "fp": 1, "tn": 2}
    overall, *_ = ref_evaluate(loaded)
    assert report["overall"] == pytest.approx(overall, abs=1e-12)


def test_it_counts_a_step_correct_only_above_the_threshold():
    assert prmbench_step_predictions([0.5, 0.50001, 0.2]) == [False, True, False]
    assert prmbench_confusion([1], [0.9, 0.9]) == Confusion(tp=1, fn=0, fp=1, tn=0)
    # An error step past the last score is ignored, as in the official loop.
    assert prmbench_confusion([3], [0.9, 0.1]) == Confusion(tp=1, fn=1, fp=0, tn=0)


def test_it_reproduces_the_official_zero_division_sentinels():
    # TP = 0 with FP, FN > 0: precision = recall = 0, so the official F1 is -1.
    assert f1_scores(0, 2, 3, 1)["f1_positive"] == -1
    assert f1_scores(0, 2, 3, 1, zero_division="zero")["f1_positive"] == 0.0
    # Nothing predicted positive: precision -1, recall 0 -> 2*(-1)*0/(-1) = 0.
    assert f1_scores(0, 4, 0, 2)["precision"] == -1
    assert f1_scores(0, 4, 0, 2)["f1_positive"] == 0
    # multi_solutions-like counts: no wrong steps, negative recall undefined.
    assert f1_scores(3, 1, 0, 0)["negative_recall"] == -1
    assert prmscore(3, 1, 0, 0, positive_only=True) == pytest.approx(6 / 7)
    for counts in [(0, 2, 3, 1), (0, 4, 0, 2), (3, 1, 0, 0), (0, 0, 0, 0), (5, 0, 0, 5), (2, 3, 1, 4)]:
        tp, fn, fp, tn = counts
        f1, nf1 = ref_f1s(dict(TP=tp, FN=fn, FP=fp, TN=tn))
        assert prmscore(*counts, clamp=False) == pytest.approx(0.5 * f1 + 0.5 * nf1, abs=1e-12)
        assert prmscore(*counts, positive_only=True, clamp=False) == pytest.approx(f1, abs=1e-12)
        # Clamped at 0 as the official table reports it.
        assert prmscore(*counts) == pytest.approx(max(0.0, 0.5 * f1 + 0.5 * nf1), abs=1e-12)
    assert prmscore(0, 2, 3, 1, clamp=False) < 0 == prmscore(0, 2, 3, 1)


def test_it_keeps_correct_items_out_of_the_overall_and_skips_invalid_items():
    items = [
        {"classification": "confidence", "error_steps": [2], "step_scores": [0.9, 0.1]},
        {"classification": "correct", "error_steps": [], "step_scores": [0.1, 0.1, 0.1]},
        {"classification": "deception", "error_steps": [1], "step_scores": None},
        {"classification": "deception", "error_steps": [1], "step_scores": [0.3, None]},
    ]
    report = prmbench_report(items)
    assert report["overall_counts"] == {"tp": 1, "fn": 0, "fp": 0, "tn": 1}
    assert report["overall"] == 1.0
    assert report["classes"]["correct"]["fn"] == 3
    assert report["n_invalid"] == 2
    assert report["n_items"] == 2
    assert "deception" not in report["classes"]
    assert prmbench_report([])["overall"] is None
