"""PRMBench evaluation of external scores: per class, per dimension and overall, as the
official definition (positive = correct step; multi_solutions positive F1 only)."""

from __future__ import annotations

import pytest

from evaluation.workflow import create_evaluation
from tests.evaluation.conftest import PRM_ROWS, PRM_SCORES, write_scores
from tests.evaluation.reference_metrics import prmbench_direct


def test_it_scores_classes_dimensions_and_overall_like_the_official_formulas(prm_dataset, tmp_path):
    run = create_evaluation(benchmark="prmbench", datasets=[prm_dataset],
                            scores_path=write_scores(tmp_path / "prm.jsonl", PRM_SCORES))  # fmt: skip
    items = [(cls, errs, PRM_SCORES[f"{idx}/{cls}"]) for idx, cls, errs, _ in PRM_ROWS]
    classes, overall = prmbench_direct(items)
    report = run.results["prmbench"]
    assert set(report["classes"]) == set(classes)
    for cls, value in classes.items():
        assert report["classes"][cls]["prmscore"] == pytest.approx(value, abs=1e-9), cls
    assert report["overall"] == pytest.approx(overall, abs=1e-9)
    assert run.results["headline"]["value"] == pytest.approx(100 * overall, abs=1e-9)
    dims = report["dimensions"]
    assert dims["simplicity"]["prmscore"] == pytest.approx((classes["redundency"] + classes["circular"]) / 2)
    assert dims["soundness"]["prmscore"] == pytest.approx(
        (classes["confidence"] + classes["counterfactual"]) / 2
    )
    assert dims["soundness"]["missing"] == ["step_contradiction", "domain_inconsistency"]
    assert dims["sensitivity"]["prmscore"] == pytest.approx(classes["multi_solutions"])


def test_it_sweeps_prmbench_thresholds(prm_dataset, tmp_path):
    run = create_evaluation(benchmark="prmbench", datasets=[prm_dataset],
                            scores_path=write_scores(tmp_path / "prm.jsonl", PRM_SCORES))  # fmt: skip
    items = [(cls, errs, PRM_SCORES[f"{idx}/{cls}"]) for idx, cls, errs, _ in PRM_ROWS]
    row = next(r for r in run.results["sweep"] if r["threshold"] == 0.45)
    assert row["value"] == pytest.approx(100 * prmbench_direct(items, 0.45)[1], abs=1e-9)


def test_it_refuses_a_prmbench_run_over_two_datasets(prm_dataset, pb_datasets, tmp_path):
    with pytest.raises(ValueError, match="not in prmbench format"):
        create_evaluation(benchmark="prmbench", datasets=pb_datasets, scores_path=tmp_path / "x.jsonl")
