"""Scoring benchmark: our one-pass scoring vs the authors' two-pass path.

    .venv/bin/python bench/bench_scoring.py                      # tiny model, CPU
    .venv/bin/python bench/bench_scoring.py --hidden 256 --layers 4   # a larger random Qwen2

Same model, same steps (the demo ProcessBench solutions), same K:

* ours: `inference.core.solution_scoring.score_solutions` -> one batched
  `TransformersBackend.generate` over every step's prompt; p_yes is read inline from
  the raw logits right after the verdict question while the critique is sampled.
* reference: the authors' two passes: sample the critiques (the same batched sampler,
  with the inline reading switched off), then ONE un-batched transformers forward pass
  per critique (`inference.core.reference.reference_p_yes`).

The random model writes no verdict line by itself, so a logits processor makes every
critique look like a trained model's: `--free-tokens` sampled analysis tokens, then the
verdict question, then the greedier of " Yes"/" No", then end of sequence (`--mode free`
leaves the text alone: p_yes then comes from the documented fallback, batched in ours).
Both paths sample with the same seed, so they produce the same texts (checked); p_yes
agreement is measured on exactly those texts. The last line printed is one JSON object.
The scoring API (which calls a model server, never a model in the web process) has its
own benchmark: bench_score_api.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from annotations.demo import DEMO_ROWS  # noqa: E402  (plain Python: no Django needed)
from inference.core.backends.base import Sampling  # noqa: E402
from inference.core.prompts import DEFAULT_TEMPLATE  # noqa: E402
from inference.core.solution_scoring import score_solutions, step_prompts  # noqa: E402
from inference.core.verdict import VERDICT_QUESTION  # noqa: E402


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
        vocab_size=base.vocab_size, hidden_size=hidden, intermediate_size=4 * hidden,
        num_hidden_layers=layers or base.num_hidden_layers, num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2), max_position_embeddings=base.max_position_embeddings,
        tie_word_embeddings=True, eos_token_id=base.eos_token_id, pad_token_id=base.pad_token_id,
        bos_token_id=None, initializer_range=0.1,
    )  # fmt: skip
    torch.manual_seed(seed)
    path = out / f"qwen2-h{config.hidden_size}-l{config.num_hidden_layers}"
    Qwen2ForCausalLM(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(path)
    return path


def word_token_ids(tokenizer) -> list[int]:
    """Tokens that decode to " <letters>": sampled only from these, a critique re-encodes to
    exactly the tokens the model saw (each word is its own pre-token), so the reference
    pass, which re-tokenises text as the authors' script does, reads the same context."""
    import re

    pattern = re.compile(r"^ [A-Za-z]+$")
    return [i for i in range(len(tokenizer)) if pattern.match(tokenizer.decode([i]))]


class EndLikeATrainedModel:
    """Logits processor: `free` sampled word tokens, then the verdict question, then " Yes"
    or " No" (whichever the raw logits prefer), then end of sequence. Runs after the p_yes
    recorder, which therefore reads the untouched logits."""

    def __init__(self, tokenizer, free: int, yes_id: int, no_id: int, eos_id: int, words: list[int]) -> None:
        from inference.core.scoring import encode_continuation

        self.question = encode_continuation(tokenizer, "\n" + VERDICT_QUESTION)
        self.free, self.yes_id, self.no_id, self.eos_id = free, yes_id, no_id, eos_id
        self.words = words
        self.mask = None
        self.start = None
        self.last_len = None

    def __call__(self, input_ids, scores):
        length = input_ids.shape[1]
        if self.last_len is None or length != self.last_len + 1:  # a new batch group began
            self.start = length
        self.last_len = length
        done = length - self.start
        q = len(self.question)
        if done < self.free:
            if self.mask is None:
                import torch

                self.mask = torch.full_like(scores[0], float("-inf"))
                self.mask[self.words] = 0.0
            return scores + self.mask
        forced = scores.clone().fill_(float("-inf"))
        if done < self.free + q:
            forced[:, self.question[done - self.free]] = 0.0
        elif done == self.free + q:
            prefer_yes = scores[:, self.yes_id] >= scores[:, self.no_id]
            forced[prefer_yes, self.yes_id] = 0.0
            forced[~prefer_yes, self.no_id] = 0.0
        else:
            forced[:, self.eos_id] = 0.0
        return forced


