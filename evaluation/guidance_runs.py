"""Policy guidance runs: Best-of-N and greedy guided search, stored per problem.

Best-of-N: the policy samples N solutions per problem (steps separated by blank
lines), the PRM scores every step of all N in one batched call, and the solution
with the highest min-step and last-step reward is picked (inference.core.guidance).
Guided search: the policy proposes N next steps, all N are scored in one call, the
best is kept, up to `max_steps`. Accuracy compares the extracted final answer with
Problem.reference_answer (inference.core.answers.answers_equal). Processing claims
the run through the shared lifecycle (rprm_web.runs.execute) and skips problems
already stored.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import F, QuerySet

from annotations.models import Dataset, Problem
from inference.core.answers import answers_equal, extract_answer
from inference.core.backends import make_backend
from inference.core.backends.base import Backend, Sampling
from inference.core.guidance import (
    END_OF_SOLUTION,
    best_of_n_select,
    guided_search,
    make_policy_proposer,
)
from inference.core.prompts import PromptTemplate as CorePromptTemplate
from inference.core.solution_scoring import BatchStats, score_candidates, score_solutions
from inference.core.text import repair_json
from inference.models import ModelEndpoint, PromptTemplate
from inference.runner import get_backend
from inference.scorers import eval_sampling_values, template_for
from rprm_web import runs

from .models import GuidanceResult, GuidanceRun

log = logging.getLogger(__name__)

BonAggregation = Literal["min", "last"]
BON_AGGREGATIONS: tuple[BonAggregation, ...] = ("min", "last")


class BonCandidate(TypedDict):
    """One Best-of-N solution of the policy (GuidanceResult.candidates)."""

    steps: list[str]
    step_scores: list[float | None]
    answer: str | None
    correct: bool


class SearchRound(TypedDict):
    """One guided-search step: its candidates, their rewards, the pick."""

    candidates: list[str]
    scores: list[float]
    chosen: int


class Selection(TypedDict):
    """A selection rule's pick (GuidanceResult.selections[rule])."""

    answer: str | None
    correct: bool
    index: NotRequired[int | None]  # Best-of-N: the candidate picked


class ProblemOutcome(TypedDict):
    """One problem's GuidanceResult fields, as the processing writes them."""

    candidates: list[BonCandidate] | list[SearchRound]
    selections: dict[str, Selection]
    completion_tokens: NotRequired[int]
    solution: NotRequired[str]
    stop_reason: NotRequired[str]


POLICY_INSTRUCTIONS = (
    "Solve the math problem step by step. Separate consecutive steps with a blank line, "
    "and give the final answer as \\boxed{answer} in the last step."
)


# ---------------------------------------------------------------- policy prompt (no Django)


def policy_prompt(question: str, steps_so_far: list[str], tokenizer: Any = None) -> str:
    """Question -> step-by-step solution; the text ends where the next step begins."""
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [
                {"role": "system", "content": POLICY_INSTRUCTIONS},
                {"role": "user", "content": question.strip()},
            ],
            tokenize=False,
            add_generation_prompt=True,
        )
    else:
        text = f"{POLICY_INSTRUCTIONS}\n\nProblem: {question.strip()}\n\nSolution:\n"
    if steps_so_far:
        text += "\n\n".join(steps_so_far) + "\n\n"
    return text


def split_steps(text: str, max_steps: int | None = None) -> list[str]:
    """A policy solution's steps: the non-empty blocks between blank lines."""
    steps = [s.strip() for s in re.split(r"\n\s*\n", text or "") if s.strip()]
    return steps[:max_steps] if max_steps else steps


# ---------------------------------------------------------------- creating runs


def create_guidance_run(
    *,
    kind: str,
    dataset: Dataset,
    policy: ModelEndpoint,
    scorer: ModelEndpoint,
    template: PromptTemplate | None = None,
    user: User | AnonymousUser | None = None,
    queue: bool = True,
    **params: Any,
) -> GuidanceRun:
    if kind not in GuidanceRun.Kind.values:
        raise ValueError(f"kind must be one of {', '.join(GuidanceRun.Kind.values)}")
    if not _problems(dataset, None).exists():
        raise ValueError(f"dataset {dataset.name} has no problem with a reference answer")
    scoring = eval_sampling_values(
        scorer,
        temperature=params.pop("temperature", None),
        top_p=params.pop("top_p", None),
        max_new_tokens=params.pop("max_new_tokens", None),
    )
    scoring.pop("seed", None)
    if kind == GuidanceRun.Kind.GUIDED_SEARCH:
        params.setdefault("policy_max_new_tokens", 512)  # one step at a time (the authors' cap)
    with transaction.atomic():
        run = GuidanceRun.objects.create(
            kind=kind,
            dataset=dataset,
            policy=policy,
            scorer=scorer,
            template=template or template_for(None),
            created_by=user if isinstance(user, User) else None,
            **scoring,
            **{k: v for k, v in params.items() if v is not None},
        )
        run.problems_total = _problems(dataset, run.problem_limit).count()
        run.save(update_fields=["problems_total"])
        if queue:
            runs.enqueue(GuidanceRun, run.id)
    return run


