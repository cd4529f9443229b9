"""Best-of-N selection and greedy guided search with test doubles for policy and PRM."""

from __future__ import annotations

import pytest

from inference.core.backends.base import Completion, Sampling
from inference.core.guidance import (
    END_OF_SOLUTION,
    aggregate,
    best_of_n_accuracy,
    best_of_n_select,
    guided_search,
    has_final_answer,
    make_policy_proposer,
    truncate_step,
)

SOLUTIONS = [
    [0.9, 0.2, 0.95],  # min 0.2, last 0.95, mean 0.6833, prod 0.171
    [0.6, 0.6, 0.6],  # min 0.6, last 0.6, mean 0.6, prod 0.216
    [0.7, 0.8],  # min 0.7, last 0.8, mean 0.75, prod 0.56
]


@pytest.mark.parametrize(("aggregation", "index"), [("min", 2), ("last", 0), ("mean", 2), ("prod", 2)])
def test_it_selects_by_each_aggregation(aggregation, index):
    assert best_of_n_select(SOLUTIONS, aggregation) == index


def test_it_breaks_ties_by_position_and_skips_empty_solutions():
    assert best_of_n_select([[0.5], [0.5]], "min") == 0
    assert best_of_n_select([[], [0.1]], "min") == 1
    assert aggregate([0.5, 0.4], "prod") == pytest.approx(0.2)
    assert aggregate([], "min") is None
    with pytest.raises(ValueError):
        best_of_n_select([[], []])
    with pytest.raises(ValueError):
        best_of_n_select([[0.5]], "median")
    with pytest.raises(ValueError):
        aggregate([0.5, None])


def test_it_reports_best_of_n_accuracy_with_min_and_last():
    problems = [
        [(SOLUTIONS[0], True), (SOLUTIONS[1], False), (SOLUTIONS[2], False)],  # last right, min wrong
        [(SOLUTIONS[0], False), (SOLUTIONS[1], False), (SOLUTIONS[2], True)],  # min right, last wrong
        [(SOLUTIONS[0], True), (SOLUTIONS[1], True), (SOLUTIONS[2], True)],  # both right
        [(SOLUTIONS[0], False), (SOLUTIONS[1], False), (SOLUTIONS[2], False)],  # none
    ]
    got = best_of_n_accuracy(problems)
    assert got["min"] == 50.0
    assert got["last"] == 50.0
    assert got["pass@n"] == 75.0
    assert got["pass@1"] == pytest.approx((1 / 3 + 1 / 3 + 1 + 0) / 4 * 100)
    assert got["n_problems"] == 4
    assert got["n"] == 3
    assert best_of_n_accuracy(problems[:2], aggregations=("prod",)) == {
        "prod": 50.0,
        "pass@1": pytest.approx(100 / 3),
        "pass@n": 100.0,
        "n_problems": 2,
        "n": 3,
    }


class FakePolicy:
    """Proposes scripted candidates per depth and records its calls."""

    def __init__(self, script):
        self.script = script
        self.calls = []

    def __call__(self, question, steps_so_far, n):
        self.calls.append((question, list(steps_so_far), n))
        return list(self.script[len(steps_so_far)])


class FakePRM:
    def __init__(self, rewards):
        self.rewards = rewards
        self.calls = []

    def __call__(self, question, steps_so_far, candidate):
        self.calls.append((list(steps_so_far), candidate))
        return self.rewards.get(candidate, 0.0)


