"""SFT with the real TRL SFTTrainer on the tiny model, on CPU, a few steps at a time."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from inference.core.prompts import DEFAULT_TEMPLATE
from inference.core.reference import reference_p_yes
from inference.core.verdict import VERDICT_NO_LINE, VERDICT_YES_LINE
from training.core.data import SFTExample, TruncationError, length_stats
from training.core.runner import (
    RESULT_FILE,
    TrainConfig,
    build_sft_trainer,
    last_complete_checkpoint,
    run_sft,
)


def critique(i: int) -> str:
    verdict = VERDICT_YES_LINE if i % 2 else VERDICT_NO_LINE
    return (
        f"Previous Steps Analysis: step {i} adds {i} and 2.\nNow Step Analysis: the step states the sum.\n"
        f"Data Source Analysis: the numbers come from the question.\nConclusion: checked.\n{verdict}"
    )


def examples(n: int = 8) -> list[SFTExample]:
    return [
        SFTExample.from_template(
            DEFAULT_TEMPLATE,
            f"What is {i} + 2?",
            [f"We add {i} and 2."] if i % 2 else [],
            f"So it is {i + 2}.",
            critique(i),
        )
        for i in range(n)
    ]


def config(tmp_path, base, **overrides) -> TrainConfig:
    values = dict(
        kind="sft",
        base_model=base,
        output_dir=tmp_path / "run",
        learning_rate=1e-3,
        effective_batch_size=4,
        per_device_batch_size=2,
        warmup_ratio=0.0,
        max_steps=20,
        logging_steps=1,
        bf16=False,
        gradient_checkpointing=False,
    )
    values.update(overrides)
    return TrainConfig(**values)


class Recorder:
    """A ProgressSink that can ask to stop after a given step."""

    def __init__(self, stop_after: int | None = None):
        self.stop_after = stop_after
        self.logs: list[tuple[int, int, dict]] = []
        self.checkpoints: list[str] = []
        self.last_step = 0

    def on_log(self, step, max_steps, metrics):
        self.last_step = step
        self.logs.append((step, max_steps, metrics))

    def should_stop(self):
        return self.stop_after is not None and self.last_step >= self.stop_after

    def on_checkpoint(self, path):
        self.checkpoints.append(path)

    def train_losses(self) -> list[float]:
        return [m["loss"] for _, _, m in self.logs if "loss" in m]


@pytest.fixture(scope="module")
def sft_run(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sft")
    sink = Recorder()
    cfg = config(tmp, tiny_model_dir, eval_steps=5, save_steps=5)
    # 40 rows, 20 steps of 4: exactly two epochs.
    result = run_sft(cfg, examples(10) * 4, examples(12)[10:], callbacks=sink)
    return cfg, result, sink


# --- configuration ------------------------------------------------------------------


def test_it_derives_batching_and_learning_rates_from_the_method(tmp_path):
    sft = TrainConfig(kind="sft", base_model="m", output_dir=tmp_path)
    dpo = TrainConfig(kind="dpo", base_model="m", output_dir=tmp_path)
    assert (sft.resolved_learning_rate, dpo.resolved_learning_rate) == (5e-6, 5e-7)
    assert (sft.effective_batch_size, sft.num_epochs, sft.warmup_ratio) == (128, 1.0, 0.03)
    assert sft.batch_plan() == (4, 32) and dpo.batch_plan() == (2, 64)
    assert sft.batch_plan(world_size=8) == (4, 4)
    assert TrainConfig(
        kind="sft", base_model="m", output_dir=tmp_path, per_device_batch_size=8
    ).batch_plan() == (8, 16)
    with pytest.raises(ValueError, match="multiple"):
        TrainConfig(kind="sft", base_model="m", output_dir=tmp_path, per_device_batch_size=3).batch_plan()
    with pytest.raises(ValueError):
        TrainConfig(kind="rm", base_model="m", output_dir=tmp_path)


def test_it_masks_the_prompt_out_of_the_loss(tiny_model_dir, tmp_path):
    prepared = build_sft_trainer(config(tmp_path, tiny_model_dir), examples(4))
    trainer, tokenizer = prepared.trainer, prepared.tokenizer
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    for row in range(2):
        ids, labels = batch["input_ids"][row], batch["labels"][row]
        real = batch["attention_mask"][row].bool()
        trained = labels != -100
        assert trained.any() and not trained[~real].any()  # padding never trained
        first = int(trained.nonzero()[0])
        assert not trained[:first].any() and trained[first:][real[first:]].all()
        assert torch.equal(labels[trained], ids[trained])
        # The trained part is exactly the critique and the end of the assistant turn.
        assert tokenizer.decode(ids[first:][real[first:]]) == critique(row) + "<|im_end|>\n"
        prompt = tokenizer.decode(ids[:first])
        assert prompt.endswith("<|im_start|>assistant\n") and "What is" in prompt
    # Lengths came from the data, measured the way TRL tokenised it.
    longest = max(len(r["input_ids"]) for r in trainer.train_dataset)
    assert prepared.lengths["max"] == longest == length_stats(tokenizer, examples(4))["max"]
    assert prepared.max_length % 64 == 0 and longest <= prepared.max_length < longest + 64


def test_it_refuses_a_max_length_that_would_cut_critiques(tiny_model_dir, tmp_path):
    with pytest.raises(TruncationError, match="8 of 8 rows"):
        run_sft(config(tmp_path, tiny_model_dir, max_length=128), examples())


# --- a real run --------------------------------------------------------------------


def test_it_lowers_the_loss(sft_run):
    _cfg, result, sink = sft_run
    assert result.status == "succeeded" and result.global_step == 20
    losses = sink.train_losses()
    assert len(losses) == 20
    assert losses[-1] < losses[0] - 0.5
    assert [s for s, _, m in sink.logs if "eval_loss" in m] == [5, 10, 15, 20]
    assert all(max_steps == 20 for _, max_steps, _ in sink.logs)


def test_it_reports_honest_throughput(sft_run, tiny_model_dir):
    _cfg, result, _sink = sft_run
    # Two epochs over the 40 rows, each row counted without its padding.
    lengths = length_stats(AutoTokenizer.from_pretrained(tiny_model_dir), examples(10))["lengths"]
    assert len(set(lengths)) > 1  # rows differ, so batches are padded
    assert result.train_tokens == 2 * 4 * sum(lengths)
    assert result.tokens_per_second == pytest.approx(result.train_tokens / result.train_seconds)
    assert 0 < result.train_seconds < result.wall_seconds
    assert result.eval_seconds > 0 and result.save_seconds > 0


def test_it_keeps_the_best_checkpoint_by_validation_loss(sft_run):
    cfg, result, sink = sft_run
    evals = [(m["eval_loss"], s) for s, _, m in sink.logs if "eval_loss" in m]
    best_loss, best_step = min(evals)
    assert result.best_metric == pytest.approx(best_loss)
    assert result.best_checkpoint.endswith(f"checkpoint-{best_step}")
    final = load_file(f"{result.final_path}/model.safetensors")
    best = load_file(f"{result.best_checkpoint}/model.safetensors")
    assert final.keys() == best.keys() and all(torch.equal(final[k], best[k]) for k in final)
    assert sink.checkpoints and all(p.startswith(str(cfg.output_dir)) for p in sink.checkpoints)


def test_it_saves_a_final_model_that_loads_generates_and_scores(sft_run, tiny_model_dir):
    _cfg, result, _sink = sft_run
    tokenizer = AutoTokenizer.from_pretrained(result.final_path)
    model = AutoModelForCausalLM.from_pretrained(result.final_path)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert not torch.equal(model.model.embed_tokens.weight, base.model.embed_tokens.weight)
    messages = examples(1)[0].prompt_messages
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 8 or out[0, -1] == tokenizer.eos_token_id
    p = reference_p_yes(
        model,
        tokenizer,
        prompt,
        "Previous Steps Analysis: fine.\nVerification: Is the step correct (Yes/No)?",
    )
    assert 0.0 <= p <= 1.0
    with open(f"{result.final_path}/{RESULT_FILE}") as f:
        stored = json.load(f)
    assert stored["status"] == "succeeded" and stored["final_path"] == result.final_path


def test_it_returns_the_stored_result_instead_of_training_twice(sft_run):
    cfg, result, _sink = sft_run
    again = run_sft(cfg, examples(), callbacks=Recorder())
    assert again.to_dict() == {**result.to_dict(), "wall_seconds": again.wall_seconds}
    with pytest.raises(ValueError, match="resume=True"):
        run_sft(config(cfg.output_dir.parent, cfg.base_model, resume=False), examples())


# --- cancellation and resume ------------------------------------------------------------


def test_it_stops_when_asked_and_resumes_from_the_last_checkpoint(tiny_model_dir, tmp_path):
    cfg = config(tmp_path, tiny_model_dir, max_steps=6, save_steps=2)
    # Polled right after step 3, before step 3's log: the sink has seen step 2.
    cancelled = run_sft(cfg, examples() * 2, callbacks=Recorder(stop_after=2))
    assert cancelled.status == "cancelled" and cancelled.final_path is None
    assert cancelled.global_step == 3
    assert not (cfg.output_dir / "final").exists()
    assert last_complete_checkpoint(cfg.output_dir).name == "checkpoint-2"
    # A worker killed while saving leaves a checkpoint without trainer state: skipped.
    (cfg.output_dir / "checkpoint-3").mkdir()
    (cfg.output_dir / "checkpoint-3" / "model.safetensors").write_bytes(b"partial")

    sink = Recorder()
    resumed = run_sft(cfg, examples() * 2, callbacks=sink)
    assert resumed.status == "succeeded"
    assert resumed.resumed_from.endswith("checkpoint-2") and resumed.start_step == 2
    assert [s for s, _, m in sink.logs if "loss" in m] == [3, 4, 5, 6]
    assert resumed.global_step == 6 and (cfg.output_dir / "final" / "model.safetensors").is_file()
    # Tokens are this session's: 4 steps of 4 rows.
    lengths = length_stats(AutoTokenizer.from_pretrained(tiny_model_dir), examples())["lengths"]
    assert 16 * min(lengths) <= resumed.train_tokens <= 16 * max(lengths)


def test_it_does_not_start_when_already_cancelled(tiny_model_dir, tmp_path):
    sink = Recorder(stop_after=0)
    result = run_sft(config(tmp_path, tiny_model_dir), examples(), callbacks=sink)
    assert result.status == "cancelled" and result.global_step == 0 and sink.logs == []


# --- training logs -------------------------------------------------------------------


def test_it_writes_tensorboard_event_files_under_the_run_folder(sft_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from training.core.runner import TENSORBOARD_DIR

    cfg, _, sink = sft_run
    assert cfg.report_to == "tensorboard"  # the default
    events = sorted((cfg.output_dir / TENSORBOARD_DIR).rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard event files under output_dir/runs"
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert "train/loss" in acc.Tags()["scalars"] and "eval/loss" in acc.Tags()["scalars"]
    logged = [(e.step, e.value) for e in acc.Scalars("train/loss")]
    # The same losses the run's own progress sink saw, step by step.
    assert [v for _, v in logged] == pytest.approx(sink.train_losses(), rel=1e-5)
    assert [s for s, _ in logged] == list(range(1, 21))


def test_report_to_none_writes_no_logs_and_unknown_trackers_are_refused(tiny_model_dir, tmp_path):
    from training.core.runner import TENSORBOARD_DIR

    cfg = config(tmp_path, tiny_model_dir, max_steps=1, report_to="none", save_total_limit=1)
    run_sft(cfg, examples(4))
    assert not (cfg.output_dir / TENSORBOARD_DIR).exists()
    with pytest.raises(ValueError, match="report_to must be one of tensorboard, none"):
        config(tmp_path, tiny_model_dir, report_to="wandb")
