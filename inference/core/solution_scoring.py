"""Score whole solutions: K sampled critiques per step, step reward = mean p_yes.

Plain Python (no Django): a backend, a prompt template and ``(question, steps)``
pairs in; per step the mean yes-probability and every sample's verdict and p_yes
out. All steps of all given solutions go to the backend in ONE ``generate`` call
(optionally chunked to bound memory), in solution/step order: the prompts of one
solution's steps share the long prefix (instructions, question, earlier steps), so
vLLM's prefix cache reuses it and transformers batches the rows together; cost
grows with generated tokens, not with re-reading prompts. p_yes is read by the
backend in the sampling pass itself (see the backends), never by a second pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .backends.base import Backend, Sampling
from .generation import EVALUATION
from .prompts import Messages, PromptTemplate, prompt_text
from .scoring import mean_reward
from .text import is_truncated, repair_text
from .verdict import parse_verdict

EVAL_SAMPLING = EVALUATION.sampling()
DEFAULT_K = EVALUATION.n_samples


@dataclass
class SampleScore:
    """One critique of one step."""

    verdict: str  # "yes" | "no" | "unparseable" (strict R-PRM reading, never guessed)
    p_yes: float | None
    p_yes_source: str | None = None
    completion_tokens: int = 0
    text: str | None = None  # only when asked for (keep_text=True); unstorable characters -> U+FFFD
    text_repaired: bool = False
    truncated: bool = False  # the backend stopped at the token limit

    def as_dict(self) -> dict[str, Any]:
        out = {"verdict": self.verdict, "p_yes": self.p_yes, "p_yes_source": self.p_yes_source}
        if self.text is not None:
            out["text"] = self.text
            out["text_repaired"] = self.text_repaired
            out["truncated"] = self.truncated
        return out


@dataclass
class StepScore:
    samples: list[SampleScore]

    @property
    def reward(self) -> float | None:
        """Mean p_yes over the K samples (None only if no sample has one)."""
        return mean_reward(s.p_yes for s in self.samples)

    @property
    def p_yes(self) -> list[float | None]:
        return [s.p_yes for s in self.samples]

    @property
    def verdicts(self) -> list[str]:
        return [s.verdict for s in self.samples]


@dataclass
class SolutionScores:
    steps: list[StepScore] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def rewards(self) -> list[float | None]:
        return [s.reward for s in self.steps]

    @property
    def p_yes(self) -> list[list[float | None]]:
        return [s.p_yes for s in self.steps]

    @property
    def verdicts(self) -> list[list[str]]:
        return [s.verdicts for s in self.steps]


@dataclass
class BatchStats:
    """What one ``score_solutions`` call cost: for progress rows and benchmarks."""

    prompts: int = 0
    backend_calls: int = 0
    backend_seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def step_prompts(
    template: PromptTemplate, question: str, steps: Sequence[str], tokenizer: Any = None
) -> list[str | Messages]:
    """One critique prompt per step; step i sees steps[:i] as its previous steps.

    Chat templates give message lists (the backend applies the model's own chat
    template); with ``tokenizer`` they are rendered to text here instead.
    """
    prompts = [template.render(question, steps[:i], steps[i]) for i in range(len(steps))]
    if tokenizer is not None:
        return [prompt_text(p, tokenizer) for p in prompts]
    return prompts


def score_solutions(
    backend: Backend,
    template: PromptTemplate,
    solutions: Sequence[tuple[str, Sequence[str]]],
    n_samples: int = DEFAULT_K,
    sampling: Sampling = EVAL_SAMPLING,
    *,
    keep_text: bool = False,
    max_prompts_per_call: int | None = None,
    stats: BatchStats | None = None,
    before_call: Callable[[], None] | None = None,
    limits: Sequence[int] | None = None,
    stop_below: float | None = None,
) -> list[SolutionScores]:
    """Score the steps of every ``(question, steps)`` with ``n_samples`` sampled critiques (K).

    One backend call for all prompts (or one per ``max_prompts_per_call`` prompts).
    Returns one :class:`SolutionScores` per solution, in order. A solution with no
    step gets no step scores. ``before_call`` runs before each backend call and may
    raise to stop (the scoring API's deadline).

    ``limits[i]`` scores only the first ``limits[i]`` steps of solution i (ProcessBench:
    through the labelled first error); its ``steps`` then stop there. With
    ``stop_below``, steps go to the backend one position at a time (one call per
    position, over all solutions still going) and a solution stops at its first step
    whose reward is below it (a predicted error at that threshold).
    """
    if n_samples < 1:
        raise ValueError("n_samples (K) must be >= 1")
    counts = [
        len(steps) if limits is None else min(len(steps), limits[i]) for i, (_, steps) in enumerate(solutions)
    ]
    out = [SolutionScores(steps=[]) for _ in solutions]
    stats = stats if stats is not None else BatchStats()
    call = _Caller(backend, n_samples, sampling, keep_text, max_prompts_per_call, stats, before_call)
    if stop_below is None:
        wanted = [(si, j) for si, n in enumerate(counts) for j in range(n)]
        call.score(template, solutions, wanted, out)
    else:
        going = [si for si, n in enumerate(counts) if n]
        for j in range(max(counts, default=0)):
            going = [si for si in going if j < counts[si]]
            call.score(template, solutions, [(si, j) for si in going], out)
            going = [si for si in going if not _below(out[si].steps[j].reward, stop_below)]
    stats.prompt_tokens += sum(s.prompt_tokens for s in out)
    stats.completion_tokens += sum(s.completion_tokens for s in out)
    return out


def _below(reward: float | None, threshold: float) -> bool:
    # An unreadable reward stops too: nothing after it can be judged at the threshold.
    return reward is None or reward < threshold


@dataclass
class _Caller:
    """Sends (solution, step) prompts to the backend in chunks and files the samples."""

    backend: Backend
    n_samples: int
    sampling: Sampling
    keep_text: bool
    chunk: int | None
    stats: BatchStats
    before_call: Callable[[], None] | None

    def score(
        self,
        template: PromptTemplate,
        solutions: Sequence[tuple[str, Sequence[str]]],
        wanted: Sequence[tuple[int, int]],
        out: list[SolutionScores],
    ) -> None:
        if not wanted:
            return
        prompts = [
            template.render(solutions[si][0], list(solutions[si][1][:j]), solutions[si][1][j])
            for si, j in wanted
        ]
        for si, j in wanted:
            while len(out[si].steps) <= j:
                out[si].steps.append(StepScore([]))
        chunk = self.chunk or len(prompts)
        for start in range(0, len(prompts), chunk):
            if self.before_call is not None:
                self.before_call()
            part = prompts[start : start + chunk]
            t0 = time.perf_counter()
            results = self.backend.generate(part, self.n_samples, self.sampling)
            self.stats.backend_seconds += time.perf_counter() - t0
            self.stats.backend_calls += 1
            if len(results) != len(part):
                raise RuntimeError(f"backend returned {len(results)} results for {len(part)} prompts")
            for (si, j), completions in zip(wanted[start : start + chunk], results, strict=True):
                self._file(out[si], j, completions)
        self.stats.prompts += len(prompts)

    def _file(self, sol: SolutionScores, j: int, completions: Sequence[Any]) -> None:
        if len(completions) != self.n_samples:
            raise RuntimeError(f"backend returned {len(completions)} samples, asked for {self.n_samples}")
        for c in completions:
            # Repaired before parsing and before it can reach a response or a row.
            text, repaired = repair_text(c.text)
            sol.steps[j].samples.append(
                SampleScore(
                    verdict=parse_verdict(text).verdict,
                    p_yes=c.p_yes,
                    p_yes_source=c.p_yes_source,
                    completion_tokens=c.completion_tokens,
                    text=text if self.keep_text else None,
                    text_repaired=repaired,
                    truncated=is_truncated(c.finish_reason),
                )
            )
            sol.completion_tokens += c.completion_tokens
        # Prompt tokens once per step: the K samples share the prompt.
        sol.prompt_tokens += completions[0].prompt_tokens if completions else 0


def score_solution(
    backend: Backend,
    template: PromptTemplate,
    question: str,
    steps: Sequence[str],
    n_samples: int = DEFAULT_K,
    sampling: Sampling = EVAL_SAMPLING,
    **kwargs: Any,
) -> SolutionScores:
    [result] = score_solutions(backend, template, [(question, steps)], n_samples, sampling, **kwargs)
    return result


def score_candidates(
    backend: Backend,
    template: PromptTemplate,
    question: str,
    steps_so_far: Sequence[str],
    candidates: Sequence[str],
    n_samples: int = DEFAULT_K,
    sampling: Sampling = EVAL_SAMPLING,
) -> list[float | None]:
    """Mean reward of each candidate next step, all candidates in one backend call
    (guided search: they share everything but the Now Step)."""
    if not candidates:
        return []
    prompts = [template.render(question, list(steps_so_far), c) for c in candidates]
    results = backend.generate(prompts, n_samples, sampling)
    return [mean_reward(c.p_yes for c in completions) for completions in results]
