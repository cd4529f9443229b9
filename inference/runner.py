"""Process a GenerationRun: the Django shell around the inference core.

Loads the run's steps in id order, skips (step, sample) pairs that already have
a critique, asks the backend for the rest in batches, parses verdicts and
sections, and bulk-inserts critiques. Progress, counters and the summary live on
the run row; cancellation is honoured between batches, and while a batch's model
call is in flight a watcher polls the cancel flag every RUN_CANCEL_POLL_S and cancels
the call (backends with ``cancel()``), so the run ends ``cancelled`` within seconds. Safe to run twice: the
unique (run, step, sample_index) constraint makes duplicates impossible, and a
restart does only what is still missing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Q, QuerySet

from annotations.models import Step
from inference.core.backends import make_backend
from inference.core.backends.base import Backend, BackendCancelled, Completion, Sampling
from inference.core.prompts import question_for_prompt
from inference.core.text import is_truncated, repair, repair_json, repair_text
from inference.core.verdict import parse_verdict, split_sections
from rprm_web import runs

from .models import Critique, GenerationRun, ModelEndpoint

log = logging.getLogger(__name__)

_backend_cache: dict[tuple, Backend] = {}


def get_backend(endpoint: ModelEndpoint) -> Backend:
    """One loaded backend per endpoint configuration per worker process."""
    if settings.TORCH_CPU_THREADS:
        import torch  # heavy ML import, deferred to workers that load a local model

        torch.set_num_threads(settings.TORCH_CPU_THREADS)
    key = (
        endpoint.backend,
        endpoint.path_or_url,
        endpoint.served_model_name,
        repr(sorted(endpoint.options.items())),
    )
    if key not in _backend_cache:
        release_backends()  # keep one model in (GPU) memory at a time
        _backend_cache[key] = make_backend(endpoint.backend, **endpoint.backend_kwargs())
    return _backend_cache[key]


def release_backends() -> None:
    """Close every backend this process holds (frees the model's memory: before training,
    or before loading another model)."""
    for backend in list(_backend_cache.values()):
        backend.close()
    _backend_cache.clear()


def select_steps(run: GenerationRun) -> QuerySet[Step]:
    """The run's steps, deterministic: datasets are append-only, order is by id."""
    f = run.step_filter or {}
    steps = Step.objects.filter(solution__dataset_id=run.dataset_id)
    if f.get("labels"):
        steps = steps.filter(label__in=f["labels"])
    if f.get("solution_error") == "error":
        steps = steps.filter(solution__first_error_index__gte=0)
    elif f.get("solution_error") == "correct":
        steps = steps.filter(solution__first_error_index=-1)
    if f.get("up_to_first_error"):
        # Steps after the first error carry no label in ProcessBench-style data.
        steps = steps.filter(
            Q(solution__first_error_index__lt=0) | Q(index__lte=F("solution__first_error_index"))
        )
    steps = steps.order_by("id")
    if f.get("limit"):
        steps = steps[: int(f["limit"])]
    return steps


def _iter_batches(step_ids: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(step_ids), size):
        yield step_ids[i : i + size]


def step_contexts(step_ids: list[int]) -> dict[int, tuple[str, list[str], str, Step]]:
    """question, previous step texts, now step text and the Step, for each id."""
    steps = {s.id: s for s in Step.objects.filter(id__in=step_ids).select_related("solution__problem")}
    solution_ids = {s.solution_id for s in steps.values()}
    texts: dict[int, list[str]] = defaultdict(list)
    for sol_id, text in (
        Step.objects.filter(solution_id__in=solution_ids)
        .order_by("solution_id", "index")
        .values_list("solution_id", "text")
    ):
        texts[sol_id].append(text)
    out = {}
    for sid, step in steps.items():
        all_texts = texts[step.solution_id]
        question = question_for_prompt(step.solution.problem.question, step.solution.metadata)
        out[sid] = (question, all_texts[: step.index], step.text, step)
    return out


def matches_label(verdict: str, label: str) -> bool | None:
    if verdict not in ("yes", "no") or label not in (Step.Label.CORRECT, Step.Label.INCORRECT):
        return None
    return (verdict == "yes") == (label == Step.Label.CORRECT)


