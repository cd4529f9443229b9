"""Teacher-run benchmark: our one-pass runner against the reference two-pass method.

    .venv/bin/python bench/bench_generation.py                      # tiny model, SQLite scratch DB
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rprm .venv/bin/python bench/bench_generation.py
    ... --hidden 256 --layers 4 --steps 64 --samples 4 --body-tokens 96

Same model, same steps, same prompts, measured side by side in one process:

* ours: `inference.runner.process_run` end to end (DB reads, batched generation with
  the yes-probability read from the raw logits while generating, verdict/section
  parsing, bulk inserts, progress writes). The run row splits its wall time into
  backend seconds and orchestration seconds.
* reference (the authors' scoring): sample the critiques (here with the same batched
  sampler, which flatters the reference: the authors used vLLM), then one separate,
  un-batched transformers forward pass per critique over prompt + critique to read
  the yes-probability. A second variant samples prompt by prompt, as a
  transformers-only port of their pipeline would.

A random model never writes the verdict question by itself, so generation is steered
to a critique-shaped text of about `--body-tokens` tokens ending in the verdict
question and a sampled " Yes"/" No" (see CritiqueShape). The p_yes read inline is
compared with the reference pass on the same texts (max abs diff).
Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from scratch import scratch_name

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def scratch_database(tmp: Path, smoke: bool = False) -> tuple[str, callable]:
    """A Postgres scratch DB beside DATABASE_URL's (dropped at the end), else SQLite in tmp."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        return f"sqlite:///{tmp / 'bench.sqlite3'}", lambda: None
    import psycopg

    name = scratch_name("bench_gen", smoke=smoke)
    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")

    def drop() -> None:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    return urlunsplit(parts._replace(path=f"/{name}")), drop


BODY = (
    "Previous Steps Analysis: the previous steps restate the problem and add the two numbers.\n"
    "Now Step Analysis: the Now Step doubles the sum found in the previous step.\n"
    "Data Source Analysis: the sum comes from Step 1 and is used as stated.\n"
    "Consistency Analysis: the Now Step agrees with the problem and with Step 1.\n"
    "Calculation Analysis: doubling the sum and halving it back gives the sum again.\n"
    "Conclusion: the Now Step is correct."
)


class CritiqueShape:
    """Makes the random model write a critique-shaped text: a fixed body (repeated to
    --body-tokens), the verdict question, then " Yes" or " No" sampled from the model's
    own two-way distribution, then end of sequence.

    Forcing the text keeps its tokens canonical (re-encoding the text gives the same
    ids), so the inline p_yes and the reference pass read the same positions; the cost
    per generated token is that of free generation. Placed after the backend's own
    recorder, so p_yes is still read from raw logits.
    """

    def __init__(self, tokenizer, body_tokens: int):
        from inference.core.scoring import encode_continuation, verdict_token_ids
        from inference.core.verdict import VERDICT_QUESTION

        body = BODY
        while len(encode_continuation(tokenizer, body)) < body_tokens:
            body += "\n" + BODY
        self.forced = encode_continuation(tokenizer, body + "\n" + VERDICT_QUESTION)
        self.yes, self.no = verdict_token_ids(tokenizer)
        self.eos = tokenizer.eos_token_id
        self.start = self.last = None

    def __call__(self, input_ids, scores):
        length = input_ids.shape[1]
        if self.last is None or length != self.last + 1:
            self.start = length  # a new generate() call (a new batch group)
        self.last = length
        t = length - self.start
        keep = scores.clone()
        scores.fill_(float("-inf"))
        if t < len(self.forced):
            scores[:, self.forced[t]] = 0.0
        elif t == len(self.forced):
            scores[:, [self.yes, self.no]] = keep[:, [self.yes, self.no]]
        else:
            scores[:, self.eos] = 0.0
        return scores


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--body-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8, help="steps per backend call")
    parser.add_argument(
        "--hidden", type=int, default=0, help="re-initialise a larger random Qwen2 (0 = tiny)"
    )
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--smoke", action="store_true", help="seconds: 2 steps x 2 samples (tests)")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.samples, args.body_tokens, args.batch_size = 2, 2, 16, 2

    tmp = Path(tempfile.mkdtemp(prefix="bench-gen-"))
    db_url, drop = scratch_database(tmp, args.smoke)
    os.environ.update({"DATABASE_URL": db_url, "RPRM_VAR_DIR": str(tmp / "var"), "HF_HUB_OFFLINE": "1"})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rprm_web.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    try:
        print(json.dumps(run(args, tmp)))
    finally:
        drop()


def build_model(args, tmp: Path) -> Path:
    from inference.core.tiny_model import build_tiny_model

    # Under MODELS_DIR (RPRM_VAR_DIR/models): local model paths outside it are refused.
    path = build_tiny_model(tmp / "var" / "models" / "tiny")
    if not args.hidden:
        return path
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path)
    config.hidden_size, config.num_hidden_layers = args.hidden, args.layers
    config.intermediate_size, config.num_attention_heads, config.num_key_value_heads = 4 * args.hidden, 8, 4
    config.head_dim = args.hidden // 8
    config.layer_types = ["full_attention"] * args.layers
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    return path


