"""Benchmark evaluation: the Django shell around the scoring core and the metrics.

An EvaluationRun scores every solution of its datasets once, keeping each step's
K sampled p_yes (SolutionScore), then computes everything from those rows:
ProcessBench or PRMBench metrics at the run's threshold, a threshold sweep, the
K-scaling curve (by subsampling the stored samples) and the contamination report.
External step scores (any other PRM) are imported into the same rows and go
through the same code. Model runs are processed by a gpu-queue task that claims
the run with a conditional UPDATE and scores only the solutions still missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
import threading
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from annotations.access import is_reviewer
from annotations.models import Dataset, Problem, Solution, Step
from inference.core import metrics
from inference.core.contamination import overlap_report
from inference.core.prompts import question_for_prompt
from inference.core.solution_scoring import DEFAULT_K, EVAL_SAMPLING, MAX_K, BatchStats, score_solutions
from inference.core.text import repair

from .models import ApiToken, EvaluationDataset, EvaluationRun, ModelEndpoint, PromptTemplate, SolutionScore
from .trust import record_failure

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=10)
SCORER_ROLES = (ModelEndpoint.Role.SCORER, ModelEndpoint.Role.STUDENT)
TRAINING_FORMATS = (Dataset.Format.PRM800K, Dataset.Format.RPRM_STEPS)
K_SCALING_RESAMPLES = 200

# Published reference numbers (method doc / R-PRM paper, arXiv 2503.21295), in percent.
PUBLISHED = [
    {"name": "R-PRM-7B (SFT)", "processbench": 65.2, "prmbench": 64.9},
    {"name": "R-PRM-7B (DPO)", "processbench": 70.4, "prmbench": 66.8},
    {"name": "Qwen2.5-Math-PRM-7B", "processbench": 73.5, "prmbench": None},
    {"name": "GenPRM-7B", "processbench": 75.2, "prmbench": None},
    {"name": "Qwen2.5-Math-7B-PRM800K", "processbench": 56.5, "prmbench": None},
    {"name": "GPT-4o", "processbench": 61.9, "prmbench": None},
]
PUBLISHED_K_SCALING = [(1, 61.3), (2, 62.8), (4, 67.6), (8, 69.7), (16, 70.8), (32, 71.7)]
PUBLISHED_GUIDANCE = {"pass@1": 41.0, "best_of_8": 49.6, "guided_search": 49.4}


class RunCancelled(Exception):
    pass


class ScoreFileError(ValueError):
    """A bad external scores file: names the file, the line and the field."""

    def __init__(self, file: str, line: int | None, field: str | None, message: str) -> None:
        self.file, self.line, self.field, self.message = file, line, field, message
        where = file + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}")


# ---------------------------------------------------------------- API tokens


def create_api_token(user, name: str = "") -> tuple[ApiToken, str]:
    """A new token for `user`; the plain token is returned once and never stored."""
    raw = "rprm_" + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=raw[:12], token_hash=ApiToken.hash(raw))
    return token, raw


def authenticate_token(raw: str) -> ApiToken | None:
    if not raw:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(token_hash=ApiToken.hash(raw), revoked_at__isnull=True)
        .first()
    )
    # A token acts for its user: only while that user is active and holds a role
    # (reviewer or admin); an account stripped of its groups loses API access too.
    if token is None or not token.user.is_active or not is_reviewer(token.user):
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > timedelta(seconds=60):
        # At most one write a minute per token: the API must not write on every call.
        ApiToken.objects.filter(id=token.id).update(last_used_at=now)
    return token


# ---------------------------------------------------------------- shared helpers


def eval_sampling_values(endpoint: ModelEndpoint | None, **overrides: Any) -> dict[str, Any]:
    """Method defaults (T=0.95, top_p=0.95, 4,096 new tokens); an endpoint's own
    `default_sampling` may lower max_new_tokens (a model limit); explicit values win."""
    values: dict[str, Any] = {
        "temperature": EVAL_SAMPLING.temperature,
        "top_p": EVAL_SAMPLING.top_p,
        "max_new_tokens": EVAL_SAMPLING.max_new_tokens,
        "seed": None,
    }
    if endpoint is not None:
        for key in ("max_new_tokens", "seed"):
            if endpoint.default_sampling.get(key) is not None:
                values[key] = endpoint.default_sampling[key]
    values.update({k: v for k, v in overrides.items() if v is not None})
    return values


def scorer_endpoint(name: str) -> ModelEndpoint | None:
    return ModelEndpoint.objects.filter(name=name, role__in=SCORER_ROLES).first()


def template_for(name: str | None = None) -> PromptTemplate:
    """`name` or `name@version`; the built-in default template when empty."""
    from .actions import default_template

    if not name:
        return default_template()
    base, _, version = name.partition("@")
    qs = PromptTemplate.objects.filter(name=base)
    if version:
        qs = qs.filter(version=int(version))
    found = qs.order_by("-version").first()
    if found is None:
        raise PromptTemplate.DoesNotExist(f"no prompt template {name!r}")
    return found


def subset_of(solution: Solution, dataset: Dataset) -> str:
    """ProcessBench subset: the solution's metadata `subset`, else its id prefix (`gsm8k-3`,
    `math-12`: one dataset may hold several subsets), else the dataset's split/name."""
    return str(
        (solution.metadata or {}).get("subset")
        or metrics.processbench_subset_from_id(solution.source_id)
        or dataset.split
        or dataset.name
    )