class ScriptedCritiques:
    """Backend wrapper adding the processor above to every generate call."""

    def __init__(self, backend, free: int, mode: str) -> None:
        self.backend, self.free, self.mode = backend, free, mode
        self.tokenizer = backend.tokenizer
        self.name = backend.name
        self.words = word_token_ids(backend.tokenizer)

    def generate(self, prompts, n, sampling):
        if self.mode == "free":
            return self.backend.generate(prompts, n, sampling)
        b = self.backend
        eos = sorted(b.eos_ids)[0]
        ender = EndLikeATrainedModel(b.tokenizer, self.free, b.yes_id, b.no_id, eos, self.words)
        return b.generate(prompts, n, sampling, logits_processors=[ender])


class NoReading:
    """Stands in for the inline p_yes recorder in the reference sampling pass (which only
    samples); reports a dummy p_yes so the backend does not run its fallback pass."""

    def __init__(self, detector, yes_id, no_id, rows):
        self.p_yes = [0.5] * rows
        self.hits = [0] * rows
        self.step_of_hit = [None] * rows

    def __call__(self, input_ids, scores):
        return scores


# -- one-pass vs two-pass -----------------------------------------------------------------
def compare_paths(args, model_dir: Path) -> dict:
    import torch

    from inference.core.backends import transformers_backend as tb
    from inference.core.backends.transformers_backend import TransformersBackend
    from inference.core.reference import reference_p_yes

    backend = TransformersBackend(model_dir, device="cpu", dtype="float32", batch_size=args.batch_size)
    wrapped = ScriptedCritiques(backend, args.free_tokens, args.mode)
    solutions = [(problem, steps) for _, problem, steps, _, _ in DEMO_ROWS][: args.solutions]
    n_steps = sum(len(s) for _, s in solutions)
    sampling = Sampling(temperature=0.95, top_p=0.95, max_new_tokens=args.free_tokens + 40, seed=args.seed)

    prompts = [p for q, s in solutions for p in step_prompts(DEFAULT_TEMPLATE, q, s, backend.tokenizer)]
    ids = (backend.yes_id, backend.no_id)
    # Warm-up (first-call allocations, lazy inits) so neither path pays it in the timings.
    score_solutions(wrapped, DEFAULT_TEMPLATE, solutions[:1], 1, sampling)
    reference_p_yes(backend.model, backend.tokenizer, prompts[0], "Fine.", token_ids=ids)
    ours_times, sample_times, forward_times = [], [], []

    def run_ours():
        t0 = time.perf_counter()
        scored = score_solutions(wrapped, DEFAULT_TEMPLATE, solutions, args.k, sampling, keep_text=True)
        ours_times.append(time.perf_counter() - t0)
        return scored

    def run_reference_sampling():
        # Reference pass 1: the same sampler and seed, the inline reading switched off.
        original = tb.VerdictLogitsRecorder
        tb.VerdictLogitsRecorder = NoReading
        try:
            t0 = time.perf_counter()
            sampled = wrapped.generate(prompts, args.k, sampling)
            sample_times.append(time.perf_counter() - t0)
        finally:
            tb.VerdictLogitsRecorder = original
        return sampled

    for repeat in range(args.repeats):
        # Alternate which path goes first, so load drift on a shared machine hits both.
        if repeat % 2 == 0:
            scored, sampled = run_ours(), run_reference_sampling()
        else:
            sampled, scored = run_reference_sampling(), run_ours()
        # Reference pass 2: one un-batched forward pass per critique, on OUR texts.
        texts = [[x.text for x in st.samples] for sol in scored for st in sol.steps]
        t0 = time.perf_counter()
        ref = [[reference_p_yes(backend.model, backend.tokenizer, prompt, t, token_ids=ids) for t in step_texts]
               for prompt, step_texts in zip(prompts, texts, strict=True)]  # fmt: skip
        forward_times.append(time.perf_counter() - t0)

    ours_p = [p for sol in scored for st in sol.steps for p in st.p_yes]
    ref_p = [p for step in ref for p in step]
    sources = [x.p_yes_source for sol in scored for st in sol.steps for x in st.samples]
    identical = [x.text for x in (c for row in sampled for c in row)] == [t for step in texts for t in step]
    diffs = [abs(a - b) for a, b in zip(ours_p, ref_p, strict=True)]
    ours_s, ref_s = min(ours_times), min(sample_times) + min(forward_times)
    tokens = sum(sol.completion_tokens for sol in scored)
    del backend
    return {
        "model": model_dir.name, "threads": torch.get_num_threads(), "mode": args.mode,
        "solutions": len(solutions), "steps": n_steps, "k": args.k, "critiques": len(ours_p),
        "completion_tokens": tokens, "batch_size": args.batch_size, "repeats": args.repeats,
        "ours": {"seconds": ours_s, "steps_per_s": n_steps / ours_s, "all_seconds": ours_times,
                 "p_yes_sources": {s: sources.count(s) for s in set(sources)}},
        "reference": {"seconds": ref_s, "steps_per_s": n_steps / ref_s, "sample_seconds": min(sample_times),
                      "forward_seconds": min(forward_times), "forward_passes": len(ref_p),
                      "all_sample_seconds": sample_times, "all_forward_seconds": forward_times},
        "speedup": ref_s / ours_s,
        "texts_identical": identical,
        "p_yes_max_abs_diff": max(diffs),
        "p_yes_mean_abs_diff": sum(diffs) / len(diffs),
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, help="hidden size of a random Qwen2 (default: the tiny model, 64)")
    p.add_argument("--layers", type=int, help="layers of that model (default: 2)")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--solutions", type=int, default=12, help="demo solutions to score (3 steps each)")
    p.add_argument("--k", type=int, default=4, help="critiques per step")
    p.add_argument("--free-tokens", type=int, default=48, help="analysis tokens before the verdict line")
    p.add_argument("--mode", choices=["forced", "free"], default="forced")
    p.add_argument("--batch-size", type=int, default=16, help="prompts per generate group (x K rows)")
    p.add_argument("--repeats", type=int, default=2, help="timed repeats; the fastest counts")
    p.add_argument("--threads", type=int, help="torch CPU threads for the comparison")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="seconds: 1 solution, K=2, 1 repeat (tests)")
    args = p.parse_args()
    if args.smoke:
        args.solutions, args.k, args.free_tokens, args.repeats = 1, 2, 8, 1

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="rprm-bench-scoring-") as tmp:
        work = Path(tmp)
        model_dir = build_model(work, args.hidden, args.layers, args.heads, args.seed)
        paths = compare_paths(args, model_dir)
        print(f"model {paths['model']}: {paths['steps']} steps x K={paths['k']} ({paths['critiques']} critiques, "
              f"{paths['completion_tokens']} tokens), {paths['threads']} torch threads")  # fmt: skip
        print(
            f"  ours (one pass, inline p_yes): {paths['ours']['seconds']:.2f} s = "
            f"{paths['ours']['steps_per_s']:.2f} steps/s  (p_yes sources {paths['ours']['p_yes_sources']})"
        )
        print(f"  reference (sample + 1 forward per critique): {paths['reference']['seconds']:.2f} s = "
              f"{paths['reference']['steps_per_s']:.2f} steps/s  (sampling {paths['reference']['sample_seconds']:.2f} s"
              f" + forward {paths['reference']['forward_seconds']:.2f} s)")  # fmt: skip
        print(
            f"  speed-up {paths['speedup']:.2f}x; texts identical: {paths['texts_identical']}; "
            f"p_yes max |diff| {paths['p_yes_max_abs_diff']:.2e}"
        )
        summary = {"paths": paths}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
