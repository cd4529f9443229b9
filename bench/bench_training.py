"""Training throughput: our SFT runner against a plain TRL SFTTrainer script.

Both train the same random Qwen2 model (the tiny model's tokenizer; size set by
flags) on the same R-PRM-shaped rows, with the same batch, length, schedule and a
checkpoint at the end. Runs alternate (ours first on even repeats, plain first on
odd) and each builds its trainer from scratch. The steps cover whole epochs, so
both train on exactly the same tokens: ``epochs x sum(row lengths)``, non-padding.

Four figures per side, in tokens per second:
- ``train``: tokens / wall time of ``trainer.train()`` (our callback, token
  counting and progress reporting included);
- ``step``: tokens / (steps x median optimizer-step time), timed by the same
  callback on both sides (the median ignores a step slowed by something else);
- ``cpu``: tokens / process CPU time of ``train()`` (all threads): what the
  work costs, whatever else the machine runs; meaningful on CPU only;
- ``e2e``: tokens / wall time from nothing to the saved final model (ours: the
  whole ``run_sft`` call, which also measures the data's lengths and writes its
  result).

The last line printed is one JSON object with the medians and the ratios
(ours / plain; overhead = 1 - ratio). Target: overhead under 5 % on the headline
figure, ``train`` on a GPU and ``cpu`` on a CPU.

    .venv/bin/python bench/bench_training.py --hidden 256 --layers 4 --repeats 5 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from inference.core.prompts import DEFAULT_TEMPLATE  # noqa: E402
from inference.core.verdict import VERDICT_NO_LINE, VERDICT_YES_LINE  # noqa: E402
from training.core.data import SFTExample, choose_max_length, length_stats, to_rows  # noqa: E402
from training.core.runner import TrainConfig, run_sft  # noqa: E402

TARGET_OVERHEAD_PCT = 5.0


def build_model(out: Path, hidden: int | None, layers: int | None, heads: int, seed: int) -> Path:
    """The tiny model, or a random Qwen2 of the given size with the tiny model's tokenizer."""
    from inference.core.tiny_model import build_tiny_model

    tiny = build_tiny_model(out / "tiny", seed=seed)
    if hidden is None and layers is None:
        return tiny
    import torch
    from transformers import AutoConfig, AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    base = AutoConfig.from_pretrained(tiny)
    hidden = hidden or base.hidden_size
    config = Qwen2Config(
        vocab_size=base.vocab_size,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers or base.num_hidden_layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=base.max_position_embeddings,
        tie_word_embeddings=True,
        eos_token_id=base.eos_token_id,
        pad_token_id=base.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    path = out / f"qwen2-h{config.hidden_size}-l{config.num_hidden_layers}"
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(path)
    return path


def make_rows(n: int, words: int, seed: int) -> list[SFTExample]:
    import random

    rng = random.Random(seed)
    vocab = "the step adds both sides so the value is correct because we check each number again".split()
    rows = []
    for i in range(n):
        analysis = " ".join(rng.choice(vocab) for _ in range(rng.randint(words // 2, words)))
        verdict = VERDICT_YES_LINE if i % 2 else VERDICT_NO_LINE
        critique = (
            f"Previous Steps Analysis: {analysis}.\nNow Step Analysis: {analysis}.\n"
            f"Calculation Analysis: {i} + 2 = {i + 2}.\nConclusion: checked.\n{verdict}"
        )
        rows.append(
            SFTExample.from_template(
                DEFAULT_TEMPLATE, f"What is {i} + 2?", [f"We add {i} and 2."], f"So it is {i + 2}.", critique
            )
        )
    return rows


def config_for(args, model: Path, out: Path) -> TrainConfig:
    return TrainConfig(
        kind="sft",
        base_model=model,
        output_dir=out,
        learning_rate=1e-4,
        effective_batch_size=args.per_device * args.grad_accum,
        per_device_batch_size=args.per_device,
        max_steps=args.steps,
        logging_steps=10,
        save_steps=args.steps,
        bf16=args.bf16,
        gradient_checkpointing=args.gradient_checkpointing,
        seed=args.seed,
    )


def step_timer():
    """Times each optimizer step (on_step_begin -> on_step_end); added last to both sides.

    Being last, its on_step_end runs after the runner's own callback, so the
    runner's per-step work (cancellation poll) is inside the timed step; so is
    token counting, which the Trainer does before the optimizer step.
    """
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.steps: list[float] = []
            self.t = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.steps.append(time.perf_counter() - self.t)

    return StepTimer()


def run_ours(args, model: Path, rows, out: Path) -> dict:
    """run_sft, with train() and its steps timed from outside."""
    from trl import SFTTrainer

    train, timed = SFTTrainer.train, {}

    def timed_train(self, *a, **kw):
        timed["timer"] = timer = step_timer()
        self.add_callback(timer)
        t, c = time.perf_counter(), time.process_time()
        try:
            return train(self, *a, **kw)
        finally:
            timed["train_s"], timed["cpu_s"] = time.perf_counter() - t, time.process_time() - c

    SFTTrainer.train = timed_train  # nothing else in run_sft changes
    try:
        start = time.perf_counter()
        result = run_sft(config_for(args, model, out), rows)
        e2e = time.perf_counter() - start
    finally:
        SFTTrainer.train = train
    return {
        "train_s": timed["train_s"],
        "cpu_s": timed["cpu_s"],
        "e2e_s": e2e,
        "steps": timed["timer"].steps,
        "counted": result.train_tokens,
    }


def run_plain(args, model: Path, rows, out: Path, max_length: int) -> dict:
    """What a hand-written TRL script does with the same settings."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model)
    cfg = SFTConfig(
        output_dir=str(out),
        learning_rate=1e-4,
        per_device_train_batch_size=args.per_device,
        gradient_accumulation_steps=args.grad_accum,
        max_steps=args.steps,
        warmup_steps=0.03,
        lr_scheduler_type="cosine",
        logging_steps=10,
        save_strategy="steps",
        save_steps=args.steps,
        bf16=args.bf16,
        activation_checkpointing=args.gradient_checkpointing,
        max_length=max_length,
        completion_only_loss=True,
        seed=args.seed,
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    trainer = SFTTrainer(
        model=str(model), args=cfg, train_dataset=Dataset.from_list(to_rows(rows)), processing_class=tokenizer
    )
    trainer.remove_callback(PrinterCallback)  # disable_tqdm prints every log; the runner drops it too
    timer = step_timer()
    trainer.add_callback(timer)
    t, c = time.perf_counter(), time.process_time()
    trainer.train()
    train_s, cpu_s = time.perf_counter() - t, time.process_time() - c
    trainer.save_model(str(out / "final"))
    tokenizer.save_pretrained(out / "final")
    return {"train_s": train_s, "cpu_s": cpu_s, "e2e_s": time.perf_counter() - start, "steps": timer.steps}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, help="hidden size of a random Qwen2 (default: the tiny model, 64)")
    p.add_argument("--layers", type=int, help="layers of that model (default: 2)")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--rows", type=int, default=16)
    p.add_argument("--words", type=int, default=120, help="analysis words per critique section (length)")
    p.add_argument("--per-device", type=int, default=4)
    p.add_argument("--grad-accum", type=int, default=2)
    p.add_argument("--epochs", type=int, default=4, help="whole epochs, so both sides see the same tokens")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads (fewer is steadier on a busy machine)")
    p.add_argument("--work-dir", type=Path, help="default: a temporary directory, removed afterwards")
    p.add_argument("--smoke", action="store_true", help="seconds: 4 short rows, 1 epoch, 1 repeat (tests)")
    args = p.parse_args()
    if args.smoke:
        args.rows, args.words, args.per_device, args.grad_accum, args.epochs, args.repeats = 4, 8, 2, 2, 1, 1
    batch = args.per_device * args.grad_accum
    if args.rows % batch:
        p.error(f"--rows must be a multiple of per-device x grad-accum = {batch}")
    args.steps = args.epochs * args.rows // batch

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-training-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        import datasets

        datasets.disable_progress_bars()

        model = build_model(work, args.hidden, args.layers, args.heads, args.seed)
        rows = make_rows(args.rows, args.words, args.seed)
        stats = length_stats(AutoTokenizer.from_pretrained(model), rows)
        tokens = args.epochs * sum(stats["lengths"])
        max_length = choose_max_length(stats)  # what the runner picks from the same data

        # Warm-up: imports, kernels, allocator.
        run_plain(args, model, rows[:batch], work / "warm", max_length)
        shutil.rmtree(work / "warm", ignore_errors=True)

        sides = ("ours", "plain")
        figures: dict[str, dict[str, list[float]]] = {
            k: {side: [] for side in sides} for k in ("train", "step", "cpu", "e2e")
        }
        for rep in range(args.repeats):
            for side in sides if rep % 2 == 0 else sides[::-1]:
                out = work / f"{side}-{rep}"
                if side == "ours":
                    run = run_ours(args, model, rows, out)
                    if run["counted"] != tokens:
                        raise SystemExit(f"runner counted {run['counted']} tokens, expected {tokens}")
                else:
                    run = run_plain(args, model, rows, out, max_length)
                shutil.rmtree(out, ignore_errors=True)
                figures["train"][side].append(tokens / run["train_s"])
                figures["e2e"][side].append(tokens / run["e2e_s"])
                figures["cpu"][side].append(tokens / run["cpu_s"])
                # Median step time: robust to other processes stealing the CPU now and then.
                figures["step"][side].append(tokens / (args.steps * statistics.median(run["steps"])))
                print(
                    f"repeat {rep} {side:5s}: train() {figures['train'][side][-1]:9.0f} tok/s, "
                    f"median step {figures['step'][side][-1]:9.0f} tok/s, "
                    f"per CPU second {figures['cpu'][side][-1]:9.0f} tok/s, "
                    f"end-to-end {figures['e2e'][side][-1]:9.0f} tok/s",
                    flush=True,
                )

        med = {k: {side: statistics.median(v[side]) for side in sides} for k, v in figures.items()}
        ratio = {k: med[k]["ours"] / med[k]["plain"] for k in figures}
        import torch

        # On a GPU the wall clock is the cost; on a CPU shared with other jobs it swings
        # by 10-20 % between runs, while CPU seconds stay put.
        headline = "train" if torch.cuda.is_available() else "cpu"
        summary = {
            "device": torch.cuda.get_device_name()
            if torch.cuda.is_available()
            else f"cpu, {torch.get_num_threads()} threads",
            "model": model.name,
            "rows": args.rows,
            "epochs": args.epochs,
            "steps": args.steps,
            "batch": {"per_device": args.per_device, "grad_accum": args.grad_accum},
            "max_length": max_length,
            "tokens_per_run": tokens,
            "repeats": args.repeats,
            "tokens_per_s": {
                k: {side: [round(x, 1) for x in v[side]] for side in sides} for k, v in figures.items()
            },
            "median_tokens_per_s": {k: {side: round(x, 1) for side, x in v.items()} for k, v in med.items()},
            "ratio": {k: round(v, 4) for k, v in ratio.items()},
            "overhead_pct": {k: round((1 - v) * 100, 2) for k, v in ratio.items()},
            "headline": headline,
            "target_overhead_pct": TARGET_OVERHEAD_PCT,
            "within_target": (1 - ratio[headline]) * 100 < TARGET_OVERHEAD_PCT,
        }
        print(json.dumps(summary))
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
