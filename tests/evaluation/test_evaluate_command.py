"""`manage.py evaluate`: --json's last line is one JSON object with the metrics."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from evaluation.models import EvaluationRun, SolutionScore
from tests.evaluation.conftest import PB_SCORES, PRM_SCORES, write_scores
from tests.evaluation.test_evaluation_processbench import direct


def _call(*args):
    out = io.StringIO()
    call_command("evaluate", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip().splitlines()


def test_it_prints_processbench_metrics_as_the_last_json_line(pb_datasets, tmp_path):
    scores = write_scores(tmp_path / "ext.jsonl", PB_SCORES)
    lines = _call("--benchmark", "processbench", "--dataset", "pb-gsm8k", "--dataset", "pb-math", "--scores",
                  str(scores), "--json")  # fmt: skip
    summary = json.loads(lines[-1])
    subsets, avg = direct(PB_SCORES)
    assert summary["benchmark"] == "processbench" and summary["status"] == "succeeded"
    assert summary["headline"]["metric"] == "avg_f1" and summary["headline"]["value"] == pytest.approx(avg)
    assert summary["avg_f1"] == pytest.approx(avg)
    assert {k: v["f1"] for k, v in summary["subsets"].items()} == pytest.approx(
        {k: v[2] for k, v in subsets.items()}
    )
    assert any(line.startswith("Avg. F1") for line in lines[:-1])


def test_it_prints_prmbench_classes_and_overall(prm_dataset, tmp_path):
    scores = write_scores(tmp_path / "prm.jsonl", PRM_SCORES)
    summary = json.loads(_call("--benchmark", "prmbench", "--dataset", "prmbench-mini", "--scores", str(scores),
                               "--json", "--threshold", "0.5")[-1])  # fmt: skip
    assert set(summary["classes"]) == {
        "confidence",
        "redundency",
        "circular",
        "counterfactual",
        "multi_solutions",
    }
    assert summary["headline"]["value"] == pytest.approx(100 * summary["overall"])
    assert set(summary["dimensions"]) == {"simplicity", "soundness", "sensitivity"}


def test_it_evaluates_the_tiny_model_here(pb_datasets, tiny_endpoint):
    lines = _call("--benchmark", "processbench", "--dataset", "pb-gsm8k,pb-math", "--model", "tiny-scorer",
                  "--samples", "2", "--limit", "3", "--seed", "1", "--json")  # fmt: skip
    summary = json.loads(lines[-1])
    assert summary["status"] == "succeeded" and summary["k"] == 2 and summary["n_solutions"] == 3
    assert [p["k"] for p in summary["k_scaling"]] == [1, 2]
    run = EvaluationRun.objects.get(uuid=summary["run"])
    assert run.max_new_tokens == 12 and run.temperature == 0.95 and run.tokens_generated > 0
    for row in SolutionScore.objects.filter(run=run):
        assert all(len(s) == 2 and all(0 <= p <= 1 for p in s) for s in row.samples)


def test_it_reports_a_bad_scores_file_with_its_line(pb_datasets, tmp_path):
    path = write_scores(tmp_path / "bad.jsonl", {**PB_SCORES, "math-1": [0.1]})
    with pytest.raises(
        CommandError, match=r"bad.jsonl, line 7: step_scores: 1 scores for a solution of 2 steps"
    ):
        _call(
            "--benchmark",
            "processbench",
            "--dataset",
            "pb-gsm8k",
            "--dataset",
            "pb-math",
            "--scores",
            str(path),
        )
    with pytest.raises(CommandError, match="no dataset named 'nope'"):
        _call("--benchmark", "processbench", "--dataset", "nope", "--scores", str(path))
    with pytest.raises(CommandError, match="not in prmbench format"):
        _call("--benchmark", "prmbench", "--dataset", "pb-math", "--scores", str(path))
