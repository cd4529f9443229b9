"""ProcessBench critiques only what can change its numbers: steps through the labelled first
error (the authors' rows). On a file shaped like the public gsm8k sample, the CLI reports
exactly that step count, and F1, the threshold sweep and the K curve equal those of a run
over every step with the same scores. Stopping at the first predicted error too is exact
at the run's threshold."""

from __future__ import annotations

import io
import json
import random

import pytest
from django.core.management import call_command
from django.urls import reverse

from evaluation.models import EvaluationRun, SolutionScore
from evaluation.results import compute_results
from evaluation.workflow import create_evaluation, process_evaluation
from inference.models import ModelEndpoint
from rprm_web import runs
from tests.evaluation.conftest import ScriptedScorer, import_processbench


def gsm8k_shaped(n: int, seed: int = 0) -> list[dict]:
    """Rows with the public gsm8k sample's keys and layout (a JSON array, ids gsm8k-N)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        n_steps = rng.randint(2, 7)
        label = -1 if rng.random() < 0.45 else rng.randrange(n_steps)
        rows.append({
            "id": f"gsm8k-{i}",
            "generator": "Qwen2-7B-Instruct",
            "problem": f"Sam has {i + 3} apples and buys {i % 5 + 2} more. How many apples does Sam have?",
            "steps": [f"Step text {j + 1} of solution {i}: {i + 3} + {j} = {i + 3 + j}." for j in range(n_steps)],
            "final_answer_correct": label == -1,
            "label": label,
        })  # fmt: skip
    return rows


def through_first_error(rows: list[dict]) -> int:
    return sum(len(r["steps"]) if r["label"] == -1 else r["label"] + 1 for r in rows)


def _evaluate(*args: str) -> list[str]:
    out = io.StringIO()
    call_command("evaluate", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip().splitlines()


def _full_step_run(partial: EvaluationRun, extra_seed: int = 7) -> EvaluationRun:
    """A run over every step whose common steps carry the partial run's very scores; the
    steps after each first error get scores of their own (some below the threshold)."""
    rng = random.Random(extra_seed)
    full = create_evaluation(benchmark="processbench", datasets=list(partial.datasets.all()),
                             endpoint=partial.endpoint, n_samples=partial.n_samples, scored_steps="all",
                             queue=False)  # fmt: skip
    rows = []
    for s in SolutionScore.objects.filter(run=partial).select_related("solution"):
        extra = [[rng.random() for _ in range(partial.n_samples)] for _ in range(s.solution.n_steps - len(s.samples))]
        rows.append(SolutionScore(run=full, solution=s.solution, samples=s.samples + extra,
                                  step_scores=s.step_scores + [sum(x) / len(x) for x in extra]))  # fmt: skip
    SolutionScore.objects.bulk_create(rows)
    return full


def test_it_critiques_exactly_the_steps_through_the_first_error_via_the_cli(db, tmp_path, tiny_model_dir):
    rows = gsm8k_shaped(16)
    path = tmp_path / "processbench_gsm8k.json"
    path.write_text(json.dumps(rows, indent=2))
    call_command("import_dataset", str(path), "--name", "pb-gsm8k-shaped", stdout=io.StringIO())
    expected = through_first_error(rows)
    total = sum(len(r["steps"]) for r in rows)
    assert expected < total
    lines = _evaluate("--benchmark", "processbench", "--dataset", "pb-gsm8k-shaped", "--model", str(tiny_model_dir),
                      "-K", "2", "--max-new-tokens", "3", "--seed", "1", "--json")  # fmt: skip
    summary = json.loads(lines[-1])
    assert summary["status"] == "succeeded" and summary["scored_steps"] == "first_error"
    assert summary["n_steps"] == expected and summary["n_steps_total"] == total
    assert f"steps critiqued: {expected} of {total} (through the first labelled error)" in lines
    run = EvaluationRun.objects.get(uuid=summary["run"])
    assert run.steps_done == expected
    assert sum(len(v) for v in SolutionScore.objects.filter(run=run).values_list("verdicts", flat=True)) == expected

    full = _full_step_run(run)
    a, b = run.results, compute_results(full)
    assert b["n_steps"] == total and a["n_steps"] == expected
    assert a["processbench"]["subsets"] == b["processbench"]["subsets"]
    assert a["headline"]["value"] == b["headline"]["value"]
    assert a["sweep"] == b["sweep"]
    assert a["k_scaling"] == b["k_scaling"] and [p["k"] for p in a["k_scaling"]] == [1, 2]


@pytest.fixture
def scripted(db):
    return ModelEndpoint.objects.create(name="scripted", role="scorer", backend="transformers", path_or_url="x")


def falling(prompt, i):
    """Rewards fall along a solution: step n scores 1 - 0.2 n (below 0.5 from step 3 on)."""
    n = int(prompt.split("Now Step:")[-1].split(" step ")[-1].split(":")[0])
    return max(0.0, 1.0 - 0.2 * n) + 0.01 * i


ROWS = [("gsm8k-0", -1, 5), ("gsm8k-1", 3, 5), ("gsm8k-2", 0, 4), ("gsm8k-3", -1, 2), ("gsm8k-4", 4, 6)]


def test_the_predicted_error_option_stops_early_and_is_exact_at_its_threshold(tmp_path, scripted):
    ds = import_processbench(tmp_path, ROWS, "pb-small", "gsm8k")
    stop = create_evaluation(benchmark="processbench", datasets=[ds], endpoint=scripted, n_samples=2,
                             scored_steps="predicted_error", batch_size=5, queue=False)  # fmt: skip
    backend = ScriptedScorer(falling)
    process_evaluation(stop.id, backend=backend)
    stop.refresh_from_db()
    assert stop.status == EvaluationRun.Status.SUCCEEDED, stop.error
    scored = {s.solution.source_id: len(s.step_scores)
              for s in SolutionScore.objects.filter(run=stop).select_related("solution")}  # fmt: skip
    # The first predicted error is step 3 (index 2); a labelled error before it stops sooner.
    assert scored == {"gsm8k-0": 3, "gsm8k-1": 3, "gsm8k-2": 1, "gsm8k-3": 2, "gsm8k-4": 3}
    assert backend.calls == 3  # one call per step position over the solutions still going
    full = create_evaluation(benchmark="processbench", datasets=[ds], endpoint=scripted, n_samples=2,
                             scored_steps="all", queue=False)  # fmt: skip
    process_evaluation(full.id, backend=ScriptedScorer(falling))
    full.refresh_from_db()
    assert full.steps_done == 22 and stop.steps_done == 12
    assert stop.results["processbench"]["subsets"] == full.results["processbench"]["subsets"]
    # Other thresholds would need the steps it skipped: no sweep, no K curve.
    assert stop.results["sweep"] is None and stop.results["k_scaling"] is None


def test_the_pages_show_unscored_steps_as_not_scored(client, reviewer, tmp_path, scripted):
    ds = import_processbench(tmp_path, ROWS, "pb-small", "gsm8k")
    run = create_evaluation(benchmark="processbench", datasets=[ds], endpoint=scripted, n_samples=2, queue=False)
    process_evaluation(run.id, backend=ScriptedScorer(falling))
    score = SolutionScore.objects.select_related("solution").get(run=run, solution__source_id="gsm8k-2")
    assert len(score.step_scores) == 1  # label 0: only the first step is critiqued
    client.force_login(reviewer)
    url = reverse("evaluation:run_solution", args=[run.uuid, score.solution.uuid])
    html = client.get(url).content.decode()
    assert html.count('<span class="not-scored">not scored: after the first error</span>') == 3
    assert 'id="steps-scored">1 of 4' in html
    detail = client.get(reverse("evaluation:run_detail", args=[run.uuid])).content.decode()
    assert "steps critiqued of 22 (not scored: after the first error)" in detail
    client.logout()
    assert client.get(url).status_code == 302


def test_a_retried_run_scores_only_the_missing_steps_through_the_first_error(client, reviewer, tmp_path, scripted):
    ds = import_processbench(tmp_path, ROWS, "pb-small", "gsm8k")
    run = create_evaluation(benchmark="processbench", datasets=[ds], endpoint=scripted, n_samples=2, batch_size=2,
                            queue=False)  # fmt: skip

    class FailsOnSecondCall(ScriptedScorer):
        def generate(self, prompts, n, sampling):
            if self.calls == 1:
                raise RuntimeError("CUDA out of memory")
            return super().generate(prompts, n, sampling)

    first = FailsOnSecondCall(falling)
    process_evaluation(run.id, backend=first)
    run.refresh_from_db()
    assert run.status == EvaluationRun.Status.FAILED and run.solutions_done == 2
    # What it scored before failing is kept and shown, marked partial.
    assert run.results["partial"] is True and run.results["n_solutions"] == 2 and run.results["n_steps"] == 9
    client.force_login(reviewer)
    html = client.get(reverse("evaluation:run_detail", args=[run.uuid])).content.decode()
    assert "Partial results: this run failed after scoring 2 of 5 solutions" in html and 'id="subset-table"' in html
    assert runs.retry(EvaluationRun, run.id)
    second = ScriptedScorer(falling)
    process_evaluation(run.id, backend=second)
    run.refresh_from_db()
    assert run.status == EvaluationRun.Status.SUCCEEDED, run.error
    # gsm8k-0 and -1 (5 + 4 steps through their first errors) were kept; the rest is 1 + 2 + 5.
    assert sum(len(p) for p in first.prompts) == 9 and sum(len(p) for p in second.prompts) == 8
    assert run.steps_done == 17 == run.results["n_steps"] and "partial" not in run.results
