"""ProcessBench evaluation: two subset files imported with their split, external scores
and a scripted model run; metrics equal a direct re-computation of the official formulas."""

from __future__ import annotations

import pytest

from annotations.models import Solution
from evaluation import results
from evaluation.models import EvaluationRun, SolutionScore
from evaluation.workflow import create_evaluation, process_evaluation
from inference.models import ModelEndpoint
from tests.evaluation.conftest import GSM8K_ROWS, MATH_ROWS, PB_SCORES, ScriptedScorer, write_scores
from tests.evaluation.reference_metrics import processbench_direct

LABELS = {rid: label for rid, label, _ in GSM8K_ROWS + MATH_ROWS}


def direct(scores, threshold=0.5):
    items = [("gsm8k" if sid.startswith("gsm8k") else "math", LABELS[sid], s) for sid, s in scores.items()]
    return processbench_direct(items, threshold)


def test_it_evaluates_external_scores_like_the_official_formulas(pb_datasets, tmp_path):
    run = create_evaluation(benchmark="processbench", datasets=pb_datasets,
                            scores_path=write_scores(tmp_path / "ext.jsonl", PB_SCORES))  # fmt: skip
    assert run.status == EvaluationRun.Status.SUCCEEDED and run.source == "external"
    assert run.name == "ext" and run.scores_file == "ext.jsonl" and len(run.scores_sha256) == 64
    subsets, avg = direct(PB_SCORES)
    got = run.results["processbench"]["subsets"]
    assert set(got) == {"gsm8k", "math"}
    for name, (e, c, f1) in subsets.items():
        assert got[name]["error_acc"] == pytest.approx(e, abs=1e-9)
        assert got[name]["correct_acc"] == pytest.approx(c, abs=1e-9)
        assert got[name]["f1"] == pytest.approx(f1, abs=1e-9)
    # Unweighted mean of subset F1s (5 and 4 rows: a row-weighted mean would differ).
    assert (
        run.results["headline"]["value"]
        == pytest.approx(avg, abs=1e-9)
        == pytest.approx(61.9047619, abs=1e-6)
    )
    assert run.results["processbench"]["complete"] is False
    assert run.results["k_scaling"] is None  # one score per step: nothing to subsample
    assert SolutionScore.objects.filter(run=run).count() == 9 == run.solutions_done


def test_it_sweeps_thresholds_from_the_stored_scores(pb_datasets, tmp_path):
    run = create_evaluation(benchmark="processbench", datasets=pb_datasets,
                            scores_path=write_scores(tmp_path / "ext.jsonl", PB_SCORES))  # fmt: skip
    sweep = {row["threshold"]: row["value"] for row in run.results["sweep"]}
    assert len(sweep) == 19
    for t in (0.3, 0.5, 0.65):
        assert sweep[t] == pytest.approx(direct(PB_SCORES, t)[1], abs=1e-9)


def test_it_orders_worst_examples_by_error_against_the_labels(pb_datasets, tmp_path):
    run = create_evaluation(benchmark="processbench", datasets=pb_datasets,
                            scores_path=write_scores(tmp_path / "ext.jsonl", PB_SCORES))  # fmt: skip
    worst = SolutionScore.objects.filter(run=run).order_by("-loss").select_related("solution")
    # math-1 (label 0): step 0 is wrong, scored 0.1: error 0.1; gsm8k-3: all correct, 0.9 and 0.4: 0.35.
    losses = {s.solution.source_id: s.loss for s in worst}
    assert losses["math-1"] == pytest.approx(0.1) and losses["gsm8k-3"] == pytest.approx((0.1 + 0.6) / 2)
    assert worst[0].loss == max(losses.values())


def _scripted_run(pb_datasets, k=4):
    endpoint = ModelEndpoint.objects.create(
        name="scripted", role="scorer", backend="transformers", path_or_url="x"
    )
    return create_evaluation(benchmark="processbench", datasets=pb_datasets, endpoint=endpoint, n_samples=k,
                             queue=False)  # fmt: skip


