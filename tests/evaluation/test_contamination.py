"""Contamination: PRMBench-like items built from PRM800K-like train problems are found,
verbatim and after normalisation, reported by the command and on the evaluation."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from annotations.actions import import_file
from evaluation.results import contamination
from evaluation.workflow import create_evaluation
from tests.annotations.factories_files import prm800k_row, prmbench_row, write_jsonl
from tests.evaluation.conftest import write_scores

TRAIN_Q = "What is the greatest common factor of $12$ and $18$?"
TRAIN_Q2 = "Compute $\\frac{1}{2} + \\frac{1}{3}$."


@pytest.fixture
def datasets(db, tmp_path):
    train = write_jsonl(tmp_path / "prm800k.jsonl", [prm800k_row(problem=TRAIN_Q), prm800k_row(
        problem=TRAIN_Q2, timestamp="2023-01-23T00:00:00")])  # fmt: skip
    train_ds = import_file(train, dataset_name="prm800k-train", fmt="prm800k").dataset
    rows = [
        prmbench_row("a", "confidence", [2], question=TRAIN_Q),  # verbatim
        prmbench_row("a", "redundency", [3], question=TRAIN_Q),  # same problem, second item
        prmbench_row("b", "confidence", [1], question="Compute \\dfrac12+\\dfrac13."),  # normalised match
        prmbench_row("c", "circular", [2], question="What is 7 times 6?"),  # clean
    ]
    eval_ds = import_file(write_jsonl(tmp_path / "prmbench.jsonl", rows), dataset_name="prmbench-c",
                          fmt="prmbench").dataset  # fmt: skip
    return eval_ds, train_ds


def test_it_counts_exact_and_normalised_matches(datasets):
    eval_ds, train_ds = datasets
    report = contamination([eval_ds])  # training data defaults to the PRM800K datasets
    assert report["train_datasets"] == ["prm800k-train"] and report["n_problems"] == 3
    assert report["exact"]["problems"] == 1 and report["exact"]["solutions"] == 2
    assert report["normalized"]["problems"] == 2 and report["normalized"]["solutions"] == 3
    assert report["normalized"]["solution_rate"] == pytest.approx(3 / 4)


def test_the_command_reports_it(datasets):
    out = io.StringIO()
    call_command("contamination_report", "--dataset", "prmbench-c", "--ids", "--json", stdout=out)
    lines = out.getvalue().strip().splitlines()
    report = json.loads(lines[-1])
    assert report["normalized"]["problems"] == 2
    assert any(line.startswith("exact") and "1 of 3 problems" in line for line in lines)
    assert len(report["normalized"]["source_ids"]) == 2 and len(lines) == 3 + 2 + 1


def test_an_evaluation_shows_it_with_the_clean_headline(datasets, tmp_path):
    eval_ds, _ = datasets
    scores = {"a/confidence": [0.9, 0.2, 0.8, 0.7], "a/redundency": [0.9, 0.8, 0.3, 0.6],
              "b/confidence": [0.1, 0.9, 0.6, 0.7], "c/circular": [0.8, 0.4, 0.9, 0.2]}  # fmt: skip
    run = create_evaluation(benchmark="prmbench", datasets=[eval_ds], scores_path=write_scores(tmp_path / "s.jsonl",
                            scores))  # fmt: skip
    assert run.results["contamination"]["normalized"]["solutions"] == 3
    # Only c/circular is clean: TP 2, FN 1, FP 0, TN 1 -> 0.5 * 0.8 + 0.5 * 2/3.
    assert run.results["clean"]["n_solutions"] == 1
    assert run.results["clean"]["headline"] == pytest.approx(100 * (0.4 + 1 / 3))