def _problems(dataset: Dataset, limit: int | None) -> QuerySet[Problem]:
    qs = Problem.objects.filter(dataset=dataset).exclude(reference_answer="").order_by("id")
    return qs[:limit] if limit else qs


def request_cancel(run: GuidanceRun) -> bool:
    return runs.request_cancel(GuidanceRun, run.id) != "finished"


# ---------------------------------------------------------------- processing


def _backends(run: GuidanceRun) -> tuple[Backend, Backend, Callable[[], None]]:
    """(policy, scorer, close): one model when both are the same endpoint; otherwise the
    policy is loaded next to the cached scorer for the run's duration (not through the
    one-model cache, which would reload both on every problem)."""
    scorer = get_backend(run.scorer)
    same = (run.policy.backend, run.policy.path_or_url, run.policy.options) == (
        run.scorer.backend,
        run.scorer.path_or_url,
        run.scorer.options,
    )
    if same:
        return scorer, scorer, lambda: None
    policy = make_backend(run.policy.backend, **run.policy.backend_kwargs())
    return policy, scorer, policy.close


def process_guidance(
    run_id: int,
    *,
    policy_backend: Backend | None = None,
    scorer_backend: Backend | None = None,
    progress: Callable[[GuidanceRun], None] | None = None,
) -> GuidanceRun | None:
    def body(run: GuidanceRun) -> None:
        policy, scorer, close = policy_backend, scorer_backend, lambda: None
        if policy is None or scorer is None:
            policy, scorer, close = _backends(run)
        try:
            _process(run, policy, scorer, progress)
        finally:
            close()

    return runs.execute(
        GuidanceRun,
        run_id,
        body,
        select_related=("policy", "scorer", "template", "dataset"),
        final=lambda run, status: {"results": summarise(run)} if status != runs.RunStatus.FAILED else {},
    )


@dataclass(frozen=True)
class Guidance:
    """What every problem of a guidance run is solved with."""

    policy: Backend
    scorer: Backend
    template: CorePromptTemplate
    n: int  # solutions (Best-of-N) or next-step candidates (guided search) per problem
    n_samples: int  # K critiques per step
    max_steps: int
    policy_sampling: Sampling
    sampling: Sampling  # the critiques'

    @classmethod
    def of(cls, run: GuidanceRun, policy: Backend, scorer: Backend) -> Guidance:
        return cls(
            policy=policy,
            scorer=scorer,
            template=run.template.to_core(),
            n=run.n_candidates,
            n_samples=run.n_samples,
            max_steps=run.max_steps,
            policy_sampling=Sampling(
                temperature=run.policy_temperature,
                top_p=run.policy_top_p,
                max_new_tokens=run.policy_max_new_tokens,
                seed=run.seed,
            ),
            sampling=Sampling(
                temperature=run.temperature, top_p=run.top_p, max_new_tokens=run.max_new_tokens, seed=run.seed
            ),
        )


def _process(
    run: GuidanceRun,
    policy_backend: Backend,
    scorer_backend: Backend,
    progress: Callable[[GuidanceRun], None] | None,
) -> None:
    g = Guidance.of(run, policy_backend, scorer_backend)
    problems = list(_problems(run.dataset, run.problem_limit))
    done = set(GuidanceResult.objects.filter(run=run).values_list("problem_id", flat=True))
    runs.progress(run, problems_total=len(problems), problems_done=len(done))
    for problem in problems:
        if problem.id in done:
            continue
        runs.checkpoint(run)
        solve = best_of_n_problem if run.kind == GuidanceRun.Kind.BEST_OF_N else guided_search_problem
        result = solve(g, problem.question, problem.reference_answer)
        # Policy text is model output: characters PostgreSQL cannot hold become U+FFFD.
        stored, repaired = repair_json(result)
        with transaction.atomic():
            _, created = GuidanceResult.objects.get_or_create(
                run=run,
                problem=problem,
                defaults={**stored, "reference_answer": problem.reference_answer, "text_repaired": repaired},
            )
            if created:
                runs.progress(run, problems_done=F("problems_done") + 1)
        if progress:
            run.refresh_from_db(fields=["problems_done"])
            progress(run)