def p_of(prompt, i):
    """Sample i of every step: the subset decides the level, i spreads the samples."""
    return (0.7 if "gsm8k-1 step 2" not in prompt.split("Now Step:")[-1] else 0.2) + 0.05 * (i - 1.5)


def test_it_scores_a_model_run_and_keeps_every_sample(pb_datasets):
    run = _scripted_run(pb_datasets)
    backend = ScriptedScorer(p_of)
    process_evaluation(run.id, backend=backend)
    run.refresh_from_db()
    assert run.status == EvaluationRun.Status.SUCCEEDED, run.error
    # Through the labelled first error (27 steps in all; 21 can change a ProcessBench number).
    assert run.solutions_done == run.solutions_total == 9 and run.steps_done == 21
    assert run.scored_steps == "first_error" and run.results["n_steps"] == 21
    assert run.results["n_steps_total"] == 27
    assert backend.calls == 3  # batch_size 4 solutions per call
    row = SolutionScore.objects.get(run=run, solution__source_id="gsm8k-1")
    assert [len(s) for s in row.samples] == [4, 4]  # label 1: steps 0 and 1
    assert row.step_scores[1] == pytest.approx(sum(row.samples[1]) / 4)
    assert row.verdicts[1] == ["no", "no", "no", "no"]
    # Results are a function of the stored rows.
    stored = {s.solution.source_id: s.step_scores for s in SolutionScore.objects.filter(run=run)
              .select_related("solution")}  # fmt: skip
    assert run.headline == pytest.approx(direct(stored)[1], abs=1e-9)
    assert run.results["critiques"] == {"samples": 84, "unparseable": 0}


def test_it_resumes_without_rescoring_what_is_stored(pb_datasets):
    run = _scripted_run(pb_datasets)
    first = Solution.objects.get(source_id="gsm8k-0")
    SolutionScore.objects.create(run=run, solution=first, step_scores=[1, 1, 1], samples=[[1] * 4] * 3)
    backend = ScriptedScorer(p_of)
    process_evaluation(run.id, backend=backend)
    assert sum(len(p) for p in backend.prompts) == 21 - 3
    assert SolutionScore.objects.get(run=run, solution=first).step_scores == [1, 1, 1]
    # A finished run is not claimed again.
    assert process_evaluation(run.id, backend=backend) is None


def test_it_computes_k_scaling_from_the_stored_samples(pb_datasets):
    def straddling(prompt, i):
        # gsm8k-0's first step: one sample in four below 0.5, mean 0.6 above it. So at K=4
        # the step is judged correct, while a K=1 draw misjudges it a quarter of the time.
        if "gsm8k-0 step 1" in prompt.split("Now Step:")[-1]:
            return [0.3, 0.7, 0.7, 0.7][i]
        return p_of(prompt, i)

    run = _scripted_run(pb_datasets)
    process_evaluation(run.id, backend=ScriptedScorer(straddling))
    run.refresh_from_db()
    curve = run.results["k_scaling"]
    assert [p["k"] for p in curve] == [1, 2, 4] and run.results["k_max"] == 4
    at_max = curve[-1]
    assert at_max["n_resamples"] == 1 and at_max["std"] == 0
    assert at_max["value"] == pytest.approx(run.headline, abs=1e-9)
    for p in curve:
        assert p["ci_low"] <= p["value"] <= p["ci_high"]
    assert curve[0]["n_resamples"] == 200 and curve[0]["std"] > 0 and curve[0]["value"] < at_max["value"]
    # The same numbers again from the stored rows alone (no backend), deterministic for the seed.
    assert results.k_scaling_curve("processbench", results._items(run), 0.5) == curve


def test_it_records_a_backend_failure_on_the_run(pb_datasets):
    class Broken(ScriptedScorer):
        def generate(self, prompts, n, sampling):
            raise RuntimeError("CUDA out of memory")

    run = _scripted_run(pb_datasets)
    process_evaluation(run.id, backend=Broken(p_of))
    run.refresh_from_db()
    assert run.status == EvaluationRun.Status.FAILED and "CUDA out of memory" in run.error
