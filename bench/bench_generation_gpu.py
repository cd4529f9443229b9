"""Teacher-pass throughput on a GPU, Django-free: our one-pass backend against the
authors' two-pass method, side by side in one process, at real context lengths.

    python3 bench/bench_generation_gpu.py                       # Qwen2.5-1.5B shape, bf16, cuda
    python3 bench/bench_generation_gpu.py --shape 7b --steps 32
    python3 bench/bench_generation_gpu.py --shape tiny --device cpu --steps 4 --body-tokens 64   # smoke test

A random-initialised Qwen2 with a real model's shape (hidden size, layers, heads,
vocabulary) is built on the device, so the cost per token is that of the real
model; the tokenizer is the tiny model's, trained locally (nothing is downloaded).
Critique text is forced to a critique-shaped body of ``--body-tokens`` tokens that
ends in the verdict question and a sampled " Yes"/" No" (see
``bench_generation.CritiqueShape``), so both methods decode the same number of tokens.

* ours: ``TransformersBackend.generate``: batched sampling, p_yes read from the raw
  logits while generating (no second pass).
* reference: the same batched sampler (flattering the reference: the authors sample
  with vLLM), then one separate un-batched forward pass per critique over prompt +
  critique (``inference.core.reference.reference_p_yes``), as their scoring script does.
* reference, prompt by prompt: sampling one prompt at a time, as a transformers-only
  port of their pipeline would; timed on ``--unbatched-steps`` steps and given as a rate.

Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SHAPES = {
    # hidden, layers, heads, kv heads, intermediate, vocabulary (the public configs)
    "tiny": None,
    "1.5b": (1536, 28, 12, 2, 8960, 151936),
    "7b": (3584, 28, 28, 4, 18944, 152064),
}


def build_model(shape: str, tmp: Path, device: str, dtype):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from inference.core.tiny_model import build_tiny_model

    path = build_tiny_model(tmp / "model")
    if SHAPES[shape] is None:
        return path
    hidden, layers, heads, kv, inter, vocab = SHAPES[shape]
    config = AutoConfig.from_pretrained(path)
    config.hidden_size, config.num_hidden_layers = hidden, layers
    config.num_attention_heads, config.num_key_value_heads = heads, kv
    config.intermediate_size, config.vocab_size, config.head_dim = inter, vocab, hidden // heads
    config.layer_types = ["full_attention"] * layers
    config.max_position_embeddings = 32768
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(path)
    del model
    return path


def prompts_for(tokenizer, n_steps: int, prompt_tokens: int) -> list[str]:
    """The default template's chat prompts, about ``prompt_tokens`` tokens of previous steps each."""
    from inference.core.prompts import DEFAULT_TEMPLATE

    prompts = []
    for i in range(n_steps):
        a, b = 17 + i, 26 + 3 * i
        steps = [f"We add ${a} + {b} = {a + b}$, then check the sum by subtracting {b} again."]
        while len(tokenizer(" ".join(steps))["input_ids"]) < prompt_tokens:
            steps.append(f"Next we note that {a + b} - {b} = {a}, so the sum of ${a}$ and ${b}$ holds.")
        question = f"Compute {a} + {b} and then double it. What is the result?"
        prompts.append(DEFAULT_TEMPLATE.render_prompt(question, steps[:-1], steps[-1], tokenizer=tokenizer))
    return prompts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=sorted(SHAPES), default="1.5b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--samples", type=int, default=4, help="K critiques per step")
    parser.add_argument("--prompt-tokens", type=int, default=400)
    parser.add_argument("--body-tokens", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=128, help="sequences per generate() call")
    parser.add_argument("--unbatched-steps", type=int, default=1)
    parser.add_argument(
        "--smoke", action="store_true", help="seconds on a CPU: the tiny shape, 2 steps (tests)"
    )
    args = parser.parse_args()
    if args.smoke:
        args.shape, args.device, args.steps, args.samples = "tiny", "cpu", 2, 2
        args.prompt_tokens, args.body_tokens, args.batch_size = 64, 16, 4

    import torch
    from bench_generation import CritiqueShape

    from inference.core.backends.base import Sampling
    from inference.core.backends.transformers_backend import TransformersBackend
    from inference.core.reference import reference_p_yes

    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    tmp = Path(tempfile.mkdtemp(prefix="bench-gen-gpu-"))
    t0 = time.perf_counter()
    path = build_model(args.shape, tmp, args.device, dtype)
    backend = TransformersBackend(path, device=args.device, dtype=dtype, batch_size=args.batch_size)
    build_s = time.perf_counter() - t0
    shape = CritiqueShape(backend.tokenizer, args.body_tokens)
    sampling = Sampling(temperature=0.95, top_p=0.95, max_new_tokens=len(shape.forced) + 4, seed=0)
    prompts = prompts_for(backend.tokenizer, args.steps, args.prompt_tokens)
    prompt_lens = [len(backend.tokenizer(p)["input_ids"]) for p in prompts]

    def sync() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    def sample(batch: list[str]):
        return backend.generate(batch, args.samples, sampling, logits_processors=[shape])

    per_call = max(1, args.batch_size // args.samples)
    # Warm-up at the full batch shape (kernels, allocator, cuBLAS handles): a warm-up of
    # one prompt left the first timed full batch twice as slow as the second on an H200.
    sample(prompts[:per_call])
    sync()

    t0 = time.perf_counter()
    ours = [c for i in range(0, len(prompts), per_call) for c in sample(prompts[i : i + per_call])]
    sync()
    ours_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    sampled = [c for i in range(0, len(prompts), per_call) for c in sample(prompts[i : i + per_call])]
    sync()
    ref_sample_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref_p = [
        [reference_p_yes(backend.model, backend.tokenizer, p, c.text) for c in cs]
        for p, cs in zip(prompts, sampled, strict=True)
    ]
    sync()
    second_pass_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    for p in prompts[: args.unbatched_steps]:
        sample([p])
    sync()
    unbatched_per_step = (time.perf_counter() - t0) / max(1, args.unbatched_steps)

    # The inline value against the reference pass on the same texts.
    diffs = [
        abs(reference_p_yes(backend.model, backend.tokenizer, p, c.text) - c.p_yes)
        for p, cs in zip(prompts, ours, strict=True)
        for c in cs
        if c.p_yes is not None
    ]
    n = len(prompts)
    ref_s = ref_sample_s + second_pass_s
    result = {
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "shape": args.shape,
        "dtype": str(dtype).removeprefix("torch."),
        "steps": n,
        "samples": args.samples,
        "prompt_tokens_mean": round(sum(prompt_lens) / n, 1),
        "critique_tokens": len(shape.forced) + 1,
        "batch_sequences": per_call * args.samples,
        "build_s": round(build_s, 1),
        "ours_s": round(ours_s, 3),
        "ours_s_per_step": round(ours_s / n, 4),
        "reference_sampling_s": round(ref_sample_s, 3),
        "reference_second_pass_s": round(second_pass_s, 3),
        "reference_s_per_step": round(ref_s / n, 4),
        "speedup": round(ref_s / ours_s, 3),
        "reference_unbatched_s_per_step": round(unbatched_per_step + second_pass_s / n, 4),
        "speedup_vs_unbatched_reference": round((unbatched_per_step + second_pass_s / n) / (ours_s / n), 2),
        "generated_tokens_per_s_ours": round(n * args.samples * (len(shape.forced) + 1) / ours_s, 1),
        "p_yes_inline_share": round(len(diffs) / (n * args.samples), 3),
        "p_yes_max_abs_diff": float(f"{max(diffs):.3g}") if diffs else None,
        "reference_mean_p_yes": round(sum(map(sum, ref_p)) / sum(map(len, ref_p)), 4),
    }
    print(
        f"{args.shape} on {result['device']}: {n} steps x K={args.samples}, prompt ~{result['prompt_tokens_mean']} "
        f"tokens, critique {result['critique_tokens']} tokens"
    )
    print(f"ours                     {result['ours_s_per_step']:.4f} s/step")
    print(
        f"reference (batched)      {result['reference_s_per_step']:.4f} s/step "
        f"(sampling {ref_sample_s:.2f} s + second pass {second_pass_s:.2f} s)  speedup {result['speedup']}x"
    )
    print(
        f"reference (per prompt)   {result['reference_unbatched_s_per_step']:.4f} s/step  "
        f"speedup {result['speedup_vs_unbatched_reference']}x"
    )
    print(f"p_yes inline vs reference: max |diff| {result['p_yes_max_abs_diff']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
