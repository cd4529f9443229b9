"""The scoring core: all steps of several solutions in one backend call, reward = mean p_yes."""

from __future__ import annotations

import math

import pytest

from inference.core.backends.base import Sampling
from inference.core.backends.transformers_backend import TransformersBackend
from inference.core.prompts import DEFAULT_TEMPLATE, FIRST_STEP_TEXT
from inference.core.scoring import mean_reward
from inference.core.solution_scoring import EVAL_SAMPLING, score_candidates, score_solutions
from tests.evaluation.conftest import ScriptedScorer


def test_it_uses_the_method_doc_sampling_defaults():
    assert (EVAL_SAMPLING.temperature, EVAL_SAMPLING.top_p, EVAL_SAMPLING.max_new_tokens) == (
        0.95,
        0.95,
        4096,
    )


def test_it_scores_every_step_of_several_solutions_in_one_backend_call():
    backend = ScriptedScorer(lambda prompt, i: [0.2, 0.6, 0.9][i] if "Now Step:\nStep 2: b2" in prompt else 0.8)
    solutions = [("Q1?", ["a1", "a2"]), ("Q2?", ["b1", "b2", "b3"])]
    scored = score_solutions(backend, DEFAULT_TEMPLATE, solutions, n_samples=3, sampling=Sampling())
    assert backend.calls == 1 and len(backend.prompts[0]) == 5
    # Prompts in solution/step order; step i sees exactly steps[:i] as previous steps.
    prompts = backend.prompts[0]
    assert FIRST_STEP_TEXT in prompts[0] and "Step 1: a1" in prompts[1] and "Now Step:\nStep 2: a2" in prompts[1]
    assert "Step 1: b1\nStep 2: b2" in prompts[4]
    assert [len(s.steps) for s in scored] == [2, 3]
    b2 = scored[1].steps[1]
    assert b2.p_yes == [0.2, 0.6, 0.9] and b2.verdicts == ["no", "yes", "yes"]
    assert math.isclose(b2.reward, (0.2 + 0.6 + 0.9) / 3)
    assert scored[0].rewards == pytest.approx([0.8, 0.8])


def test_it_chunks_calls_when_asked():
    backend = ScriptedScorer(lambda prompt, i: 0.5)
    score_solutions(backend, DEFAULT_TEMPLATE, [("Q?", ["a", "b", "c"])], n_samples=1, sampling=Sampling(),
                    max_prompts_per_call=2)  # fmt: skip
    assert backend.calls == 2


@pytest.fixture(scope="module")
def tiny_backend(tiny_model_dir):
    backend = TransformersBackend(tiny_model_dir, device="cpu", batch_size=16)
    yield backend
    backend.close()


def test_it_reads_p_yes_for_every_sample_with_the_tiny_model(tiny_backend):
    sampling = Sampling(temperature=0.95, top_p=0.95, max_new_tokens=10, seed=3)
    [scored] = score_solutions(tiny_backend, DEFAULT_TEMPLATE, [("What is 2+3?", ["2+3=5.", "So 5."])], n_samples=2,
                               sampling=sampling)  # fmt: skip
    for step in scored.steps:
        assert len(step.samples) == 2
        assert all(0 <= p <= 1 for p in step.p_yes)
        assert step.reward == mean_reward(step.p_yes)
        assert all(v in ("yes", "no", "unparseable") for v in step.verdicts)
    assert scored.completion_tokens > 0


def test_it_scores_candidate_next_steps_together(tiny_backend):
    rewards = score_candidates(tiny_backend, DEFAULT_TEMPLATE, "What is 2+3?", ["2+3=5."], ["So 5.", "So 6."], n_samples=1,
                               sampling=Sampling(max_new_tokens=6, seed=1))  # fmt: skip
    assert len(rewards) == 2 and all(0 <= r <= 1 for r in rewards)
