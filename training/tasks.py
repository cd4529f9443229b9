"""Run a TrainingRun on the gpu worker: the Django shell around training.core.runner.

The run goes through the one lifecycle (`rprm_web.runs.execute`: claim, heartbeat,
fenced outcome, the public/staff error split): build the data, call run_sft / run_dpo
with a sink that writes progress and metrics to the row (throttled, fenced by the
holder) and reads cancel and lease at the core's checkpoints, then register the model.
Safe to run twice: a finished run is not claimed again, the core resumes from the
newest checkpoint in the run's output_dir (or returns the stored result when `final`
exists), and registering the model is idempotent. A worker killed mid-training
re-queues the runs it held when it restarts under the same name (runs.resume).

Under `accelerate launch` (multi-GPU, see docs/training.md) every rank runs `train`;
only the main process claims and writes, the others follow.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inference import runner
from rprm_web import runs
from training.core.runner import TrainResult, last_complete_checkpoint, run_dpo, run_sft

from .actions import json_safe, register_trained_model, train_config
from .data import build_training_data
from .export import run_export_job
from .models import ExportJob, TrainingMetric, TrainingRun

if TYPE_CHECKING:
    from accelerate import PartialState

log = logging.getLogger(__name__)

LOG_LINES = 200
METRIC_COLUMNS = ("loss", "eval_loss", "learning_rate", "grad_norm", "epoch")
# What the log tail shows of each log (everything is kept in TrainingMetric.extra).
LOGGED = {
    "loss",
    "eval_loss",
    "learning_rate",
    "grad_norm",
    "rewards/accuracies",
    "rewards/margins",
    "eval_rewards/accuracies",
    "train_loss",
}


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_training(run_id: int) -> None:
    """gpu queue. Idempotent: claims the run, resumes from its last checkpoint."""
    train(run_id)


def _finite(value: Any) -> float | None:
    # NaN / inf are not JSON (json_script, jsonb) and mean "no value" on the chart.
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class RowSink:
    """training.core ProgressSink writing to a TrainingRun row.

    Logs are buffered and written at most every `flush_every` seconds (and at
    every evaluation and checkpoint), so a fast tiny-model run does not turn into
    a database benchmark; `should_stop` reads cancel_requested at most every
    `poll_every` seconds. The core polls it after every optimizer step.
    """

    def __init__(
        self,
        run: TrainingRun,
        *,
        flush_every: float = 2.0,
        poll_every: float = 1.0,
        honour_cancel: bool = True,
    ):
        self.run, self.run_id = run, run.id
        self.flush_every, self.poll_every, self.honour_cancel = flush_every, poll_every, honour_cancel
        self.lines: deque[str] = deque((run.log_tail or "").splitlines(), maxlen=LOG_LINES)
        self.pending: dict[int, dict[str, float | None]] = {}
        self.step, self.max_steps = run.step, run.max_steps
        self.checkpoint = run.last_checkpoint
        self.flushed = self.polled = 0.0
        self.stop = False

    def note(self, line: str) -> None:
        self.lines.append(f"{timezone.now():%H:%M:%S} {line}")

    # -- ProgressSink -------------------------------------------------------------------

    def on_log(self, step: int, max_steps: int, metrics: dict[str, float]) -> None:
        values = {k: _finite(v) for k, v in metrics.items() if isinstance(v, int | float)}
        self.pending.setdefault(step, {}).update(values)
        self.step, self.max_steps = step, max(max_steps, step)
        shown = " ".join(f"{k}={v:.4g}" for k, v in values.items() if v is not None and k in LOGGED)
        self.note(f"step {step}/{max_steps} {shown}")
        if "eval_loss" in values or time.monotonic() - self.flushed >= self.flush_every:
            self.flush()

    def should_stop(self) -> bool:
        if not self.honour_cancel:
            return False
        if not self.stop and time.monotonic() - self.polled >= self.poll_every:
            self.polled = time.monotonic()
            try:
                runs.checkpoint(self.run)  # LeaseLost goes up through the trainer to the lifecycle
            except runs.RunCancelled:
                self.stop = True
                self.note("cancel requested: stopping after this step")
        return self.stop

    def on_checkpoint(self, path: str) -> None:
        self.checkpoint = path
        self.note(f"checkpoint {os.path.basename(path)}")
        self.flush()

    # -- writing ----------------------------------------------------------------------------

    def flush(self, **fields: Any) -> None:
        """Metrics and progress in one transaction, fenced: LeaseLost (nothing written) when
        another worker took the run over."""
        with transaction.atomic():
            for step, values in sorted(self.pending.items()):
                metric, _ = TrainingMetric.objects.get_or_create(run_id=self.run_id, step=step)
                extra = dict(metric.extra)
                for key, value in values.items():
                    if key in METRIC_COLUMNS:
                        setattr(metric, key, value)
                    else:
                        extra[key] = value
                metric.extra = extra
                metric.save()
            runs.progress(
                self.run,
                step=self.step,
                max_steps=self.max_steps,
                log_tail="\n".join(self.lines),
                last_checkpoint=self.checkpoint or "",
                **fields,
            )
        self.pending.clear()
        self.flushed = time.monotonic()


def _prepare_process() -> None:
    if settings.TORCH_CPU_THREADS:
        import torch  # heavy ML import: only in the training process

        torch.set_num_threads(settings.TORCH_CPU_THREADS)
    # A generation run may have left a model loaded in this worker: free the memory
    # before loading two copies (policy + reference) for training.
    runner.release_backends()


def _distributed() -> PartialState | None:
    """accelerate's process state when launched with several processes, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch  # heavy ML imports: only under a multi-process launch
    from accelerate import PartialState

    # The first PartialState wins (it is shared): on a machine without CUDA, ask for
    # gloo here, or the Trainer's own would train each process alone.
    return PartialState(cpu=not torch.cuda.is_available())


