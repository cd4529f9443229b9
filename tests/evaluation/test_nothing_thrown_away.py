"""Nothing computed is thrown away: a metric undefined on a subset is stored and shown with
its reason, the K curve skips and labels what is undefined, the run succeeds; "the first N"
is a seeded sample stratified by label, recorded on the run."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from evaluation.models import EvaluationRun, SolutionScore
from evaluation.results import run_solutions
from evaluation.selection import allocate, stratified_sample
from evaluation.workflow import create_evaluation, process_evaluation
from inference.models import ModelEndpoint
from tests.evaluation.conftest import ScriptedScorer, import_processbench

# Every solution holds an error, as the first 8 of ProcessBench's math subset do.
ONLY_ERRORS = [("math-0", 0, 3), ("math-1", 1, 3), ("math-2", 2, 4), ("math-3", 0, 2)]


def spread(prompt, i):
    return 0.3 + 0.2 * i  # K=4 samples 0.3 .. 0.9: each K draws a different mean


@pytest.fixture
def scripted(db):
    return ModelEndpoint.objects.create(name="scripted", role="scorer", backend="transformers", path_or_url="x")


def test_it_stores_an_undefined_f1_with_its_reason_and_the_run_succeeds(db, tmp_path, scripted):
    ds = import_processbench(tmp_path, ONLY_ERRORS, "math-errors", "math")
    run = create_evaluation(benchmark="processbench", datasets=[ds], endpoint=scripted, n_samples=4, queue=False)
    process_evaluation(run.id, backend=ScriptedScorer(spread))
    run.refresh_from_db()
    assert run.status == EvaluationRun.Status.SUCCEEDED, run.error
    r = run.results
    math = r["processbench"]["subsets"]["math"]
    assert math["f1"] is None and math["correct_acc"] is None and math["error_acc"] is not None
    assert math["undefined"]["f1"] == "no correct solutions in this subset"
    assert r["headline"]["value"] is None
    assert r["headline"]["undefined"] == "F1 of math is undefined (no correct solutions in this subset)"
    # Every K point is kept, skipped and labelled; nothing scored is lost.
    assert [p["k"] for p in r["k_scaling"]] == [1, 2, 4]
    assert all(p["value"] is None and p["undefined"] == f"metric undefined at K={p['k']}" for p in r["k_scaling"])
    assert r["k_scaling_undefined"] == r["headline"]["undefined"]
    assert SolutionScore.objects.filter(run=run).count() == 4
    assert all(row["value"] is None for row in r["sweep"]) and len(r["sweep"]) == 19


def test_the_results_page_marks_the_undefined_f1_and_the_skipped_k(client, reviewer, tmp_path, scripted):
    ds = import_processbench(tmp_path, ONLY_ERRORS, "math-errors", "math")
    run = create_evaluation(benchmark="processbench", datasets=[ds], endpoint=scripted, n_samples=2, queue=False)
    process_evaluation(run.id, backend=ScriptedScorer(spread))
    client.force_login(reviewer)
    html = client.get(reverse("evaluation:run_detail", args=[run.uuid])).content.decode()
    assert 'id="eval-headline"><b class="undefined">undefined</b>' in html
    assert "no correct solutions in this subset" in html
    assert "skipped</span>: metric undefined at K=1" in html
    # Steps after the labelled first error were not critiqued, and say so (never 0 or 1).
    assert "not scored: after the first error" in html
    results_html = client.get(reverse("evaluation:results")).content.decode()
    assert 'class="undefined"' in results_html


def test_the_cli_reports_the_undefined_f1_and_exits_cleanly(db, tmp_path, scripted, monkeypatch, capsys):
    import_processbench(tmp_path, ONLY_ERRORS, "math-errors", "math")
    monkeypatch.setattr("evaluation.workflow.get_backend", lambda endpoint: ScriptedScorer(spread))
    call_command("evaluate", "--benchmark", "processbench", "--dataset", "math-errors", "--model", "scripted",
                 "-K", "2", "--json")  # fmt: skip
    out = capsys.readouterr().out
    assert "Avg. F1 undefined: F1 of math is undefined (no correct solutions in this subset)" in out
    assert "K=1   skipped: metric undefined at K=1" in out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "succeeded" and summary["avg_f1"] is None
    assert summary["k_scaling"][0] == {"k": 1, "value": None, "ci_low": None, "ci_high": None,
                                       "undefined": "metric undefined at K=1"}  # fmt: skip


def test_the_first_n_is_stratified_by_label_and_seeded(pb_datasets, scripted):
    # gsm8k + math: 4 solutions without an error, 5 with one; the first 4 by id hold both
    # kinds only by luck of the file order, the stratified 4 always do.
    run = create_evaluation(benchmark="processbench", datasets=pb_datasets, endpoint=scripted,
                            solution_limit=4, solution_seed=3, queue=False)  # fmt: skip
    sel = run.selection
    assert sel["seed"] == 3 and sel["n"] == 4 and len(sel["solution_ids"]) == 4
    assert {s["name"]: (s["available"], s["taken"]) for s in sel["strata"]} == {
        "with an error": (5, 2),
        "without an error": (4, 2),
    }
    chosen = list(run_solutions(run))
    assert sorted(s.id for s in chosen) == sel["solution_ids"] == sorted(sel["solution_ids"])
    assert {s.first_error_index == -1 for s in chosen} == {True, False}
    again = create_evaluation(benchmark="processbench", datasets=pb_datasets, endpoint=scripted,
                              solution_limit=4, solution_seed=3, queue=False)  # fmt: skip
    assert again.selection["solution_ids"] == sel["solution_ids"]
    picks = {
        tuple(create_evaluation(benchmark="processbench", datasets=pb_datasets, endpoint=scripted,
                                solution_limit=4, solution_seed=seed, queue=False).selection["solution_ids"])
        for seed in range(6)
    }  # fmt: skip
    assert len(picks) > 1  # the seed decides which, within each stratum
    assert run.solutions_total == 4


def test_a_limited_run_scores_its_selection_and_says_so(client, reviewer, pb_datasets, scripted):
    run = create_evaluation(benchmark="processbench", datasets=pb_datasets, endpoint=scripted,
                            solution_limit=3, queue=False)  # fmt: skip
    backend = ScriptedScorer(spread)
    process_evaluation(run.id, backend=backend)
    run.refresh_from_db()
    scored = set(SolutionScore.objects.filter(run=run).values_list("solution_id", flat=True))
    assert scored == set(run.selection["solution_ids"]) and run.solutions_done == 3
    client.force_login(reviewer)
    html = client.get(reverse("evaluation:run_detail", args=[run.uuid])).content.decode()
    assert "first 3 solutions, stratified by label (with / without an error), seed 0" in html


def test_prmbench_strata_are_its_classes(prm_dataset, scripted):
    run = create_evaluation(benchmark="prmbench", datasets=[prm_dataset], endpoint=scripted,
                            solution_limit=5, queue=False)  # fmt: skip
    strata = {s["name"]: s["taken"] for s in run.selection["strata"]}
    assert set(strata) == {"confidence", "redundency", "circular", "counterfactual", "multi_solutions"}
    assert all(taken == 1 for taken in strata.values())
    assert run.scored_steps == "all"  # PRMBench counts every step


def test_allocation_gives_every_stratum_one_then_shares_by_size():
    assert allocate({"a": 90, "b": 10}, 10) == {"a": 9, "b": 1}
    assert allocate({"a": 99, "b": 1}, 10) == {"a": 9, "b": 1}  # the small class is still in
    assert allocate({"a": 3, "b": 2}, 50) == {"a": 3, "b": 2}
    assert allocate({"a": 5, "b": 5, "c": 0}, 1) == {"a": 1, "b": 0}
    ids, strata = stratified_sample([(i, "x" if i % 3 else "y") for i in range(30)], 6, seed=1)
    assert len(ids) == 6 and ids == sorted(ids)
    assert {s["name"]: s["taken"] for s in strata} == {"x": 4, "y": 2}



def test_the_launch_form_takes_the_seed_and_the_steps_to_critique(client, admin, pb_datasets, prm_dataset, scripted):
    client.force_login(admin)
    html = client.get(reverse("evaluation:evaluation_new")).content.decode()
    assert 'name="solution_seed"' in html and 'name="scored_steps"' in html and "Stratified by label" in html
    base = {"n_samples": 2, "threshold": 0.5, "max_new_tokens": 64, "endpoint": scripted.id}
    refused = client.post(reverse("evaluation:evaluation_new"), {**base, "benchmark": "prmbench",
                          "datasets": [prm_dataset.id], "scored_steps": "first_error"})  # fmt: skip
    assert "PRMBench scores every step" in refused.content.decode()
    response = client.post(reverse("evaluation:evaluation_new"), {
        **base, "benchmark": "processbench", "datasets": [d.id for d in pb_datasets], "solution_limit": 4,
        "solution_seed": 5, "scored_steps": "predicted_error", "name": "launched"})  # fmt: skip
    assert response.status_code == 302
    run = EvaluationRun.objects.get(name="launched")
    assert run.scored_steps == "predicted_error" and run.selection["seed"] == 5 and run.solutions_total == 4