def build_critique(run: GenerationRun, step: Step, sample_index: int, completion: Completion) -> Critique:
    """One storable row for any completion: text PostgreSQL cannot hold is repaired
    (U+FFFD, `text_repaired`), output cut at the token limit is flagged (`truncated`),
    and a sample the parser cannot read is kept as unparseable rather than failing the run."""
    text, repaired = repair_text(completion.text)
    try:
        result = parse_verdict(text)
        sections = split_sections(text)
        section_map, fixed = repair_json(sections.sections)
        missing = list(sections.missing)
        verdict: str = result.verdict
        strict, lenient = result.strict, result.lenient_verdict or ""
        problem = result.problem or ""
        repaired = repaired or fixed
    except Exception as exc:  # noqa: BLE001 - one odd sample must not fail the run
        log.warning("critique of step %s sample %s not parsed: %r", step.id, sample_index, exc)
        section_map, missing = {}, []
        verdict, strict, lenient = Critique.Verdict.UNPARSEABLE, False, ""
        problem = repair(f"not parsed: {type(exc).__name__}")
    p_yes = completion.p_yes
    if p_yes is not None and not (0.0 <= p_yes <= 1.0):  # NaN or out of range: no probability
        p_yes = None
    return Critique(
        run=run,
        step=step,
        sample_index=sample_index,
        text=text,
        sections=section_map,
        missing_sections=missing,
        verdict=verdict,
        strict=strict,
        lenient_verdict=lenient,
        format_problem=problem[:200],
        p_yes=p_yes,
        p_yes_source=(completion.p_yes_source or "") if p_yes is not None else "",
        matches_label=matches_label(verdict, step.label),
        prompt_tokens=max(0, int(completion.prompt_tokens or 0)),
        completion_tokens=max(0, int(completion.completion_tokens or 0)),
        latency_ms=max(0, int((completion.latency_s or 0) * 1000)),
        text_repaired=repaired,
        truncated=is_truncated(completion.finish_reason),
    )


def summarise(run: GenerationRun) -> dict[str, Any]:
    """Parse rate and agreement with labels (overall, correct steps, incorrect steps)."""
    rows = (
        Critique.objects.filter(run=run)
        .values("step__label")
        .annotate(
            n=Count("id"),
            strict=Count("id", filter=Q(strict=True)),
            parsed=Count("id", filter=~Q(verdict=Critique.Verdict.UNPARSEABLE)),
            agree=Count("id", filter=Q(matches_label=True)),
            judged=Count("id", filter=Q(matches_label__isnull=False)),
            yes=Count("id", filter=Q(verdict=Critique.Verdict.YES)),
            repaired=Count("id", filter=Q(text_repaired=True)),
            truncated=Count("id", filter=Q(truncated=True)),
        )
    )
    by_label: dict[str, Mapping[str, Any]] = {r["step__label"]: r for r in rows}
    total = sum(r["n"] for r in rows)

    def rate(num: int, den: int) -> float | None:
        return round(num / den, 4) if den else None

    def agreement(labels: list[str]) -> float | None:
        return rate(
            sum(by_label.get(lb, {}).get("agree", 0) for lb in labels),
            sum(by_label.get(lb, {}).get("judged", 0) for lb in labels),
        )

    return {
        "critiques": total,
        "strict": sum(r["strict"] for r in rows),
        "parsed": sum(r["parsed"] for r in rows),
        "parse_rate": rate(sum(r["strict"] for r in rows), total),
        "lenient_parse_rate": rate(sum(r["parsed"] for r in rows), total),
        "yes": sum(r["yes"] for r in rows),
        "agreement": agreement([Step.Label.CORRECT, Step.Label.INCORRECT]),
        "agreement_correct": agreement([Step.Label.CORRECT]),
        "agreement_incorrect": agreement([Step.Label.INCORRECT]),
        "sft_eligible": Critique.objects.filter(run=run).sft_eligible().count(),
        # Model output that needed U+FFFD for unstorable characters, or hit the token limit.
        "text_repaired": sum(r["repaired"] for r in rows),
        "truncated": sum(r["truncated"] for r in rows),
    }


