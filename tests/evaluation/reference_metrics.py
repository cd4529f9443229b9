"""Direct re-implementations of the official formulas, written independently of
inference.core.metrics, so the parity tests compare two implementations."""

from __future__ import annotations

from collections import defaultdict


def processbench_direct(items, threshold=0.5):
    """items: (subset, label, step_scores). Returns ({subset: (err_acc, ok_acc, f1)}, avg_f1)."""
    by_subset = defaultdict(list)
    for subset, label, scores in items:
        pred = next((i for i, s in enumerate(scores) if s < threshold), -1)
        by_subset[subset].append((label, pred))
    out = {}
    for subset, rows in by_subset.items():
        err = [p == lab for lab, p in rows if lab != -1]
        ok = [p == lab for lab, p in rows if lab == -1]
        e = sum(err) / len(err) * 100
        c = sum(ok) / len(ok) * 100
        out[subset] = (e, c, 2 * e * c / (e + c) if e + c else 0.0)
    return out, sum(f for _, _, f in out.values()) / len(out)


def _f1(p, r):
    return 2 * p * r / (p + r)


def prmscore_direct(tp, fn, fp, tn, positive_only=False):
    f_pos = _f1(tp / (tp + fp), tp / (tp + fn))
    if positive_only:
        return f_pos
    f_neg = _f1(tn / (tn + fn), tn / (tn + fp))
    return 0.5 * f_pos + 0.5 * f_neg


def prmbench_direct(items, threshold=0.5):
    """items: (class, error_steps 1-based, step_scores). Returns ({class: prmscore}, overall)."""
    counts = defaultdict(lambda: [0, 0, 0, 0])
    pooled = [0, 0, 0, 0]
    for cls, error_steps, scores in items:
        for i, s in enumerate(scores):
            correct_step = (i + 1) not in error_steps
            predicted_correct = s > threshold
            k = (0 if predicted_correct else 1) if correct_step else (2 if predicted_correct else 3)
            counts[cls][k] += 1
            pooled[k] += 1
    classes = {cls: prmscore_direct(*c, positive_only=cls == "multi_solutions") for cls, c in counts.items()}
    return classes, prmscore_direct(*pooled)
