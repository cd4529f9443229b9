"""Using step rewards to pick or build solutions: Best-of-N and greedy guided search.

Plain callables, so any backend (or a test double) plugs in. The R-PRM paper's
settings: Best-of-N over N=8 policy samples, reported with both min-step and
last-step aggregation; guided search with 8 candidate next steps, a step ending at
the first blank line, the candidate with the highest mean reward kept, at most 30
steps. Checked against NJUNLP/R-PRM
``src/reward-guide-search/code/GenPRM-Greedy-Seach-Zero-Shot.py``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .answers import extract_answer

Aggregation = Literal["min", "last", "mean", "prod"]
AGGREGATIONS: tuple[str, ...] = ("min", "last", "mean", "prod")

# Marks a candidate after which the policy ended the solution (end of sequence
# rather than a blank line); removed before the step is scored or stored.
END_OF_SOLUTION = "<|end_of_solution|>"
STEP_SEPARATOR = "\n\n"


# ------------------------------------------------------------------ Best-of-N


def aggregate(step_scores: Sequence[float], aggregation: Aggregation = "min") -> float | None:
    """One score for a solution from its step rewards; None when it has no step."""
    if any(s is None for s in step_scores):
        raise ValueError("a step has no score")
    scores = [float(s) for s in step_scores]
    if not scores:
        return None
    if aggregation == "min":
        return min(scores)
    if aggregation == "last":
        return scores[-1]
    if aggregation == "mean":
        return math.fsum(scores) / len(scores)
    if aggregation == "prod":
        return math.prod(scores)
    raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")


def best_of_n_select(
    solutions_step_scores: Sequence[Sequence[float]], aggregation: Aggregation = "min"
) -> int:
    """Index of the solution with the highest aggregated reward.

    Ties go to the lowest index (a stable, reproducible choice); a solution with no
    steps is never preferred to one with steps.
    """
    best, best_score = None, -math.inf
    for i, steps in enumerate(solutions_step_scores):
        score = aggregate(steps, aggregation)
        if score is not None and (best is None or score > best_score):
            best, best_score = i, score
    if best is None:
        raise ValueError("no solution with at least one scored step")
    return best


def best_of_n_accuracy(
    problems: Iterable[Sequence[tuple[Sequence[float], bool]]],
    aggregations: Sequence[Aggregation] = ("min", "last"),
) -> dict[str, Any]:
    """Best-of-N accuracy (percent) per aggregation, with the two reference points.

    ``problems``: per problem, its N candidates as ``(step_scores, is_correct)``
    (correctness from :func:`inference.core.answers.answers_equal` against the
    reference answer). Returns ``{aggregation: accuracy}`` for each requested
    aggregation (min-step and last-step by default, as the paper reports), plus
    ``pass@1`` (mean share of correct candidates: the expected accuracy of one
    random sample), ``pass@n`` (any candidate correct: the ceiling for any
    selector), ``n_problems`` and ``n`` (candidates per problem, or None if it varies).
    """
    hits = dict.fromkeys(aggregations, 0)
    pass1 = 0.0
    pass_n = 0
    n_problems = 0
    sizes = set()
    for candidates in problems:
        candidates = list(candidates)
        if not candidates:
            raise ValueError("a problem has no candidate")
        n_problems += 1
        sizes.add(len(candidates))
        correct = [bool(ok) for _, ok in candidates]
        pass1 += sum(correct) / len(correct)
        pass_n += any(correct)
        for agg in aggregations:
            hits[agg] += correct[best_of_n_select([s for s, _ in candidates], agg)]
    if not n_problems:
        raise ValueError("no problems")
    out: dict[str, Any] = {agg: hits[agg] / n_problems * 100 for agg in aggregations}
    out.update(
        {
            "pass@1": pass1 / n_problems * 100,
            "pass@n": pass_n / n_problems * 100,
            "n_problems": n_problems,
            "n": sizes.pop() if len(sizes) == 1 else None,
        }
    )
    return out


# ------------------------------------------------------------------ guided search


def has_final_answer(step: str) -> bool:
    """A step that states the final answer: a ``\\boxed{}`` or "The answer is"."""
    return (
        "\\boxed" in step or re.search(r"\bthe\s+(?:final\s+)?answer\s+is\b", step, re.IGNORECASE) is not None
    )


def default_stop(candidate: str) -> bool:
    """Stop after a step with a final answer, or one the policy ended the solution with."""
    return candidate.endswith(END_OF_SOLUTION) or has_final_answer(candidate)


@dataclass
class SearchStep:
    """One search iteration: every distinct candidate with its reward, and the choice."""

    candidates: list[str]
    scores: list[float]
    chosen: int

    @property
    def text(self) -> str:
        return _clean(self.candidates[self.chosen])

    @property
    def score(self) -> float:
        return self.scores[self.chosen]


@dataclass
class SearchResult:
    question: str
    steps: list[SearchStep] = field(default_factory=list)
    # "final_answer" (stop() said so), "max_steps", or "no_candidates".
    stop_reason: str = ""

    @property
    def texts(self) -> list[str]:
        return [s.text for s in self.steps]

    @property
    def scores(self) -> list[float]:
        return [s.score for s in self.steps]

    @property
    def solution(self) -> str:
        return STEP_SEPARATOR.join(self.texts)

    @property
    def answer(self) -> str | None:
        return extract_answer(self.solution) if self.steps else None


def _clean(candidate: str) -> str:
    return candidate.removesuffix(END_OF_SOLUTION).strip()


def guided_search(
    policy_propose: Callable[[str, list[str], int], list[str]],
    prm_score: Callable[[str, list[str], str], float],
    question: str,
    n_candidates: int = 8,
    max_steps: int = 30,
    stop: Callable[[str], bool] = default_stop,
) -> SearchResult:
    """Greedy step-level search: propose, score, keep the best, repeat.

    Each iteration asks ``policy_propose(question, steps_so_far, n_candidates)``
    for candidate next steps, drops empty ones and duplicates (as the authors'
    script does: a duplicate would only cost another round of critiques), scores
    each with ``prm_score(question, steps_so_far, candidate)`` (the mean reward of
    K critiques), and appends the highest-scoring one (ties: first proposed).
    Stops when ``stop(chosen)`` holds (default: the step states a final answer or
    the policy ended the solution), after ``max_steps`` steps, or when the policy
    proposes nothing usable. Candidates and scores of every iteration are kept.

    One difference from the authors' script: it stops only when the policy emits
    end-of-sequence, and an empty proposal round still uses up an iteration. Here a
    stated final answer also ends the search (the method's stopping rule), and an
    empty round ends it at once (retrying the same prompt would mostly repeat it).
    """
    if n_candidates < 1 or max_steps < 1:
        raise ValueError("n_candidates and max_steps must be >= 1")
    result = SearchResult(question=question)
    steps_so_far: list[str] = []
    while len(result.steps) < max_steps:
        seen: set[str] = set()
        candidates = []
        for c in policy_propose(question, list(steps_so_far), n_candidates):
            if _clean(c) and c not in seen:
                seen.add(c)
                candidates.append(c)
        if not candidates:
            result.stop_reason = "no_candidates"
            return result
        scores = [float(prm_score(question, list(steps_so_far), _clean(c))) for c in candidates]
        chosen = max(range(len(candidates)), key=lambda i: (scores[i], -i))
        step = SearchStep(candidates=candidates, scores=scores, chosen=chosen)
        result.steps.append(step)
        steps_so_far.append(step.text)
        if stop(candidates[chosen]):
            result.stop_reason = "final_answer"
            return result
    result.stop_reason = "max_steps"
    return result


def truncate_step(text: str, finish_reason: str | None = None) -> str:
    """The first step of a policy continuation: text up to the first blank line.

    Leading blank lines are skipped first, so a continuation that opens with the
    separator still yields its step. When no blank line occurs and the backend
    says the sequence ended on its own (``finish_reason == "stop"``), the step is
    the last one and is marked with :data:`END_OF_SOLUTION`.
    """
    body = text.lstrip("\n")
    cut = body.find(STEP_SEPARATOR)
    if cut >= 0:
        return body[:cut].rstrip()
    body = body.rstrip()
    if finish_reason == "stop" and body:
        return body + END_OF_SOLUTION
    return body


def make_policy_proposer(
    backend: Any, template_fn: Callable[[str, list[str]], str], sampling: Any
) -> Callable[[str, list[str], int], list[str]]:
    """Adapt a :class:`inference.core.backends.base.Backend` to ``policy_propose``.

    ``template_fn(question, steps_so_far)`` renders the policy prompt (ending where
    the next step begins, e.g. after the previous steps and a blank line).
    ``Sampling`` has no stop strings, so each completion is cut at its first blank
    line after generation (:func:`truncate_step`): results are the same as a stop at
    "\\n\\n", but the backend may generate past it, so keep
    ``sampling.max_new_tokens`` to a step's length (the authors used 512).
    """

    def propose(question: str, steps_so_far: list[str], n: int) -> list[str]:
        prompt = template_fn(question, steps_so_far)
        [completions] = backend.generate([prompt], n, sampling)
        return [truncate_step(c.text, c.finish_reason) for c in completions]

    return propose