def best_of_n_problem(g: Guidance, question: str, reference: str) -> ProblemOutcome:
    """N policy solutions, every step scored (one call), picked by min- and last-step reward."""
    prompt = policy_prompt(question, [], getattr(g.policy, "tokenizer", None))
    [completions] = g.policy.generate([prompt], g.n, g.policy_sampling)
    solutions = [split_steps(c.text, g.max_steps) for c in completions]
    stats = BatchStats()
    scored = score_solutions(
        g.scorer, g.template, [(question, s) for s in solutions], g.n_samples, g.sampling, stats=stats
    )
    candidates: list[BonCandidate] = []
    for steps, scores in zip(solutions, scored, strict=True):
        answer = extract_answer("\n\n".join(steps))
        candidates.append(
            {
                "steps": steps,
                "step_scores": scores.rewards,
                "answer": answer,
                "correct": answers_equal(answer, reference) if answer is not None else False,
            }
        )
    selections: dict[str, Selection] = {}
    # A candidate without steps (or a step without a readable p_yes) cannot be ranked.
    rankable = [_rankable(c["step_scores"]) for c in candidates]
    for agg in BON_AGGREGATIONS:
        try:
            i = best_of_n_select(rankable, agg)
        except ValueError:
            selections[agg] = {"index": None, "answer": None, "correct": False}
            continue
        selections[agg] = {"index": i, "answer": candidates[i]["answer"], "correct": candidates[i]["correct"]}
    return {
        "candidates": candidates,
        "selections": selections,
        "completion_tokens": sum(c.completion_tokens for c in completions) + stats.completion_tokens,
    }


def _rankable(step_scores: list[float | None]) -> list[float]:
    """The rewards when every step has one, else [] (an unrankable candidate)."""
    scores = [s for s in step_scores if s is not None]
    return scores if step_scores and len(scores) == len(step_scores) else []


def guided_search_problem(g: Guidance, question: str, reference: str) -> ProblemOutcome:
    """Greedy step-level search; each round's N candidates are scored in one batched call."""
    tokenizer = getattr(g.policy, "tokenizer", None)
    propose_raw = make_policy_proposer(
        g.policy, lambda q, steps: policy_prompt(q, steps, tokenizer), g.policy_sampling
    )
    cache: dict[tuple[tuple[str, ...], str], float] = {}

    def propose(q: str, steps_so_far: list[str], n_: int) -> list[str]:
        candidates = propose_raw(q, steps_so_far, n_)
        cleaned = list(dict.fromkeys(c.removesuffix(END_OF_SOLUTION).strip() for c in candidates))
        cleaned = [c for c in cleaned if c]
        rewards = score_candidates(g.scorer, g.template, q, steps_so_far, cleaned, g.n_samples, g.sampling)
        for c, r in zip(cleaned, rewards, strict=True):
            cache[(tuple(steps_so_far), c)] = 0.0 if r is None else r  # no readable p_yes: never preferred
        return candidates

    def prm_score(q: str, steps_so_far: list[str], candidate: str) -> float:
        key = (tuple(steps_so_far), candidate)
        if key not in cache:  # not pre-scored (should not happen): score it alone
            [r] = score_candidates(
                g.scorer, g.template, q, steps_so_far, [candidate], g.n_samples, g.sampling
            )
            cache[key] = 0.0 if r is None else r
        return cache[key]

    result = guided_search(propose, prm_score, question, n_candidates=g.n, max_steps=g.max_steps)
    answer = result.answer
    correct = answers_equal(answer, reference) if answer is not None else False
    rounds: list[SearchRound] = [
        {
            "candidates": [c.removesuffix(END_OF_SOLUTION).strip() for c in s.candidates],
            "scores": s.scores,
            "chosen": s.chosen,
        }
        for s in result.steps
    ]
    return {
        "candidates": rounds,
        "selections": {"guided": {"answer": answer, "correct": correct}},
        "solution": result.solution,
        "stop_reason": result.stop_reason,
    }


def summarise(run: GuidanceRun) -> dict[str, Any]:
    """Accuracy (percent) per selection rule, with pass@1 / pass@N for Best-of-N."""
    rows = list(
        GuidanceResult.objects.filter(run=run).values(
            "candidates", "selections", "stop_reason", "text_repaired"
        )
    )
    n = len(rows)
    out: dict[str, Any] = {
        "n_problems": n,
        "kind": run.kind,
        "text_repaired": sum(r["text_repaired"] for r in rows),
    }
    if not n:
        return out
    if run.kind == GuidanceRun.Kind.BEST_OF_N:
        for agg in BON_AGGREGATIONS:
            out[agg] = 100 * sum(bool(r["selections"].get(agg, {}).get("correct")) for r in rows) / n
        shares = [
            sum(c["correct"] for c in r["candidates"]) / len(r["candidates"]) for r in rows if r["candidates"]
        ]
        out["pass@1"] = 100 * sum(shares) / n
        out["pass@n"] = 100 * sum(any(c["correct"] for c in r["candidates"]) for r in rows) / n
        out["n"] = run.n_candidates
        out["no_answer"] = sum(c["answer"] is None for r in rows for c in r["candidates"])
    else:
        out["guided"] = 100 * sum(bool(r["selections"].get("guided", {}).get("correct")) for r in rows) / n
        out["mean_steps"] = sum(len(r["candidates"]) for r in rows) / n
        out["stop_reasons"] = dict(Counter(r["stop_reason"] for r in rows))
    return out