def process_run(
    run_id: int, *, progress: Callable[[GenerationRun], None] | None = None, backend: Backend | None = None
) -> GenerationRun | None:
    """Claim and process a run to the end. Returns None if another worker has it.
    Its completion reaches review through `rprm_web.runs.run_finished`."""
    return runs.execute(
        GenerationRun,
        run_id,
        lambda run: _process(run, backend or get_backend(run.endpoint), progress),
        select_related=("endpoint", "template", "dataset"),
        final=lambda run, status: {"summary": summarise(run)},
    )


def _watch_cancel(
    run: GenerationRun, cancel: Callable[[], int], stop: threading.Event, requested: threading.Event
) -> None:
    """Poll the run's cancel flag until ``stop``; on a cancel, cancel the backend's calls."""
    try:
        while not stop.wait(settings.RUN_CANCEL_POLL_S):
            if GenerationRun.objects.filter(id=run.id, cancel_requested=True).exists():
                requested.set()
                cancel()
                return
    finally:
        connection.close()  # this thread's own connection


def generate_cancellable(run: GenerationRun, backend: Backend, prompts: list, sampling: Sampling) -> list:
    """``backend.generate``, interrupted within RUN_CANCEL_POLL_S when the run's cancel is
    requested (then RunCancelled: the lifecycle ends the run ``cancelled``)."""
    cancel = getattr(backend, "cancel", None)
    if cancel is None:  # in-process backends finish their batch; the next checkpoint cancels
        return backend.generate(prompts, run.n_samples, sampling)
    stop, requested = threading.Event(), threading.Event()
    watcher = threading.Thread(target=_watch_cancel, args=(run, cancel, stop, requested), daemon=True,
                               name=f"cancel-watch-{run.pk}")  # fmt: skip
    watcher.start()
    try:
        return backend.generate(prompts, run.n_samples, sampling)
    except BackendCancelled:
        if requested.is_set():
            raise runs.RunCancelled from None
        raise
    finally:
        stop.set()
        watcher.join(timeout=5)


def _process(run: GenerationRun, backend: Backend, progress: Callable[[GenerationRun], None] | None) -> None:
    template = run.template.to_core()
    sampling = run.sampling()
    step_ids = list(select_steps(run).values_list("id", flat=True))
    run.steps_total = len(step_ids)
    runs.progress(run, steps_total=run.steps_total)

    done = 0
    for batch in _iter_batches(step_ids, max(1, run.batch_size)):
        runs.checkpoint(run)
        t0 = time.perf_counter()
        have: dict[int, set[int]] = defaultdict(set)
        for sid, idx in Critique.objects.filter(run=run, step_id__in=batch).values_list(
            "step_id", "sample_index"
        ):
            have[sid].add(idx)
        todo = [sid for sid in batch if len(have[sid]) < run.n_samples]
        new: list[Critique] = []
        backend_s = 0.0
        if todo:
            ctx = step_contexts(todo)
            # Messages for a chat template: the backend applies the model's own chat template.
            prompts = [template.render(ctx[s][0], ctx[s][1], ctx[s][2]) for s in todo]
            b0 = time.perf_counter()
            results = generate_cancellable(run, backend, prompts, sampling)
            backend_s = time.perf_counter() - b0
            for sid, completions in zip(todo, results, strict=True):
                for sample_index, completion in enumerate(completions):
                    if sample_index not in have[sid]:
                        new.append(build_critique(run, ctx[sid][3], sample_index, completion))
        had = sum(len(v) for v in have.values())
        with transaction.atomic():
            Critique.objects.bulk_create(new, ignore_conflicts=True, batch_size=500)
            # Rows skipped as conflicts (written meanwhile by a taken-over worker) do not count.
            inserted = Critique.objects.filter(run=run, step_id__in=batch).count() - had
            runs.progress(
                run,
                steps_done=done + len(batch),  # absolute, so a resumed run counts right
                critiques_done=F("critiques_done") + inserted,
                tokens_generated=F("tokens_generated") + sum(c.completion_tokens for c in new),
                backend_seconds=F("backend_seconds") + backend_s,
                orchestration_seconds=F("orchestration_seconds") + (time.perf_counter() - t0 - backend_s),
            )
        done += len(batch)
        run.refresh_from_db(
            fields=[
                "steps_done",
                "critiques_done",
                "tokens_generated",
                "backend_seconds",
                "orchestration_seconds",
                "cancel_requested",
            ]
        )
        if progress:
            progress(run)