def train(run_id: int, *, worker: str | None = None) -> TrainingRun | None:
    """Claim and train a run to the end (runs.execute). None if it is not claimable here,
    or on a non-main rank of a distributed launch (which trains alongside, writing nothing)."""
    state = _distributed()
    if state is not None and not state.is_main_process:
        if _broadcast_claimed(False):  # the main rank says whether it claimed the run
            _follow(TrainingRun.objects.get(id=run_id))
        return None
    announced: list[bool] = []
    results: dict[str, Any] = {}  # the core's TrainResult, for the outcome whatever it is

    def body(run: TrainingRun) -> dict:
        if state is not None and not announced:
            announced.append(_broadcast_claimed(True))
        result = results["result"] = _train_claimed(run, state)
        if result.status == "cancelled":
            raise runs.RunCancelled  # the lifecycle writes cancelled, with the result's fields
        return {}

    run = runs.execute(
        TrainingRun, run_id, body, worker=worker, select_related=("base_version",),
        final=lambda run, status: _result_fields(results.get("result")),
        # A database error retried here would restart the main rank alone: distributed runs fail instead.
        retries=0 if state is not None else None,
    )  # fmt: skip
    if state is not None and not announced:
        _broadcast_claimed(False)  # not claimed: release the other ranks
    if run is None:
        return None
    run.refresh_from_db()
    return run


def _broadcast_claimed(claimed: bool) -> bool:
    from accelerate.utils import broadcast_object_list  # heavy ML import, only when distributed

    flag = [claimed]
    broadcast_object_list(flag)
    return bool(flag[0])


def _train_claimed(run: TrainingRun, state: Any) -> Any:
    """The body: train, then register the model; returns the core's TrainResult. After a
    cancel (the core stopped at a step and saved) RunCancelled is raised from
    `train`'s body; a failure is noted in the log tail and re-raised."""
    run.refresh_from_db(
        fields=["log_tail", "step", "max_steps", "last_checkpoint"]
    )  # a retry resumes the tail
    sink = RowSink(run, honour_cancel=state is None)
    sink.note(f"claimed by {run.worker}" + (f" ({state.num_processes} processes)" if state else ""))
    try:
        _prepare_process()
        result = _train(run, sink)
    except runs.TRANSIENT_ERRORS:
        raise  # the lifecycle retries on a new connection: nothing can be noted now
    except runs.LeaseLost:
        raise
    except Exception as exc:
        sink.note(f"failed: {type(exc).__name__}: {str(exc).strip()[:200]}")
        sink.flush()
        raise
    sink.flush()
    if result.status != "cancelled":
        run.refresh_from_db()
        version = register_trained_model(run, result)
        sink.note(f"succeeded: registered {version.name} ({result.tokens_per_second:.0f} tokens/s)")
        sink.flush()
    else:
        sink.note(f"cancelled at step {result.global_step}")
        sink.flush()
    return result