def test_it_keeps_the_best_candidate_and_stops_at_a_final_answer():
    policy = FakePolicy(
        [
            ["Let x = 2.", "Let x = 3.", "Let x = 2.", "  "],
            ["So 2x = 4.", "So 2x = 5."],
            ["The answer is 4.", "Hence \\boxed{5}"],
            ["never reached"],
        ]
    )
    prm = FakePRM(
        {
            "Let x = 2.": 0.9,
            "Let x = 3.": 0.3,
            "So 2x = 4.": 0.8,
            "So 2x = 5.": 0.8,
            "The answer is 4.": 0.7,
            "Hence \\boxed{5}": 0.2,
        }
    )
    result = guided_search(policy, prm, "What is 2x if x = 2?", n_candidates=4)
    assert result.texts == ["Let x = 2.", "So 2x = 4.", "The answer is 4."]
    assert result.scores == [0.9, 0.8, 0.7]
    assert result.stop_reason == "final_answer"
    assert result.answer == "4"
    assert result.solution == "Let x = 2.\n\nSo 2x = 4.\n\nThe answer is 4."
    # Duplicates and blank candidates are not scored twice / at all.
    assert result.steps[0].candidates == ["Let x = 2.", "Let x = 3."]
    assert len(prm.calls) == 6
    assert prm.calls[2] == (["Let x = 2."], "So 2x = 4.")
    assert policy.calls[1] == ("What is 2x if x = 2?", ["Let x = 2."], 4)
    # A tie goes to the first proposed.
    assert result.steps[1].chosen == 0


def test_it_stops_at_max_steps_or_when_nothing_is_proposed():
    looping = FakePolicy([["step"]] * 10)
    result = guided_search(looping, FakePRM({"step": 0.5}), "q", max_steps=3)
    assert (len(result.steps), result.stop_reason) == (3, "max_steps")
    assert result.answer is None or isinstance(result.answer, str)
    empty = guided_search(FakePolicy([["", "\n"]]), FakePRM({}), "q")
    assert (empty.steps, empty.stop_reason) == ([], "no_candidates")
    assert empty.answer is None


def test_it_stops_when_the_policy_ends_the_solution_and_strips_the_marker():
    policy = FakePolicy([["a", "b" + END_OF_SOLUTION]])
    prm = FakePRM({"a": 0.1, "b": 0.9})
    result = guided_search(policy, prm, "q")
    assert result.texts == ["b"]
    assert result.stop_reason == "final_answer"
    assert prm.calls == [([], "a"), ([], "b")]
    custom = guided_search(FakePolicy([["a"], ["b"]]), FakePRM({}), "q", stop=lambda c: c == "b")
    assert custom.texts == ["a", "b"]


def test_it_recognises_final_answers():
    assert has_final_answer("so \\boxed{3}")
    assert has_final_answer("Therefore, the final answer is 3.")
    assert not has_final_answer("The answer might be 3 but let us check.")


def test_it_truncates_a_continuation_at_the_first_blank_line():
    assert truncate_step("\n\nStep two.\n\nStep three.") == "Step two."
    assert truncate_step("One line\nsame step\n\nnext", "stop") == "One line\nsame step"
    assert truncate_step("Last step. \\boxed{1}", "stop") == "Last step. \\boxed{1}" + END_OF_SOLUTION
    assert truncate_step("Cut by the length limit", "length") == "Cut by the length limit"
    assert truncate_step("\n\n", "stop") == ""


class FakeBackend:
    name = "fake"

    def __init__(self, texts):
        self.texts = texts
        self.calls = []

    def generate(self, prompts, n, sampling):
        self.calls.append((prompts, n, sampling))
        return [
            [
                Completion(text=t, prompt_tokens=1, completion_tokens=1, p_yes=None, finish_reason=r)
                for t, r in self.texts[:n]
            ]
            for _ in prompts
        ]

    def close(self):
        pass


def test_it_adapts_a_backend_into_a_proposer():
    backend = FakeBackend(
        [("Step A.\n\nStep B.", "length"), ("Done: \\boxed{2}", "stop"), ("\n\nStep C.\n\n", "stop")]
    )
    sampling = Sampling(temperature=0.7, max_new_tokens=512)
    propose = make_policy_proposer(backend, lambda q, steps: q + "\n\n" + "\n\n".join(steps), sampling)
    got = propose("Q", ["s1"], 3)
    assert got == ["Step A.", "Done: \\boxed{2}" + END_OF_SOLUTION, "Step C."]
    assert backend.calls == [(["Q\n\ns1"], 3, sampling)]
    result = guided_search(propose, lambda q, s, c: 1.0 if "boxed" in c else 0.5, "Q", n_candidates=3)
    assert result.texts == ["Done: \\boxed{2}"]
    assert result.answer == "2"