def step_targets(labels: list[str]) -> list[float | None]:
    return [1.0 if lb == Step.Label.CORRECT else 0.0 if lb == Step.Label.INCORRECT else None for lb in labels]


def solution_loss(labels: list[str], step_scores: list[float | None]) -> float | None:
    """Mean |target - score| over labelled, scored steps (None when there are none)."""
    diffs = [
        abs(t - s)
        for t, s in zip(step_targets(labels), step_scores, strict=False)
        if t is not None and s is not None
    ]
    return math.fsum(diffs) / len(diffs) if diffs else None


def _step_labels(solution_ids: Iterable[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = defaultdict(list)
    rows = Step.objects.filter(solution_id__in=list(solution_ids)).order_by("solution_id", "index")
    for sol_id, label in rows.values_list("solution_id", "label"):
        out[sol_id].append(label)
    return out


def run_solutions(run: EvaluationRun):
    """The solutions a run covers, in a fixed order (datasets are append-only)."""
    ids = EvaluationDataset.objects.filter(run=run).values_list("dataset_id", flat=True)
    qs = Solution.objects.filter(dataset_id__in=list(ids)).order_by("dataset_id", "id")
    if run.solution_limit:
        qs = qs[: run.solution_limit]
    return qs


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
    batch_size: int = 4,
    user=None,
    queue: bool = True,
    **sampling: Any,
) -> EvaluationRun:
    """A model evaluation (queued on the gpu queue once committed) or an external-scores
    evaluation (validated, stored and computed right here). A bad scores file raises
    ScoreFileError and writes nothing."""
    from .tasks_eval import process_evaluation_run

    check_datasets(benchmark, datasets)
    if (endpoint is None) == (scores_path is None):
        raise ValueError("give either a model endpoint or a scores file")
    if not 0 <= threshold <= 1:
        raise ValueError("threshold must be within [0, 1]")
    if scores_path is not None:
        scores_name = scores_name or Path(scores_path).name
        parsed = read_external_scores(scores_path, datasets, display_name=scores_name)
        with transaction.atomic():
            run = EvaluationRun.objects.create(
                name=name or Path(scores_name).stem,
                benchmark=benchmark,
                source=EvaluationRun.Source.EXTERNAL,
                scores_file=scores_name,
                scores_sha256=_sha256(scores_path),
                n_samples=1,
                threshold=threshold,
                status=EvaluationRun.Status.RUNNING,
                started_at=timezone.now(),
                created_by=_user(user),
            )
            EvaluationDataset.objects.bulk_create([EvaluationDataset(run=run, dataset=d) for d in datasets])
            labels = _step_labels(parsed)
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
            run.save(
                update_fields=[
                    "solutions_total",
                    "solutions_done",
                    "steps_done",
                    "results",
                    "status",
                    "finished_at",
                ]
            )
        return run

    assert endpoint is not None
    if not 1 <= n_samples <= MAX_K:
        raise ValueError(f"K must be within 1..{MAX_K}")
    values = eval_sampling_values(endpoint, **sampling)
    with transaction.atomic():
        run = EvaluationRun.objects.create(
            name=name or endpoint.name,
            benchmark=benchmark,
            source=EvaluationRun.Source.MODEL,
            endpoint=endpoint,
            template=template or template_for(None),
            n_samples=n_samples,
            threshold=threshold,
            solution_limit=solution_limit,
            batch_size=batch_size,
            created_by=_user(user),
            **values,
        )
        EvaluationDataset.objects.bulk_create([EvaluationDataset(run=run, dataset=d) for d in datasets])
        run.solutions_total = run_solutions(run).count()
        run.save(update_fields=["solutions_total"])
        if queue:
            process_evaluation_run.delay_on_commit(run.id)
    return run


def _user(user):
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def _sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_external_scores(
    path: str | Path, datasets: list[Dataset], display_name: str | None = None
) -> dict[int, list[float]]:
    """Parse and validate a JSONL file of `{"id": <solution source id>, "step_scores": [...]}`.

    Returns {solution pk: step scores}. Every solution of the datasets must be scored
    exactly once, with one finite score in [0, 1] per step; an optional "dataset" key
    (name) disambiguates ids shared by several datasets.
    """
    file = display_name or Path(path).name
    by_id: dict[str, list[tuple[int, int, str]]] = defaultdict(list)  # source id -> [(pk, n_steps, dataset)]
    names = {d.id: d.name for d in datasets}
    for pk, source_id, n_steps, ds in Solution.objects.filter(dataset__in=datasets).values_list(
        "id", "source_id", "n_steps", "dataset_id"
    ):
        by_id[source_id].append((pk, n_steps, names[ds]))
    out: dict[int, list[float]] = {}
    seen_line: dict[int, int] = {}
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise ScoreFileError(file, None, None, f"cannot be read ({exc.strerror})") from exc
    with handle:
        try:
            for line_no, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ScoreFileError(file, line_no, None, f"not valid JSON ({exc.msg})") from None
                if not isinstance(record, dict):
                    raise ScoreFileError(file, line_no, None, "expected a JSON object")
                sid = record.get("id")
                if isinstance(sid, bool) or not isinstance(sid, str | int) or sid == "":
                    raise ScoreFileError(file, line_no, "id", "expected the solution's source id (string)")
                matches = by_id.get(str(sid), [])
                if "dataset" in record:
                    matches = [m for m in matches if m[2] == record["dataset"]]
                if not matches:
                    raise ScoreFileError(
                        file, line_no, "id", f"no solution {sid!r} in {', '.join(names.values())}"
                    )
                if len(matches) > 1:
                    raise ScoreFileError(
                        file, line_no, "id", f'{sid!r} is in several datasets; add a "dataset" key'
                    )
                pk, n_steps, _ = matches[0]
                if pk in seen_line:
                    raise ScoreFileError(
                        file, line_no, "id", f"{sid!r} already scored on line {seen_line[pk]}"
                    )
                scores = record.get("step_scores")
                if not isinstance(scores, list):
                    raise ScoreFileError(file, line_no, "step_scores", "expected a list of numbers")
                if len(scores) != n_steps:
                    raise ScoreFileError(
                        file,
                        line_no,
                        "step_scores",
                        f"{len(scores)} scores for a solution of {n_steps} steps",
                    )
                for i, s in enumerate(scores):
                    if (
                        isinstance(s, bool)
                        or not isinstance(s, int | float)
                        or not math.isfinite(s)
                        or not 0 <= s <= 1
                    ):
                        raise ScoreFileError(
                            file,
                            line_no,
                            f"step_scores[{i}]",
                            f"expected a number in [0, 1], got {json.dumps(s)}",
                        )
                out[pk] = [float(s) for s in scores]
                seen_line[pk] = line_no
        except UnicodeDecodeError as exc:
            raise ScoreFileError(file, None, None, f"not UTF-8 text ({exc.reason})") from None
    missing = [(sid, m[2]) for sid, ms in by_id.items() for m in ms if m[0] not in out]
    if missing:
        first = ", ".join(f"{s!r}" for s, _ in missing[:3])
        raise ScoreFileError(file, None, "id", f"{len(missing)} solution(s) have no scores (e.g. {first})")
    if not out:
        raise ScoreFileError(file, None, None, "the file holds no scores")
    return out


def request_cancel(run: EvaluationRun) -> bool:
    if EvaluationRun.objects.filter(id=run.id, status=EvaluationRun.Status.QUEUED).update(
        status=EvaluationRun.Status.CANCELLED, cancel_requested=True, finished_at=timezone.now()
    ):
        return True
    return bool(
        EvaluationRun.objects.filter(id=run.id, status=EvaluationRun.Status.RUNNING).update(
            cancel_requested=True
        )
    )


# ---------------------------------------------------------------- processing


def claim(run_id: int, worker: str) -> EvaluationRun | None:
    """Conditional UPDATE: queued, or running under a silent worker or this very worker."""
    now = timezone.now()
    running = Q(status=EvaluationRun.Status.RUNNING)
    claimed = EvaluationRun.objects.filter(
        Q(status=EvaluationRun.Status.QUEUED)
        | (
            running
            & (Q(heartbeat_at__lt=now - STALE_AFTER) | Q(heartbeat_at__isnull=True) | Q(worker=worker))
        ),
        id=run_id,
        source=EvaluationRun.Source.MODEL,
        cancel_requested=False,
    ).update(status=EvaluationRun.Status.RUNNING, heartbeat_at=now, worker=worker, error="")
    if not claimed:
        return None
    run = EvaluationRun.objects.select_related("endpoint", "template").get(id=run_id)
    if run.started_at is None:
        run.started_at = now
        run.save(update_fields=["started_at"])
    return run


def process_evaluation(
    run_id: int, *, backend=None, progress: Callable[[EvaluationRun], None] | None = None
) -> EvaluationRun | None:
    """Claim a model evaluation and score what is missing, then compute its results."""
    from .runner import get_backend, worker_name

    run = claim(run_id, worker_name())
    if run is None:
        log.info("evaluation %s not claimable (finished, cancelled or held by a live worker)", run_id)
        return None
    stop = threading.Event()
    threading.Thread(target=_heartbeat, args=(EvaluationRun, run.id, stop), daemon=True).start()
    try:
        _score_missing(run, backend or get_backend(run.endpoint), progress)
        run.results = compute_results(run)
        _finish(run, EvaluationRun.Status.SUCCEEDED)
    except RunCancelled:
        _finish(run, EvaluationRun.Status.CANCELLED)
    except Exception as exc:  # recorded on the run; the task does not retry
        log.exception("evaluation %s failed", run_id)
        # The message may quote model text: repaired, or recording the failure fails too.
        record_failure(run, exc, repair(f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}"))
        run.error = repair(run.error)
        _finish(run, EvaluationRun.Status.FAILED)
    finally:
        stop.set()
    return run


def _heartbeat(model, run_id: int, stop: threading.Event, every_s: float = 30) -> None:
    from django.db import connection

    try:
        while not stop.wait(every_s):
            model.objects.filter(id=run_id, status=model.Status.RUNNING).update(heartbeat_at=timezone.now())
    finally:
        connection.close()


def _finish(run: EvaluationRun, status: str) -> None:
    run.status = status
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "finished_at", "error", "results"])