def run(args, tmp: Path) -> dict:
    import torch

    from annotations.actions import import_file
    from inference.actions import create_run, endpoint_for
    from inference.core.backends.transformers_backend import TransformersBackend
    from inference.core.reference import reference_p_yes
    from inference.models import Critique
    from inference.runner import process_run, select_steps, step_contexts

    torch.set_num_threads(args.threads)
    model_dir = build_model(args, tmp)
    rows = []
    for i in range((args.steps + 3) // 4):
        a, b = 17 + i, 26 + 3 * i
        rows.append(
            {
                "id": f"g{i}",
                "generator": "bench",
                "problem": f"Compute {a} + {b} and then double it.",
                "steps": [
                    f"We add: ${a} + {b} = {a + b}$.",
                    f"Doubling gives ${2 * (a + b)}$.",
                    "Check by subtracting back.",
                    f"The answer is {2 * (a + b)}.",
                ],
                "final_answer_correct": True,
                "label": -1,
            }
        )
    data = tmp / "bench.json"
    data.write_text(json.dumps(rows))
    dataset = import_file(data, dataset_name="bench", fmt="processbench").dataset

    backend = TransformersBackend(model_dir, device="cpu", batch_size=args.batch_size * args.samples)
    shape = CritiqueShape(backend.tokenizer, args.body_tokens)
    original_generate = backend.generate
    backend.generate = lambda prompts, n, sampling: original_generate(
        prompts, n, sampling, logits_processors=[shape]
    )
    endpoint = endpoint_for(str(model_dir), backend="transformers")

    def new_run():
        return create_run(
            dataset=dataset,
            endpoint=endpoint,
            queue=False,
            n_samples=args.samples,
            temperature=0.95,
            top_p=0.95,
            max_new_tokens=len(shape.forced) + 4,
            batch_size=args.batch_size,
            seed=0,
            step_filter={"limit": args.steps},
        )

    # Warm-up (thread pools, allocator) outside the timings.
    warm = create_run(
        dataset=dataset,
        endpoint=endpoint,
        queue=False,
        n_samples=1,
        max_new_tokens=8,
        batch_size=args.batch_size,
        step_filter={"limit": 2},
    )
    process_run(warm.id, backend=backend)

    ours = new_run()
    t0 = time.perf_counter()
    process_run(ours.id, backend=backend)
    ours_wall = time.perf_counter() - t0
    ours.refresh_from_db()
    n_steps = ours.steps_total

    # Reference: sample the same prompts, then one un-batched forward pass per critique.
    template = ours.template.to_core()
    step_ids = list(select_steps(ours).values_list("id", flat=True))
    ctx = step_contexts(step_ids)
    prompts = [template.render_prompt(*ctx[s][:3], tokenizer=backend.tokenizer) for s in step_ids]
    t0 = time.perf_counter()
    sampled = []
    for i in range(0, len(prompts), args.batch_size):
        sampled += backend.generate(prompts[i : i + args.batch_size], args.samples, ours.sampling())
    sample_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref_p = [
        [reference_p_yes(backend.model, backend.tokenizer, p, c.text) for c in cs]
        for p, cs in zip(prompts, sampled, strict=True)
    ]
    second_pass_s = time.perf_counter() - t0
    ref_wall = sample_s + second_pass_s
    # Variant: a transformers-only reading of the authors' pipeline samples prompt by prompt.
    t0 = time.perf_counter()
    for p in prompts:
        backend.generate([p], args.samples, ours.sampling())
    unbatched_sample_s = time.perf_counter() - t0
    ref_unbatched_wall = unbatched_sample_s + second_pass_s

    # Agreement of the inline value with the reference pass on our stored critiques.
    diffs = []
    by_step = {s: p for s, p in zip(step_ids, prompts, strict=True)}
    for c in Critique.objects.filter(run=ours).select_related("step"):
        ref = reference_p_yes(backend.model, backend.tokenizer, by_step[c.step_id], c.text)
        diffs.append(abs(ref - c.p_yes))
    inline = Critique.objects.filter(run=ours, p_yes_source="inline").count()
    result = {
        "model": "tiny" if not args.hidden else f"qwen2-h{args.hidden}-l{args.layers}",
        "db": "postgres" if os.environ["DATABASE_URL"].startswith("postgres") else "sqlite",
        "steps": n_steps,
        "samples": args.samples,
        "critique_tokens": len(shape.forced) + 1,
        "ours_steps_per_s": round(n_steps / ours_wall, 3),
        "reference_steps_per_s": round(n_steps / ref_wall, 3),
        "speedup": round(ref_wall / ours_wall, 3),
        "reference_unbatched_steps_per_s": round(n_steps / ref_unbatched_wall, 3),
        "speedup_vs_unbatched_reference": round(ref_unbatched_wall / ours_wall, 3),
        "ours_wall_s": round(ours_wall, 3),
        "ours_backend_s": round(ours.backend_seconds, 3),
        "ours_orchestration_s": round(ours.orchestration_seconds, 3),
        "orchestration_overhead": round(ours.orchestration_seconds / ours.backend_seconds, 4),
        "reference_sampling_s": round(sample_s, 3),
        "reference_second_pass_s": round(second_pass_s, 3),
        "p_yes_inline_share": round(inline / max(1, len(diffs)), 3),
        "p_yes_max_abs_diff": float(f"{max(diffs):.3g}") if diffs else None,
        "reference_mean_p_yes": round(sum(map(sum, ref_p)) / max(1, sum(map(len, ref_p))), 4),
    }
    print(
        f"ours      {result['ours_steps_per_s']:8.2f} steps/s  (backend {result['ours_backend_s']} s, "
        f"orchestration {result['ours_orchestration_s']} s = {100 * result['orchestration_overhead']:.1f}%)"
    )
    print(
        f"reference {result['reference_steps_per_s']:8.2f} steps/s  (sampling {result['reference_sampling_s']} s, "
        f"second pass {result['reference_second_pass_s']} s)"
    )
    print(f"reference, prompt-by-prompt sampling {result['reference_unbatched_steps_per_s']:.2f} steps/s")
    print(
        f"speedup {result['speedup']}x (vs prompt-by-prompt {result['speedup_vs_unbatched_reference']}x), p_yes max |diff| {result['p_yes_max_abs_diff']}"
    )
    return result


if __name__ == "__main__":
    main()
