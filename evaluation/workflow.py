"""Benchmark evaluation: the Django shell around the scoring core and the metrics.

An EvaluationRun scores every solution of its datasets once, keeping each step's
K sampled p_yes (SolutionScore), then computes everything from those rows:
ProcessBench or PRMBench metrics at the run's threshold, a threshold sweep, the
K-scaling curve (by subsampling the stored samples) and the contamination report.
External step scores (any other PRM) are imported into the same rows and go
through the same code. Model runs are processed by a gpu-queue task that claims
the run through the shared lifecycle (rprm_web.runs.execute) and scores only the
solutions still missing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from annotations.actions import file_sha256
from annotations.models import Dataset, Solution, Step
from inference.core.backends.base import Backend
from inference.core.generation import MAX_K
from inference.core.prompts import PromptTemplate as CorePromptTemplate
from inference.core.prompts import question_for_prompt
from inference.core.solution_scoring import DEFAULT_K, BatchStats, score_solutions
from inference.models import ModelEndpoint, PromptTemplate
from inference.runner import get_backend
from inference.scorers import eval_sampling_values, template_for
from rprm_web import runs

from .models import EvaluationDataset, EvaluationRun, SolutionScore
from .results import compute_results, run_solutions, solution_loss, step_labels
from .score_files import read_external_scores
from .selection import select_solutions

log = logging.getLogger(__name__)


def check_datasets(benchmark: str, datasets: list[Dataset]) -> None:
    if not datasets:
        raise ValueError("choose at least one dataset")
    wrong = [d.name for d in datasets if d.source_format != benchmark]
    if wrong:
        raise ValueError(f"dataset(s) {', '.join(wrong)} are not in {benchmark} format")
    if benchmark == EvaluationRun.Benchmark.PRMBENCH and len(datasets) != 1:
        raise ValueError("a PRMBench evaluation covers exactly one dataset")


# ---------------------------------------------------------------- creating runs


def create_evaluation(
    *,
    benchmark: str,
    datasets: list[Dataset],
    endpoint: ModelEndpoint | None = None,
    scores_path: str | Path | None = None,
    scores_name: str | None = None,
    name: str = "",
    template: PromptTemplate | None = None,
    n_samples: int = DEFAULT_K,
    threshold: float = 0.5,
    solution_limit: int | None = None,
    solution_seed: int = 0,
    scored_steps: str | None = None,
    batch_size: int = 4,
    user: User | AnonymousUser | None = None,
    queue: bool = True,
    **sampling: Any,
) -> EvaluationRun:
    """A model evaluation (queued on the gpu queue once committed) or an external-scores
    evaluation (validated, stored and computed right here). A bad scores file raises
    ScoreFileError and writes nothing.

    `solution_limit` takes a stratified, seeded first N (evaluation.selection).
    `scored_steps` defaults to the benchmark's own rows: ProcessBench through the
    labelled first error, PRMBench every step."""
    check_datasets(benchmark, datasets)
    scored_steps = check_scored_steps(benchmark, scored_steps)
    if (endpoint is None) == (scores_path is None):
        raise ValueError("give either a model endpoint or a scores file")
    if not 0 <= threshold <= 1:
        raise ValueError("threshold must be within [0, 1]")
    common: dict[str, Any] = {"benchmark": benchmark, "threshold": threshold, "created_by": _user(user)}
    if scores_path is not None:
        return _create_external(datasets, scores_path, scores_name or Path(scores_path).name, name, common)
    assert endpoint is not None
    if not 1 <= n_samples <= MAX_K:
        raise ValueError(f"K must be within 1..{MAX_K}")
    with transaction.atomic():
        run = EvaluationRun.objects.create(
            name=name or endpoint.name,
            source=EvaluationRun.Source.MODEL,
            endpoint=endpoint,
            template=template or template_for(None),
            n_samples=n_samples,
            solution_limit=solution_limit,
            selection=select_solutions(benchmark, datasets, solution_limit, solution_seed)
            if solution_limit
            else {},
            scored_steps=scored_steps,
            batch_size=batch_size,
            **common,
            **eval_sampling_values(endpoint, **sampling),
        )
        EvaluationDataset.objects.bulk_create([EvaluationDataset(run=run, dataset=d) for d in datasets])
        run.solutions_total = run_solutions(run).count()
        run.save(update_fields=["solutions_total"])
        if queue:
            runs.enqueue(EvaluationRun, run.id)
    return run


def _create_external(
    datasets: list[Dataset], scores_path: str | Path, scores_name: str, name: str, common: dict[str, Any]
) -> EvaluationRun:
    """An external-scores evaluation, stored and computed at once (a bad file writes nothing)."""
    parsed = read_external_scores(scores_path, datasets, display_name=scores_name)
    with transaction.atomic():
        run = EvaluationRun.objects.create(
            name=name or Path(scores_name).stem,
            source=EvaluationRun.Source.EXTERNAL,
            scores_file=scores_name,
            scores_sha256=file_sha256(scores_path),
            n_samples=1,
            status=EvaluationRun.Status.RUNNING,
            started_at=timezone.now(),
            **common,
        )
        EvaluationDataset.objects.bulk_create([EvaluationDataset(run=run, dataset=d) for d in datasets])
        _store_external_scores(run, parsed)
    return run


def _store_external_scores(run: EvaluationRun, parsed: dict[int, list[float]]) -> None:
    """An external run's rows (one sample per step: the file's score) and its results."""
    labels = step_labels(parsed)
    SolutionScore.objects.bulk_create(
        [
            SolutionScore(
                run=run,
                solution_id=sid,
                step_scores=scores,
                samples=[[s] for s in scores],
                loss=solution_loss(labels[sid], scores),
            )
            for sid, scores in parsed.items()
        ],
        batch_size=1000,
    )
    run.solutions_total = run.solutions_done = len(parsed)
    run.steps_done = sum(len(s) for s in parsed.values())
    run.results = compute_results(run)
    run.status = EvaluationRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    fields = ["solutions_total", "solutions_done", "steps_done", "results", "status", "finished_at"]
    run.save(update_fields=fields)


def check_scored_steps(benchmark: str, scored_steps: str | None) -> str:
    """The run's ScoredSteps: the benchmark's default, or a choice it allows."""
    steps = EvaluationRun.ScoredSteps
    if benchmark != EvaluationRun.Benchmark.PROCESSBENCH:
        if scored_steps not in (None, steps.ALL):
            raise ValueError("PRMBench scores every step (its metrics count them all)")
        return steps.ALL
    if scored_steps is None:
        return steps.FIRST_ERROR
    if scored_steps not in steps.values:
        raise ValueError(f"scored steps: expected one of {', '.join(steps.values)}")
    return scored_steps


def steps_to_score(run: EvaluationRun, label: int | None, n_steps: int) -> int:
    """How many leading steps of a solution the run critiques (ProcessBench: through the
    labelled first error; nothing after it can change any ProcessBench number)."""
    if run.scored_steps == EvaluationRun.ScoredSteps.ALL or label is None or label < 0:
        return n_steps
    return min(n_steps, label + 1)


def _user(user: User | AnonymousUser | None) -> User | None:
    return user if isinstance(user, User) and user.is_authenticated else None


def request_cancel(run: EvaluationRun) -> bool:
    """A queued run, or one whose worker died, is cancelled at once; a live worker
    stops between batches."""
    return runs.request_cancel(EvaluationRun, run.id) != "finished"


# ---------------------------------------------------------------- processing


def process_evaluation(
    run_id: int, *, backend: Backend | None = None, progress: Callable[[EvaluationRun], None] | None = None
) -> EvaluationRun | None:
    """Claim a model evaluation and score what is missing, then compute its results (model
    evaluations only: external-scores evaluations are computed at creation)."""

    def body(run: EvaluationRun) -> dict[str, Any]:
        assert run.endpoint is not None  # a model evaluation (the claim's where)
        _score_missing(run, backend or get_backend(run.endpoint), progress)
        return {"results": compute_results(run)}

    return runs.execute(
        EvaluationRun,
        run_id,
        body,
        where=Q(source=EvaluationRun.Source.MODEL),
        select_related=("endpoint", "template"),
        final=_partial_results,
    )


def _partial_results(run: EvaluationRun, status: str) -> dict[str, Any]:
    """A run that failed or was cancelled still shows the numbers of what it scored (marked
    partial); a retry finishes it. Nothing here may turn an outcome into a crash."""
    if status == EvaluationRun.Status.SUCCEEDED or not SolutionScore.objects.filter(run=run).exists():
        return {}
    try:
        results = compute_results(run)
    except Exception:  # the run's own error is what counts; these numbers are a bonus
        log.exception("partial results of evaluation %s could not be computed", run.id)
        return {}
    results["partial"] = True
    return {"results": results}


def _score_missing(
    run: EvaluationRun, backend: Backend, progress: Callable[[EvaluationRun], None] | None
) -> None:
    assert run.template is not None  # every model evaluation has one (create_evaluation)
    template = run.template.to_core()
    ids = list(run_solutions(run).values_list("id", flat=True))
    done = set(SolutionScore.objects.filter(run=run).values_list("solution_id", flat=True))
    todo = [i for i in ids if i not in done]
    runs.progress(run, solutions_total=len(ids), solutions_done=len(done))
    size = max(1, run.batch_size)
    for start in range(0, len(todo), size):
        runs.checkpoint(run)
        rows, stats = _score_batch(run, backend, template, todo[start : start + size])
        _store_batch(run, rows, stats)
        if progress:
            run.refresh_from_db(
                fields=["solutions_done", "steps_done", "tokens_generated", "backend_seconds"]
            )
            progress(run)
    run.refresh_from_db(
        fields=["solutions_done", "solutions_total", "steps_done", "tokens_generated", "backend_seconds"]
    )


def _score_batch(
    run: EvaluationRun, backend: Backend, template: CorePromptTemplate, batch: list[int]
) -> tuple[list[SolutionScore], BatchStats]:
    """Critique one batch of solutions (only the steps the run scores); rows not yet saved."""
    sols = list(Solution.objects.filter(id__in=batch).select_related("problem").order_by("id"))
    texts: dict[int, list[str]] = defaultdict(list)
    labels: dict[int, list[str]] = defaultdict(list)
    for sol_id, text, label in (
        Step.objects.filter(solution_id__in=batch)
        .order_by("solution_id", "index")
        .values_list("solution_id", "text", "label")
    ):
        texts[sol_id].append(text)
        labels[sol_id].append(label)
    stats = BatchStats()
    predicted = run.scored_steps == EvaluationRun.ScoredSteps.PREDICTED_ERROR
    scored = score_solutions(
        backend,
        template,
        [(question_for_prompt(s.problem.question, s.metadata), texts[s.id]) for s in sols],
        run.n_samples,
        run.sampling(),
        stats=stats,
        limits=[steps_to_score(run, s.first_error_index, len(texts[s.id])) for s in sols],
        stop_below=run.threshold if predicted else None,
    )
    rows = [
        SolutionScore(
            run=run,
            solution=s,
            step_scores=r.rewards,
            samples=r.p_yes,
            verdicts=r.verdicts,
            loss=solution_loss(labels[s.id], r.rewards),
            completion_tokens=r.completion_tokens,
        )
        for s, r in zip(sols, scored, strict=True)
    ]
    return rows, stats


def _store_batch(run: EvaluationRun, rows: list[SolutionScore], stats: BatchStats) -> None:
    """Stored as they arrive: a failure later loses nothing already scored."""
    with transaction.atomic():
        SolutionScore.objects.bulk_create(rows, ignore_conflicts=True)
        runs.progress(
            run,
            solutions_done=SolutionScore.objects.filter(run=run).count(),
            steps_done=F("steps_done") + sum(len(r.step_scores) for r in rows),
            tokens_generated=F("tokens_generated") + stats.completion_tokens,
            backend_seconds=F("backend_seconds") + stats.backend_seconds,
        )
