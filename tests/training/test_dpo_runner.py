"""DPO with the real TRL DPOTrainer on the tiny model, the SFT model as frozen reference."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from inference.core.prompts import DEFAULT_TEMPLATE
from inference.core.verdict import VERDICT_NO_LINE, VERDICT_YES_LINE
from training.core.data import DPOExample, SFTExample, build_preference_pairs, preference_examples
from training.core.runner import TrainConfig, build_dpo_trainer, run_dpo, run_sft, train_prepared

LN2 = math.log(2)


def sampled_steps(n: int = 6):
    """K=4 sampled critiques per step, half agreeing with the label."""
    samples, labels, prompts = {}, {}, {}
    for i in range(n):
        key = ("solution", i)
        labels[key] = bool(i % 2)
        prompts[key] = DEFAULT_TEMPLATE.render_messages(f"What is {i} + 2?", [], f"So it is {i + 2}.")
        samples[key] = [
            {
                "verdict": verdict,
                "text": f"Now Step Analysis: sample {j} of step {i}.\nConclusion: done.\n"
                + (VERDICT_YES_LINE if verdict == "yes" else VERDICT_NO_LINE),
            }
            for j, verdict in enumerate(["yes", "no", "unparseable", "yes", "no"])
        ]
    return samples, labels, prompts


def pairs() -> list[DPOExample]:
    samples, labels, prompts = sampled_steps()
    result = build_preference_pairs(samples, labels, max_pairs_per_step=2, min_agree_fraction=1 / 3)
    assert result.stats.pairs == 12
    return preference_examples(result, samples, prompts)


def dpo_config(tmp_path, base, **overrides) -> TrainConfig:
    values = dict(
        kind="dpo",
        base_model=base,
        output_dir=tmp_path / "dpo",
        learning_rate=1e-3,
        effective_batch_size=4,
        per_device_batch_size=2,
        warmup_ratio=0.0,
        max_steps=8,
        logging_steps=1,
        eval_steps=2,
        save_steps=4,
        bf16=False,
        gradient_checkpointing=False,
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def sft_model(tiny_model_dir, tmp_path_factory):
    rows = [
        SFTExample(completion=f"Conclusion: fine.\n{VERDICT_YES_LINE}", prompt_messages=m)
        for m in sampled_steps()[2].values()
    ]
    cfg = TrainConfig(
        kind="sft",
        base_model=tiny_model_dir,
        output_dir=tmp_path_factory.mktemp("sft") / "run",
        learning_rate=1e-3,
        effective_batch_size=2,
        max_steps=3,
        bf16=False,
        gradient_checkpointing=False,
    )
    return run_sft(cfg, rows).final_path


def test_it_trains_against_the_frozen_sft_model(sft_model, tmp_path):
    prepared = build_dpo_trainer(dpo_config(tmp_path, sft_model), pairs(), pairs()[:4])
    result = train_prepared(prepared)
    assert result.status == "succeeded" and result.global_step == 8
    train = [m for m in result.metrics if "loss" in m and "rewards/margins" in m]
    # Policy and reference start as the same SFT model: zero margin, loss ln 2.
    assert train[0]["loss"] == pytest.approx(LN2, abs=1e-4)
    assert train[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-4)
    assert {"rewards/chosen", "rewards/rejected", "rewards/accuracies", "logps/chosen"} <= set(train[0])
    evals = [m["eval_loss"] for m in result.metrics if "eval_loss" in m]
    assert len(evals) == 4 and min(evals) < LN2 and result.best_metric == pytest.approx(min(evals))
    # The reference stayed frozen, the policy moved.
    sft = load_file(f"{sft_model}/model.safetensors")
    ref = prepared.trainer.ref_model.state_dict()
    assert all(torch.equal(ref[k], v) for k, v in sft.items())
    final = load_file(f"{result.final_path}/model.safetensors")
    assert not torch.equal(final["model.embed_tokens.weight"], sft["model.embed_tokens.weight"])
    assert AutoModelForCausalLM.from_pretrained(result.final_path).config.model_type == "qwen2"
    assert result.train_tokens > 0 and result.tokens_per_second > 0
    # chosen + rejected, prompt included, per pair
    assert result.lengths["count"] == 16 and result.max_length % 64 == 0


def test_it_takes_an_explicit_reference_model(sft_model, tiny_model_dir, tmp_path):
    # Policy from the random base, reference the SFT model: they differ from step 1.
    result = run_dpo(
        dpo_config(tmp_path, tiny_model_dir, max_steps=2, eval_steps=None, save_steps=2),
        pairs(),
        ref_model_path=sft_model,
    )
    first = next(m for m in result.metrics if "rewards/margins" in m)
    assert result.status == "succeeded" and first["loss"] != pytest.approx(LN2, abs=1e-4)


def test_it_runs_dpo_with_lora_and_saves_a_merged_model(sft_model, tmp_path):
    cfg = dpo_config(
        tmp_path, sft_model, lora=True, lora_r=4, lora_alpha=8, max_steps=3, eval_steps=None, save_steps=3
    )
    result = run_dpo(cfg, pairs())
    first = next(m for m in result.metrics if "rewards/margins" in m)
    assert first["loss"] == pytest.approx(LN2, abs=1e-4)  # adapters off = the SFT model
    model = AutoModelForCausalLM.from_pretrained(result.final_path)
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_it_stops_dpo_when_asked(sft_model, tmp_path):
    class StopAfterFirstStep:
        def on_log(self, step, max_steps, metrics):
            self.seen = step

        def should_stop(self):
            return getattr(self, "seen", 0) >= 1

        def on_checkpoint(self, path):
            pass

    result = run_dpo(
        dpo_config(tmp_path, sft_model, eval_steps=None), pairs(), callbacks=StopAfterFirstStep()
    )
    assert result.status == "cancelled" and result.global_step == 2 and result.final_path is None
