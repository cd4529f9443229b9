"""Best-of-N and guided search runs: exact selection logic with scripted models, and the
real pipeline end to end on the tiny model (accuracy ~0 there, and reported as such)."""

from __future__ import annotations

import io
import json
import re

import pytest
from django.core.management import call_command

from annotations.actions import import_file
from inference.core.backends.base import Completion
from inference.guidance_runs import create_guidance_run, policy_prompt, process_guidance, split_steps
from inference.models import GuidanceResult, GuidanceRun, ModelEndpoint
from tests.annotations.factories_files import generic_row, write_jsonl
from tests.evaluation.conftest import ScriptedScorer


@pytest.fixture
def problems(db, tmp_path):
    rows = [generic_row("q1", n_steps=2), generic_row("q2", n_steps=2, question="What is 3 + 4?", reference_answer="7"),
            generic_row("q3", n_steps=1, question="No reference here.", reference_answer="")]  # fmt: skip
    return import_file(write_jsonl(tmp_path / "problems.jsonl", rows), dataset_name="math-problems",
                       fmt="generic").dataset  # fmt: skip


class ScriptedPolicy:
    name = "scripted-policy"

    def __init__(self, texts):
        self.texts, self.prompts = texts, []

    def generate(self, prompts, n, sampling):
        self.prompts += prompts
        return [[Completion(text=t, prompt_tokens=5, completion_tokens=7, p_yes=None, finish_reason="stop")
                 for t in self.texts(p, n)] for p in prompts]  # fmt: skip

    def close(self):
        pass


def now_step(prompt):
    # The Now Step carries its number, as in the authors' rows: "Step k: <text>".
    return re.sub(r"^Step \d+: ", "", prompt.split("Now Step:")[-1].strip())


@pytest.fixture
def endpoints(db):
    policy = ModelEndpoint.objects.create(
        name="policy", role="policy", backend="transformers", path_or_url="p"
    )
    scorer = ModelEndpoint.objects.create(name="prm", role="scorer", backend="transformers", path_or_url="s")
    return policy, scorer


def test_it_splits_policy_solutions_into_steps():
    assert split_steps("A.\n\nB.\n  \nC.\n\n\n") == ["A.", "B.", "C."]
    assert split_steps("A.\n\nB.\n\nC.", max_steps=2) == ["A.", "B."]
    assert policy_prompt("Q?", ["A.", "B."]).endswith("Solution:\nA.\n\nB.\n\n")


def test_best_of_n_picks_by_min_and_last_step_reward(problems, endpoints):
    policy, scorer = endpoints
    rewards = {"Divide 10 by 4.": 0.6, "So \\boxed{2.5}.": 0.95, "Guess.": 0.9, "So \\boxed{3}.": 0.8,
               "3 + 4 = 7.": 0.7, "\\boxed{7}": 0.7}  # fmt: skip
    texts = {"10 / 4": ["Divide 10 by 4.\n\nSo \\boxed{2.5}.", "Guess.\n\nSo \\boxed{3}."],
             "3 + 4": ["3 + 4 = 7.\n\n\\boxed{7}", ""]}  # fmt: skip
    policy_backend = ScriptedPolicy(lambda p, n: next(v for k, v in texts.items() if k in p)[:n])
    scorer_backend = ScriptedScorer(lambda p, i: rewards[now_step(p)])
    run = create_guidance_run(kind="best_of_n", dataset=problems, policy=policy, scorer=scorer, queue=False,
                              n_candidates=2, n_samples=2)  # fmt: skip
    assert run.problems_total == 2  # q3 has no reference answer
    process_guidance(run.id, policy_backend=policy_backend, scorer_backend=scorer_backend)
    run.refresh_from_db()
    assert run.status == GuidanceRun.Status.SUCCEEDED, run.error
    q1, q2 = GuidanceResult.objects.filter(run=run).order_by("problem_id")
    assert [c["answer"] for c in q1.candidates] == ["2.5", "3"]
    assert [c["correct"] for c in q1.candidates] == [True, False]
    assert q1.candidates[0]["step_scores"] == pytest.approx([0.6, 0.95])
    # min-step: candidate 1 (0.8 > 0.6) is wrong; last-step: candidate 0 (0.95 > 0.8) is right.
    assert q1.selections["min"] == {"index": 1, "answer": "3", "correct": False}
    assert q1.selections["last"] == {"index": 0, "answer": "2.5", "correct": True}
    assert (
        q2.candidates[1]["steps"] == [] and q2.selections["min"]["index"] == 0
    )  # an empty solution never wins
    assert run.results["min"] == 50.0 and run.results["last"] == 100.0
    assert run.results["pass@1"] == 50.0 and run.results["pass@n"] == 100.0 and run.results["n_problems"] == 2
    assert scorer_backend.calls == 2  # one batched call per problem for all candidates' steps


