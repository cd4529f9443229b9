"""SFT and DPO runs with TRL, resumable, cancellable and honest about throughput.

A run writes its checkpoints to ``output_dir/checkpoint-N`` and, when it finishes,
the model and tokenizer to ``output_dir/final`` (written to ``final.partial`` and
renamed, with ``rprm_training.json`` inside, so ``final`` exists only when
complete). Running the same config again resumes from the newest complete
checkpoint, or returns the stored result when ``final`` already exists: a killed
or re-delivered worker loses at most ``save_steps`` of work and never trains twice.

With a validation set the run evaluates every ``eval_steps`` and ends on the
checkpoint with the lowest validation loss (``load_best_model_at_end``).
Sequence length comes from the data (:func:`~training.core.data.length_stats`):
TRL's default of 1024 tokens would cut R-PRM critiques, verdict line included.

Throughput counts the non-padding tokens (prompt + completion; chosen + rejected
for DPO) that went through forward and backward in this session, divided by the
training-loop time without evaluation and checkpoint saving (reported apart).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from .data import (
    DPOExample,
    SFTExample,
    TruncationError,
    choose_max_length,
    length_stats,
    summarize_lengths,
    to_rows,
)

Kind = Literal["sft", "dpo"]
DEFAULT_LEARNING_RATE: dict[str, float] = {"sft": 5e-6, "dpo": 5e-7}
# Per-device micro-batch when none is given: DPO holds chosen + rejected per row.
DEFAULT_PER_DEVICE_BATCH: dict[str, int] = {"sft": 4, "dpo": 2}
FINAL_DIR = "final"
RESULT_FILE = "rprm_training.json"
_CHECKPOINT_PREFIX = "checkpoint-"


class ProgressSink(Protocol):
    """What a run reports to, e.g. a Django run row. Plain Python, no Django.

    ``should_stop`` is polled after every optimizer step (and at most every few
    seconds between micro-batches); keep it cheap.
    """

    def on_log(self, step: int, max_steps: int, metrics: dict[str, float]) -> None: ...

    def should_stop(self) -> bool: ...

    def on_checkpoint(self, path: str) -> None: ...


class NullSink:
    def on_log(self, step: int, max_steps: int, metrics: dict[str, float]) -> None:
        pass

    def should_stop(self) -> bool:
        return False

    def on_checkpoint(self, path: str) -> None:
        pass


# Experiment trackers a run may report to: local files only (nothing leaves the machine).
REPORT_TO = ("tensorboard", "none")
TENSORBOARD_DIR = "runs"  # transformers' default logging folder inside output_dir


@dataclass
class TrainConfig:
    kind: Kind
    base_model: str | Path
    output_dir: str | Path
    learning_rate: float | None = None  # None: 5e-6 for SFT, 5e-7 for DPO (R-PRM)
    effective_batch_size: int = 128  # per_device x gradient_accumulation x world size
    per_device_batch_size: int | None = None  # None: largest divisor <= 4 (SFT) / 2 (DPO)
    num_epochs: float = 1.0
    warmup_ratio: float = 0.03
    lr_scheduler_type: str = "cosine"
    max_length: int | None = None  # None: the longest sequence in the data, rounded up to 64
    allow_truncation: bool = False  # with max_length below the data: warn instead of raising
    beta: float = 0.1  # DPO
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: str | list[str] = "all-linear"
    bf16: bool | None = None  # None: on where the GPU supports it
    dtype: str = "float32"  # weights as loaded; bf16=True adds autocast on top
    gradient_checkpointing: bool = True
    eval_steps: int | None = None  # None: about 10 evaluations per run
    save_steps: int | None = None  # None: = eval_steps with validation, else about 10 saves
    save_total_limit: int | None = 2  # the best checkpoint is always kept on top
    logging_steps: int = 10
    max_steps: int | None = None  # overrides num_epochs (tests, smoke runs)
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    resume: bool = True
    # Where the Trainer's logs also go: "tensorboard" writes event files under
    # output_dir/runs/ (TENSORBOARD_DIR), beside the checkpoints; "none" turns it off.
    report_to: str = "tensorboard"

    def __post_init__(self) -> None:
        if self.kind not in ("sft", "dpo"):
            raise ValueError(f"kind must be 'sft' or 'dpo', got {self.kind!r}")
        if self.report_to not in REPORT_TO:
            raise ValueError(f"report_to must be one of {', '.join(REPORT_TO)}, got {self.report_to!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError("warmup_ratio must be in [0, 1)")
        if self.effective_batch_size < 1:
            raise ValueError("effective_batch_size must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be >= 1 or None")

    @property
    def resolved_learning_rate(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATE[self.kind]

    def batch_plan(self, world_size: int = 1) -> tuple[int, int]:
        """(per-device batch, gradient accumulation) giving exactly ``effective_batch_size``."""
        if self.effective_batch_size % world_size:
            raise ValueError(
                f"effective_batch_size {self.effective_batch_size} is not divisible by {world_size} devices"
            )
        per_rank = self.effective_batch_size // world_size
        per_device = self.per_device_batch_size
        if per_device is None:
            limit = DEFAULT_PER_DEVICE_BATCH[self.kind]
            per_device = max(d for d in range(1, min(limit, per_rank) + 1) if per_rank % d == 0)
        if per_rank % per_device:
            raise ValueError(
                f"effective_batch_size {self.effective_batch_size} is not a multiple of "
                f"per_device_batch_size {per_device} x {world_size} devices"
            )
        return per_device, per_rank // per_device

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["base_model"], d["output_dir"] = str(self.base_model), str(self.output_dir)
        return d


@dataclass
class TrainResult:
    status: Literal["succeeded", "cancelled"]
    kind: str
    output_dir: str
    final_path: str | None
    global_step: int
    max_steps: int
    start_step: int  # global step the session started at (> 0 when resumed)
    resumed_from: str | None
    metrics: list[dict[str, Any]]  # every log, train and eval, each with its "step"
    best_metric: float | None  # lowest eval_loss, with validation
    best_checkpoint: str | None
    train_loss: float | None  # mean over this session's steps
    train_tokens: int  # non-padding tokens through forward + backward, this session
    train_seconds: float  # training loop without evaluation and checkpoint saving
    eval_seconds: float
    save_seconds: float
    tokens_per_second: float
    wall_seconds: float
    max_length: int
    lengths: dict[str, Any]
    batch: dict[str, int]
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainResult:
        return cls(**data)


# --- checkpoints ----------------------------------------------------------------------


def _checkpoint_step(path: Path) -> int | None:
    suffix = path.name[len(_CHECKPOINT_PREFIX) :]
    return int(suffix) if path.name.startswith(_CHECKPOINT_PREFIX) and suffix.isdigit() else None


def last_complete_checkpoint(output_dir: str | Path, remove_incomplete: bool = True) -> Path | None:
    """Newest ``checkpoint-N`` whose trainer state was written.

    The Trainer writes ``trainer_state.json`` last, so a checkpoint without a
    readable one was cut short by a kill; newer incomplete ones are removed so the
    Trainer's own rotation never mistakes them for real checkpoints.
    """
    out = Path(output_dir)
    if not out.is_dir():
        return None
    found = sorted(
        ((step, p) for p in out.iterdir() if p.is_dir() and (step := _checkpoint_step(p)) is not None),
        reverse=True,
    )
    for _step, path in found:
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            if remove_incomplete:
                shutil.rmtree(path, ignore_errors=True)
            continue
        return path
    return None


# --- callback ---------------------------------------------------------------------------


def _make_callback(sink: ProgressSink, substep_poll_s: float = 5.0) -> Any:
    from transformers import TrainerCallback

    class SinkCallback(TrainerCallback):
        """Forwards logs and checkpoints to the sink, stops when asked, times the loop.

        Time between two optimizer steps counts as training unless it was spent
        evaluating or saving; anything after the last step (final evaluation,
        loading the best checkpoint) is left out.
        """

        def __init__(self) -> None:
            self.history: list[dict[str, Any]] = []
            self.cancelled = False
            self.mark = self.last_poll = 0.0
            self.loop_seconds = self.eval_seconds = self.save_seconds = 0.0
            self.start_step = 0
            self.start_tokens = 0

        def _lap(self) -> float:
            now = time.perf_counter()
            elapsed, self.mark = now - self.mark, now
            return elapsed

        def _poll(self, control: Any) -> None:
            self.last_poll = time.perf_counter()
            if not self.cancelled and sink.should_stop():
                self.cancelled = True
            if self.cancelled:
                control.should_training_stop = True

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.mark = self.last_poll = time.perf_counter()
            self.start_step = state.global_step
            self.start_tokens = state.num_input_tokens_seen

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.loop_seconds += self._lap()
            self._poll(control)

        def on_substep_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if time.perf_counter() - self.last_poll >= substep_poll_s:
                self._poll(control)

        def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.eval_seconds += self._lap()

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.save_seconds += self._lap()
            sink.on_checkpoint(str(Path(args.output_dir) / f"{_CHECKPOINT_PREFIX}{state.global_step}"))

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
        ) -> None:
            metrics = dict(logs or {})
            self.history.append({**metrics, "step": state.global_step})
            sink.on_log(state.global_step, state.max_steps, metrics)

    return SinkCallback()


# --- building the trainers -------------------------------------------------------------------


@dataclass
class PreparedRun:
    """A TRL trainer ready to train, and what went into it."""

    trainer: Any
    config: TrainConfig
    tokenizer: Any
    callback: Any
    max_length: int
    lengths: dict[str, Any]
    per_device_batch_size: int
    gradient_accumulation_steps: int
    world_size: int
    planned_steps: int


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _resolve_bf16(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def _quiet(trainer: Any) -> Any:
    # disable_tqdm makes the Trainer print every log dict; the sink gets them instead.
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


def _resolve_max_length(config: TrainConfig, stats: Mapping[str, Any]) -> int:
    if config.max_length is None:
        return choose_max_length(stats)
    # An explicit length is used as given, but never truncates silently.
    choose_max_length(stats, cap=config.max_length, allow_truncation=config.allow_truncation)
    return config.max_length


def _planned_steps(config: TrainConfig, n_train: int, per_device: int, accumulation: int, world: int) -> int:
    if config.max_steps is not None:
        return config.max_steps
    batches = math.ceil(n_train / (per_device * world))
    return max(1, math.ceil(math.ceil(batches / accumulation) * config.num_epochs))


def _trl_args(
    config: TrainConfig,
    cls: Any,
    *,
    has_val: bool,
    max_length: int,
    plan: tuple[int, int],
    steps: int,
    **extra: Any,
) -> Any:
    per_device, accumulation = plan
    every = max(1, steps // 10)
    eval_steps = config.eval_steps or every
    save_steps = config.save_steps or (eval_steps if has_val else every)
    if has_val and save_steps % eval_steps:
        raise ValueError(
            f"save_steps ({save_steps}) must be a multiple of eval_steps ({eval_steps}) to keep the best checkpoint"
        )
    return cls(
        output_dir=str(config.output_dir),
        learning_rate=config.resolved_learning_rate,
        per_device_train_batch_size=per_device,
        per_device_eval_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        num_train_epochs=config.num_epochs,
        max_steps=config.max_steps or -1,
        # transformers 5 reads a warmup_steps below 1 as a ratio of the total steps.
        warmup_steps=config.warmup_ratio,
        lr_scheduler_type=config.lr_scheduler_type,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=config.save_total_limit,
        eval_strategy="steps" if has_val else "no",
        eval_steps=eval_steps if has_val else None,
        load_best_model_at_end=has_val,
        metric_for_best_model="eval_loss" if has_val else None,
        greater_is_better=False if has_val else None,
        bf16=_resolve_bf16(config.bf16),
        # transformers 5 renamed gradient_checkpointing; TRL's default for the old name is True.
        activation_checkpointing=config.gradient_checkpointing,
        seed=config.seed,
        data_seed=config.seed,
        max_length=max_length,
        model_init_kwargs={"dtype": config.dtype},
        include_num_input_tokens_seen="non_padding",
        # transformers' TensorBoardCallback writes to output_dir/runs/<time>_<host>.
        report_to=config.report_to,
        disable_tqdm=True,
        dataloader_pin_memory=_cuda_available(),
        **extra,
    )


def _peft_config(config: TrainConfig) -> Any:
    if not config.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
        task_type="CAUSAL_LM",
    )


def _dataset(rows: list[dict[str, Any]]) -> Any:
    from datasets import Dataset

    return Dataset.from_list(rows)


@dataclass(frozen=True)
class TrainingInputs:
    """What both trainers are built from: the rows, the tokenizer and the batch plan."""

    train: list[dict[str, Any]]
    val: list[dict[str, Any]]
    tokenizer: Any
    lengths: dict[str, Any]
    max_length: int
    world_size: int
    plan: tuple[int, int]  # (per-device batch size, gradient accumulation steps)
    planned_steps: int

    def prepared(self, trainer: Any, config: TrainConfig, callback: Any) -> PreparedRun:
        return PreparedRun(
            trainer=trainer,
            config=config,
            tokenizer=self.tokenizer,
            callback=callback,
            max_length=self.max_length,
            lengths=self.lengths,
            per_device_batch_size=self.plan[0],
            gradient_accumulation_steps=self.plan[1],
            world_size=self.world_size,
            planned_steps=self.planned_steps,
        )


def _prepare_common(
    config: TrainConfig, kind: Kind, train_rows: Iterable[Any], val_rows: Iterable[Any] | None
) -> TrainingInputs:
    if config.kind != kind:
        raise ValueError(f"this is a {kind} run but config.kind is {config.kind!r}")
    from transformers import AutoTokenizer

    train = to_rows(train_rows)
    val = to_rows(val_rows or [])
    if not train:
        raise ValueError("no training rows")
    tokenizer = AutoTokenizer.from_pretrained(str(config.base_model))
    stats = length_stats(tokenizer, train + val)
    max_length = _resolve_max_length(config, stats)
    world = _world_size()
    plan = config.batch_plan(world)
    steps = _planned_steps(config, len(train), *plan, world)
    return TrainingInputs(train, val, tokenizer, stats, max_length, world, plan, steps)


def build_sft_trainer(
    config: TrainConfig,
    train_rows: Iterable[SFTExample | Mapping[str, Any]],
    val_rows: Iterable[SFTExample | Mapping[str, Any]] | None = None,
    callbacks: ProgressSink | None = None,
) -> PreparedRun:
    """SFTTrainer with the loss on the critique only (``completion_only_loss``)."""
    from trl import SFTConfig, SFTTrainer

    inputs = _prepare_common(config, "sft", train_rows, val_rows)
    args = _trl_args(
        config,
        SFTConfig,
        has_val=bool(inputs.val),
        max_length=inputs.max_length,
        plan=inputs.plan,
        steps=inputs.planned_steps,
        completion_only_loss=True,
    )
    callback = _make_callback(callbacks or NullSink())
    trainer = SFTTrainer(
        model=str(config.base_model),
        args=args,
        train_dataset=_dataset(inputs.train),
        eval_dataset=_dataset(inputs.val) if inputs.val else None,
        processing_class=inputs.tokenizer,
        peft_config=_peft_config(config),
        callbacks=[callback],
    )
    _quiet(trainer)
    return inputs.prepared(trainer, config, callback)


def build_dpo_trainer(
    config: TrainConfig,
    train_pairs: Iterable[DPOExample | Mapping[str, Any]],
    val_pairs: Iterable[DPOExample | Mapping[str, Any]] | None = None,
    ref_model_path: str | Path | None = None,
    callbacks: ProgressSink | None = None,
) -> PreparedRun:
    """DPOTrainer against a frozen reference: ``ref_model_path``, or the base model itself.

    R-PRM runs DPO from the SFT model with that same model as the reference, which
    is what ``base_model=<sft final>`` and no ``ref_model_path`` gives. With LoRA
    and no other reference, the reference is the base with adapters disabled.
    """
    from trl import DPOConfig, DPOTrainer

    inputs = _prepare_common(config, "dpo", train_pairs, val_pairs)
    args = _trl_args(
        config,
        DPOConfig,
        has_val=bool(inputs.val),
        max_length=inputs.max_length,
        plan=inputs.plan,
        steps=inputs.planned_steps,
        beta=config.beta,
    )
    ref_model = None
    if ref_model_path is not None and not (
        config.lora and Path(ref_model_path).resolve() == Path(config.base_model).resolve()
    ):
        from transformers import AutoModelForCausalLM

        ref_model = AutoModelForCausalLM.from_pretrained(
            str(ref_model_path), dtype=_torch_dtype(config.dtype)
        )
    callback = _make_callback(callbacks or NullSink())
    trainer = DPOTrainer(
        model=str(config.base_model),
        ref_model=ref_model,
        args=args,
        train_dataset=_dataset(inputs.train),
        eval_dataset=_dataset(inputs.val) if inputs.val else None,
        processing_class=inputs.tokenizer,
        peft_config=_peft_config(config),
        callbacks=[callback],
    )
    _quiet(trainer)
    return inputs.prepared(trainer, config, callback)


def _torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, name) if name != "auto" else "auto"


# --- running ------------------------------------------------------------------------------


def _stored_result(config: TrainConfig) -> TrainResult | None:
    marker = Path(config.output_dir) / FINAL_DIR / RESULT_FILE
    if not marker.is_file():
        return None
    return TrainResult.from_dict(json.loads(marker.read_text()))


def _check_fresh_start(config: TrainConfig) -> None:
    out = Path(config.output_dir)
    if config.resume or not out.is_dir():
        return
    if (out / FINAL_DIR).exists() or any(_checkpoint_step(p) is not None for p in out.iterdir()):
        raise ValueError(
            f"{out} already holds checkpoints or a final model; use resume=True or an empty output_dir"
        )


def _save_final(prepared: PreparedRun, result: TrainResult) -> Path:
    out = Path(prepared.config.output_dir)
    final, partial = out / FINAL_DIR, out / f"{FINAL_DIR}.partial"
    trainer = prepared.trainer
    main = trainer.args.should_save  # only the main process writes files
    if main:
        shutil.rmtree(partial, ignore_errors=True)
    if prepared.config.lora:
        # A plain model directory, loadable like any other by the inference side.
        merged = trainer.model.merge_and_unload()
        if main:
            merged.save_pretrained(partial)
    else:
        trainer.save_model(str(partial))  # every process: sharded setups gather here
    result.final_path = str(final)
    if main:
        prepared.tokenizer.save_pretrained(partial)
        (partial / RESULT_FILE).write_text(json.dumps(result.to_dict(), indent=1, default=str))
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
    trainer.accelerator.wait_for_everyone()
    return final


def _cancelled_early(config: TrainConfig, wall_start: float) -> TrainResult:
    return TrainResult(
        status="cancelled", kind=config.kind, output_dir=str(config.output_dir), final_path=None, global_step=0,
        max_steps=0, start_step=0, resumed_from=None, metrics=[], best_metric=None, best_checkpoint=None,
        train_loss=None, train_tokens=0, train_seconds=0.0, eval_seconds=0.0, save_seconds=0.0,
        tokens_per_second=0.0, wall_seconds=time.perf_counter() - wall_start, max_length=0, lengths={},
        batch={}, config=config.to_dict(),
    )  # fmt: skip


def train_prepared(prepared: PreparedRun, wall_start: float | None = None) -> TrainResult:
    """Train a :class:`PreparedRun` (resuming from its newest complete checkpoint) and save ``final``."""
    wall_start = time.perf_counter() if wall_start is None else wall_start
    config, trainer, cb = prepared.config, prepared.trainer, prepared.callback
    resume_from = None
    if config.resume:
        resume_from = last_complete_checkpoint(config.output_dir, remove_incomplete=trainer.args.should_save)
    output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    state = trainer.state
    tokens = int(state.num_input_tokens_seen - cb.start_tokens)
    seconds = cb.loop_seconds
    result = TrainResult(
        status="cancelled" if cb.cancelled else "succeeded",
        kind=config.kind,
        output_dir=str(config.output_dir),
        final_path=None,
        global_step=state.global_step,
        max_steps=state.max_steps,
        start_step=cb.start_step,
        resumed_from=str(resume_from) if resume_from else None,
        metrics=cb.history,
        best_metric=state.best_metric,
        best_checkpoint=state.best_model_checkpoint,
        train_loss=output.training_loss if state.global_step > cb.start_step else None,
        train_tokens=tokens,
        train_seconds=seconds,
        eval_seconds=cb.eval_seconds,
        save_seconds=cb.save_seconds,
        tokens_per_second=tokens / seconds if seconds > 0 else 0.0,
        wall_seconds=time.perf_counter() - wall_start,  # the stored copy: up to saving final
        max_length=prepared.max_length,
        lengths=summarize_lengths(prepared.lengths),
        batch={
            "effective": config.effective_batch_size,
            "per_device": prepared.per_device_batch_size,
            "gradient_accumulation": prepared.gradient_accumulation_steps,
            "world_size": prepared.world_size,
        },
        config=config.to_dict(),
    )
    if not cb.cancelled:
        _save_final(prepared, result)
    result.wall_seconds = time.perf_counter() - wall_start
    return result


def _run(
    config: TrainConfig, callbacks: ProgressSink | None, build: Callable[[], PreparedRun]
) -> TrainResult:
    """A stored result when resuming a finished run; else a fresh start, unless cancelled first."""
    wall_start = time.perf_counter()
    if config.resume and (done := _stored_result(config)) is not None:
        return done
    _check_fresh_start(config)
    if callbacks is not None and callbacks.should_stop():
        return _cancelled_early(config, wall_start)
    return train_prepared(build(), wall_start)


def run_sft(
    config: TrainConfig,
    train_rows: Sequence[SFTExample | Mapping[str, Any]],
    val_rows: Sequence[SFTExample | Mapping[str, Any]] | None = None,
    callbacks: ProgressSink | None = None,
) -> TrainResult:
    """Supervised fine-tuning on kept critiques; see the module docstring for resume and outputs."""
    return _run(config, callbacks, lambda: build_sft_trainer(config, train_rows, val_rows, callbacks))


def run_dpo(
    config: TrainConfig,
    train_pairs: Sequence[DPOExample | Mapping[str, Any]],
    val_pairs: Sequence[DPOExample | Mapping[str, Any]] | None = None,
    ref_model_path: str | Path | None = None,
    callbacks: ProgressSink | None = None,
) -> TrainResult:
    """DPO on preference pairs against a frozen reference (default: ``config.base_model``, the SFT model)."""
    return _run(
        config,
        callbacks,
        lambda: build_dpo_trainer(config, train_pairs, val_pairs, ref_model_path, callbacks),
    )


__all__ = [
    "DEFAULT_LEARNING_RATE",
    "FINAL_DIR",
    "NullSink",
    "PreparedRun",
    "ProgressSink",
    "RESULT_FILE",
    "TrainConfig",
    "TrainResult",
    "TruncationError",
    "build_dpo_trainer",
    "build_sft_trainer",
    "last_complete_checkpoint",
    "run_dpo",
    "run_sft",
    "train_prepared",
]