def _score_missing(run: EvaluationRun, backend, progress) -> None:
    template = run.template.to_core()
    sampling = run.sampling()
    ids = list(run_solutions(run).values_list("id", flat=True))
    done = set(SolutionScore.objects.filter(run=run).values_list("solution_id", flat=True))
    todo = [i for i in ids if i not in done]
    EvaluationRun.objects.filter(id=run.id).update(solutions_total=len(ids), solutions_done=len(done))
    size = max(1, run.batch_size)
    for start in range(0, len(todo), size):
        if EvaluationRun.objects.filter(id=run.id, cancel_requested=True).exists():
            raise RunCancelled
        batch = todo[start : start + size]
        sols = Solution.objects.filter(id__in=batch).select_related("problem").order_by("id")
        texts: dict[int, list[str]] = defaultdict(list)
        labels: dict[int, list[str]] = defaultdict(list)
        for sol_id, text, label in (
            Step.objects.filter(solution_id__in=batch)
            .order_by("solution_id", "index")
            .values_list("solution_id", "text", "label")
        ):
            texts[sol_id].append(text)
            labels[sol_id].append(label)
        sols = list(sols)
        stats = BatchStats()
        scored = score_solutions(
            backend,
            template,
            [(question_for_prompt(s.problem.question, s.metadata), texts[s.id]) for s in sols],
            run.n_samples,
            sampling,
            stats=stats,
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
        with transaction.atomic():
            SolutionScore.objects.bulk_create(rows, ignore_conflicts=True)
            EvaluationRun.objects.filter(id=run.id).update(
                solutions_done=SolutionScore.objects.filter(run=run).count(),
                steps_done=F("steps_done") + sum(len(r.steps) for r in scored),
                tokens_generated=F("tokens_generated") + stats.completion_tokens,
                backend_seconds=F("backend_seconds") + stats.backend_seconds,
                heartbeat_at=timezone.now(),
            )
        if progress:
            run.refresh_from_db(
                fields=["solutions_done", "steps_done", "tokens_generated", "backend_seconds"]
            )
            progress(run)
    run.refresh_from_db(
        fields=["solutions_done", "solutions_total", "steps_done", "tokens_generated", "backend_seconds"]
    )


# ---------------------------------------------------------------- results


def _items(run: EvaluationRun) -> list[dict[str, Any]]:
    """One dict per scored solution: what the metrics need, in a fixed order."""
    datasets = {
        d.id: d
        for d in Dataset.objects.filter(id__in=EvaluationDataset.objects.filter(run=run).values("dataset_id"))
    }
    rows = (
        SolutionScore.objects.filter(run=run)
        .select_related("solution__error_type")
        .only(
            "step_scores",
            "samples",
            "solution__id",
            "solution__dataset_id",
            "solution__problem_id",
            "solution__first_error_index",
            "solution__metadata",
            "solution__error_type__slug",
        )
        .order_by("solution__dataset_id", "solution_id")
    )
    items = []
    for row in rows:
        sol = row.solution
        items.append(
            {
                "solution_id": sol.id,
                "problem_id": sol.problem_id,
                "subset": subset_of(sol, datasets[sol.dataset_id]),
                "label": sol.first_error_index,
                "classification": sol.error_type.slug
                if sol.error_type
                else (sol.metadata or {}).get("classification"),
                "error_steps": (sol.metadata or {}).get("error_steps"),
                "step_scores": row.step_scores,
                "samples": row.samples,
            }
        )
    return items


def _processbench_rows(items, threshold: float, scores_key: str = "step_scores") -> dict[str, list]:
    rows: dict[str, list] = defaultdict(list)
    for it in items:
        if it["label"] is None:
            raise ValueError(f"solution {it['solution_id']} has no ProcessBench label")
        rows[it["subset"]].append((it["label"], metrics.processbench_predict(it[scores_key], threshold)))
    return dict(sorted(rows.items()))


def _prmbench_items(items, scores: list | None = None) -> list[dict[str, Any]]:
    out = []
    for n, it in enumerate(items):
        error_steps = it["error_steps"]
        if error_steps is None:  # not imported from PRMBench: fall back to the first error
            error_steps = [it["label"] + 1] if it["label"] is not None and it["label"] >= 0 else []
        out.append(
            {
                "classification": it["classification"] or "unknown",
                "error_steps": error_steps,
                "step_scores": it["step_scores"] if scores is None else scores[n],
            }
        )
    return out


def headline(benchmark: str, items, threshold: float) -> float | None:
    """ProcessBench avg F1 (percent) or PRMBench overall PRMScore (as percent)."""
    if benchmark == EvaluationRun.Benchmark.PROCESSBENCH:
        return metrics.processbench_report(_processbench_rows(items, threshold))["avg_f1"]
    overall = metrics.prmbench_report(_prmbench_items(items), threshold)["overall"]
    return None if overall is None else overall * 100


def compute_results(run: EvaluationRun, *, n_resamples: int | None = None) -> dict[str, Any]:
    """Every number the results page and `evaluate --json` show, from the stored scores."""
    items = _items(run)
    t = run.threshold
    out: dict[str, Any] = {
        "benchmark": run.benchmark,
        "threshold": t,
        "n_solutions": len(items),
        "n_steps": sum(len(it["step_scores"]) for it in items),
    }
    if not items:
        out["headline"] = {"metric": "none", "value": None}
        return out
    if run.benchmark == EvaluationRun.Benchmark.PROCESSBENCH:
        report = metrics.processbench_report(_processbench_rows(items, t))
        out["processbench"] = report
        out["headline"] = {
            "metric": "avg_f1",
            "label": "Avg. F1",
            "value": report["avg_f1"],
            "unit": "percent",
        }
        subset_items: dict[str, list] = defaultdict(list)
        for it in items:
            subset_items[it["subset"]].append((it["label"], it["step_scores"]))
        out["sweep"] = [
            {
                "threshold": r["threshold"],
                "value": r["avg_f1"],
                "subsets": {k: v["f1"] for k, v in r["subsets"].items()},
            }
            for r in metrics.threshold_sweep(subset_items)
        ]
    else:
        report = metrics.prmbench_report(_prmbench_items(items), t)
        out["prmbench"] = report
        overall = report["overall"]
        out["headline"] = {
            "metric": "prmscore_overall",
            "label": "PRMScore (overall)",
            "value": None if overall is None else overall * 100,
            "unit": "percent",
            "fraction": overall,
        }
        sweep = []
        for th in [round(0.05 * i, 2) for i in range(1, 20)]:
            r = metrics.prmbench_report(_prmbench_items(items), th)
            sweep.append(
                {
                    "threshold": th,
                    "value": None if r["overall"] is None else r["overall"] * 100,
                    "dimensions": {k: v["prmscore"] for k, v in r["dimensions"].items()},
                }
            )
        out["sweep"] = sweep
    out["k_max"] = max((len(s) for it in items for s in it["samples"]), default=0)
    if n_resamples is None:  # each resample re-scores every item in Python: bound the work
        n_resamples = K_SCALING_RESAMPLES if out["n_steps"] <= 20_000 else 50
    out["k_scaling"] = (
        k_scaling_curve(run.benchmark, items, t, n_resamples=n_resamples) if out["k_max"] > 1 else None
    )
    out["contamination"] = contamination(list(run.datasets.all()))
    contaminated = set(out["contamination"]["normalized"]["problem_ids"]) if out["contamination"] else set()
    if contaminated:
        clean = [it for it in items if it["problem_id"] not in contaminated]
        out["clean"] = {
            "n_solutions": len(clean),
            "headline": headline(run.benchmark, clean, t) if clean else None,
        }
    verdicts = SolutionScore.objects.filter(run=run).values_list("verdicts", flat=True)
    n_samples = n_unparseable = 0
    for per_solution in verdicts:
        for per_step in per_solution or []:
            n_samples += len(per_step)
            n_unparseable += sum(v == "unparseable" for v in per_step)
    out["critiques"] = {"samples": n_samples, "unparseable": n_unparseable}
    return out


def k_scaling_curve(
    benchmark: str, items, threshold: float, *, n_resamples: int = K_SCALING_RESAMPLES, seed: int = 0
) -> list[dict[str, Any]]:
    """The headline at K = 1, 2, 4, ... K_max by subsampling the stored samples
    (inference.core.metrics.k_scaling: mean and percentile interval over resamples)."""
    labels = list(range(len(items)))  # the metric looks items up by position

    def metric_fn(by_item, idx):
        scored = [{**items[i], "step_scores": s} for i, s in zip(idx, by_item, strict=True)]
        return headline(benchmark, scored, threshold)

    samples = [it["samples"] for it in items]
    return metrics.k_scaling(samples, labels, n_resamples=n_resamples, seed=seed, metric_fn=metric_fn)


def contamination(eval_datasets: list[Dataset], train_datasets: list[Dataset] | None = None) -> dict | None:
    """Overlap of the evaluation problems with training problems (exact and normalised).

    Training datasets default to every PRM800K / R-PRM step-rows dataset (the R-PRM
    training sources). None when there is no training dataset to compare with.
    """
    eval_ids = {d.id for d in eval_datasets}
    if train_datasets is None:
        train_datasets = list(
            Dataset.objects.filter(source_format__in=TRAINING_FORMATS).exclude(id__in=eval_ids)
        )
    if not train_datasets:
        return None
    questions = dict(Problem.objects.filter(dataset__in=eval_datasets).values_list("id", "question"))
    train = Problem.objects.filter(dataset__in=train_datasets).values_list("question", flat=True).iterator()
    report = overlap_report(questions, train)
    out: dict[str, Any] = {
        "train_datasets": [d.name for d in train_datasets],
        "eval_datasets": [d.name for d in eval_datasets],
        "n_problems": report["n_eval"],
        "n_train_questions": report["n_train"],
    }
    n_solutions = Solution.objects.filter(dataset__in=eval_datasets).count()
    for kind in ("exact", "normalized"):
        ids = report[kind]["ids"]
        hit_solutions = Solution.objects.filter(dataset__in=eval_datasets, problem_id__in=ids).count()
        out[kind] = {
            "problems": report[kind]["count"],
            "problem_rate": report[kind]["rate"],
            "solutions": hit_solutions,
            "solution_rate": hit_solutions / n_solutions if n_solutions else 0.0,
            "problem_ids": ids,
        }
    out["n_solutions"] = n_solutions
    return out


def json_summary(run: EvaluationRun) -> dict[str, Any]:
    """The one-object summary `evaluate --json` prints last."""
    r = run.results or {}
    out: dict[str, Any] = {
        "run": str(run.uuid),
        "name": run.name,
        "benchmark": run.benchmark,
        "status": run.status,
        "source": run.source,
        "datasets": [d.name for d in run.datasets.all()],
        "threshold": run.threshold,
        "k": run.n_samples,
        "n_solutions": r.get("n_solutions"),
        "headline": r.get("headline"),
    }
    if run.benchmark == EvaluationRun.Benchmark.PROCESSBENCH and "processbench" in r:
        out["subsets"] = r["processbench"]["subsets"]
        out["avg_f1"] = r["processbench"]["avg_f1"]
        out["complete"] = r["processbench"]["complete"]
    elif "prmbench" in r:
        out["classes"] = {k: v["prmscore"] for k, v in r["prmbench"]["classes"].items()}
        out["dimensions"] = {k: v["prmscore"] for k, v in r["prmbench"]["dimensions"].items()}
        out["overall"] = r["prmbench"]["overall"]
    out["k_scaling"] = [
        {k: p[k] for k in ("k", "value", "ci_low", "ci_high")} for p in r.get("k_scaling") or []
    ]
    if r.get("contamination"):
        c = r["contamination"]
        out["contamination"] = {
            "exact_problems": c["exact"]["problems"],
            "normalized_problems": c["normalized"]["problems"],
            "normalized_solutions": c["normalized"]["solutions"],
        }
    if run.error:
        out["error"] = run.error.splitlines()[0]
    return out


def results_table() -> list[dict[str, Any]]:
    """Models x benchmarks: our latest succeeded run per (name, benchmark), then the
    published numbers (marked)."""
    rows: dict[str, dict[str, Any]] = {}
    runs = (
        EvaluationRun.objects.filter(status=EvaluationRun.Status.SUCCEEDED)
        .only("uuid", "name", "benchmark", "source", "n_samples", "results", "created_at")
        .order_by("-created_at")
    )
    for run in runs:
        row = rows.setdefault(
            run.name, {"name": run.name, "published": False, "source": run.source, "cells": {}}
        )
        if run.benchmark not in row["cells"]:
            row["cells"][run.benchmark] = {"value": run.headline, "run": run, "k": run.n_samples}
    ours = sorted(rows.values(), key=lambda r: r["name"].lower())
    published = [
        {
            "name": p["name"],
            "published": True,
            "source": "published",
            "cells": {b: {"value": p[b]} for b in ("processbench", "prmbench") if p[b] is not None},
        }
        for p in PUBLISHED
    ]
    return ours + published