def _train(run: TrainingRun, sink: RowSink | None) -> TrainResult:
    t0 = time.perf_counter()
    _ensure_snapshot(run, sink)
    data = build_training_data(run)
    config = train_config(run)
    if sink is not None:
        sink.note(
            f"data: {data.counts.get('train')} train / {data.counts.get('val')} validation rows "
            f"in {time.perf_counter() - t0:.1f} s"
            + (f" (snapshot rows sha256 {data.snapshot_sha256[:12]}…)" if data.snapshot_sha256 else "")
        )
        runs.progress(
            run,
            data_counts=data.counts,
            data_manifest=data.manifest,
            template=data.template,
            snapshot_sha256=data.snapshot_sha256,
            snapshot_rows=data.snapshot_rows,
        )
        resume = last_complete_checkpoint(config.output_dir, remove_incomplete=False)
        if resume is not None:
            sink.note(f"resuming from {resume.name}")
        sink.flush()
    if run.kind == TrainingRun.Kind.SFT:
        return run_sft(config, data.train, data.val, callbacks=sink)
    # R-PRM: the frozen reference is the SFT model itself, i.e. the base (no separate path).
    return run_dpo(config, data.train, data.val, callbacks=sink)


def _ensure_snapshot(run: TrainingRun, sink: RowSink | None) -> None:
    """A snapshot taken at launch is written here, before the data is read (main process);
    other ranks wait for it."""
    if run.snapshot_id is None:
        return
    job = ExportJob.objects.get(id=run.snapshot_id)
    if job.status == ExportJob.Status.SUCCEEDED:
        return
    if sink is None:
        _wait_for_snapshot(job.id)
        return
    sink.note(f"taking snapshot {job.uuid}")
    sink.flush()
    job = run_export_job(job.id) or job
    job.refresh_from_db()
    if job.status != ExportJob.Status.SUCCEEDED:
        raise RuntimeError(f"snapshot {job.uuid} {job.status}: {job.error or 'held by another worker'}")


def _wait_for_snapshot(job_id: int, timeout_s: float = 3600) -> None:
    deadline = time.monotonic() + timeout_s
    while not ExportJob.objects.filter(id=job_id, status=ExportJob.Status.SUCCEEDED).exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"snapshot {job_id} not written after {timeout_s:.0f} s")
        time.sleep(2)


def _follow(run: TrainingRun) -> None:
    """A non-main rank: same data, same config, no writes."""
    _prepare_process()
    _train(run, None)


def _result_fields(result: Any) -> dict:
    """What the core's result adds to the outcome (succeeded or cancelled; none on failure)."""
    if result is None:
        return {}
    fields: dict = {
        "result": json_safe({k: v for k, v in result.to_dict().items() if k != "metrics"}),
        "tokens_per_second": _finite(result.tokens_per_second) or None,
    }
    if result.max_steps:
        fields.update(step=result.global_step, max_steps=result.max_steps)
    return fields


def recover_interrupted_runs(worker: str) -> list[int]:
    """Re-queue the training runs this worker name held when it died."""
    return [
        run_id for model, run_id in runs.resume(worker, {"gpu"}, stale_too=False) if model == "TrainingRun"
    ]


@shared_task(acks_late=True, ignore_result=True)
def export_task(job_id: int) -> None:
    """Write the files of a queued ExportJob (progress and manifest on the row)."""
    run_export_job(job_id)


runs.register(TrainingRun, run_training)
runs.register(ExportJob, export_task, queue="default")