def test_guided_search_keeps_the_best_scored_step(problems, endpoints):
    policy, scorer = endpoints

    def propose(prompt, n):
        if "Divide 10 by 4." in prompt:
            return ["So \\boxed{3}.\n\nmore", "So \\boxed{2.5}.\n\nmore"]
        if "10 / 4" in prompt:
            return ["Guess 3.\n\n", "Divide 10 by 4.\n\n", "Guess 3.\n\n"]
        return ["I do not know.\n\n"]

    rewards = {"Guess 3.": 0.1, "Divide 10 by 4.": 0.9, "So \\boxed{3}.": 0.3, "So \\boxed{2.5}.": 0.8,
               "I do not know.": 0.5}  # fmt: skip
    scorer_backend = ScriptedScorer(lambda p, i: rewards[now_step(p)])
    run = create_guidance_run(kind="guided_search", dataset=problems, policy=policy, scorer=scorer, queue=False,
                              n_candidates=3, n_samples=1, max_steps=3)  # fmt: skip
    process_guidance(run.id, policy_backend=ScriptedPolicy(propose), scorer_backend=scorer_backend)
    run.refresh_from_db()
    assert run.status == GuidanceRun.Status.SUCCEEDED, run.error
    q1, q2 = GuidanceResult.objects.filter(run=run).order_by("problem_id")
    assert q1.solution == "Divide 10 by 4.\n\nSo \\boxed{2.5}." and q1.stop_reason == "final_answer"
    assert q1.selections["guided"] == {"answer": "2.5", "correct": True}
    assert q1.candidates[0] == {
        "candidates": ["Guess 3.", "Divide 10 by 4."],
        "scores": [0.1, 0.9],
        "chosen": 1,
    }
    assert q2.stop_reason == "max_steps" and q2.selections["guided"]["correct"] is False
    assert run.results["guided"] == 50.0 and run.results["stop_reasons"] == {
        "final_answer": 1,
        "max_steps": 1,
    }
    # Each round's distinct candidates were scored in one call: 2 rounds for q1 + 3 for q2.
    assert scorer_backend.calls == 5


@pytest.fixture
def tiny_policy(db, tiny_model_dir):
    return ModelEndpoint.objects.create(name="tiny-policy", role="policy", backend="transformers",
                                        path_or_url=str(tiny_model_dir), options={"device": "cpu", "batch_size": 16})  # fmt: skip


def test_best_of_n_runs_for_real_on_the_tiny_model(problems, tiny_endpoint, tiny_policy):
    run = create_guidance_run(kind="best_of_n", dataset=problems, policy=tiny_policy, scorer=tiny_endpoint,
                              queue=False, n_candidates=2, n_samples=1, policy_max_new_tokens=24, seed=3)  # fmt: skip
    process_guidance(run.id)
    run.refresh_from_db()
    assert run.status == GuidanceRun.Status.SUCCEEDED, run.error
    results = list(GuidanceResult.objects.filter(run=run))
    assert len(results) == 2 and all(len(r.candidates) == 2 for r in results)
    for r in results:
        for c in r.candidates:
            assert len(c["step_scores"]) == len(c["steps"]) and all(0 <= s <= 1 for s in c["step_scores"])
    assert 0 <= run.results["min"] <= 100 and 0 <= run.results["pass@n"] <= 100


def test_guided_search_runs_for_real_via_the_command(problems, tiny_endpoint, tiny_policy):
    out = io.StringIO()
    call_command("best_of_n", "--dataset", "math-problems", "--policy", "tiny-policy", "--scorer", "tiny-scorer",
                 "--guided", "--n", "2", "--samples", "1", "--max-steps", "2", "--limit", "1",
                 "--policy-max-new-tokens", "12", "--seed", "1", "--json", stdout=out, stderr=io.StringIO())  # fmt: skip
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert (
        summary["status"] == "succeeded" and summary["kind"] == "guided_search" and summary["n_problems"] == 1
    )
    [result] = GuidanceResult.objects.filter(run__uuid=summary["run"])
    assert len(result.candidates) <= 2 and result.stop_reason in (
        "final_answer",
        "max_steps",
        "no_candidates",
    )
    assert all(0 <= s <= 1 for step in result.candidates for s in step["scores"])
