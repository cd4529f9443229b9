"""Local generation with Hugging Face transformers, p_yes read in the same pass.

A logits processor placed ahead of the sampling warpers sees the raw next-token
logits at every step. Whenever a row's text so far ends with the verdict question
it stores ``p_yes = softmax([l_yes, l_no])[0]`` for that row (the last occurrence
wins), so no second model pass is needed. Critiques that never ask the question
get the documented fallback: one batched next-token pass over
prompt + critique + "\\n" + VERDICT_QUESTION (``p_yes_source="fallback"``).

Sampling follows :class:`Sampling` only: the model's own generation defaults
(repetition penalty, top_k, ...) are dropped at load time so runs are reproducible
and comparable with vLLM. Token counts exclude padding; a completion's count
includes its end-of-sequence token. ``latency_s`` is the wall time of the batch
that produced the completion. ``Sampling.seed`` seeds torch's global generator.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..prompts import Messages, prompt_text
from ..reference import reference_p_yes
from ..scoring import (
    VerdictQuestionDetector,
    encode_continuation,
    encode_prompt,
    p_yes_from_logits,
    scoring_context,
    verdict_token_ids,
)
from .base import Completion, Sampling, fallback_contexts, repeat_greedy

if TYPE_CHECKING:  # torch is a heavy ML import: each method defers it
    import torch

# (tokens, p_yes, verdict questions seen, step of the last one, finished, batch latency)
_Row = tuple[list[int], float | None, int, int | None, bool, float]

_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16"}
_DTYPES.update({"float16": "float16", "fp16": "float16", "half": "float16"})


def _resolve_dtype(dtype: Any, device: str) -> torch.dtype:
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    try:
        resolved: torch.dtype = getattr(torch, _DTYPES[str(dtype).lower()])
        return resolved
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}") from None


class VerdictLogitsRecorder:
    """Logits processor that records p_yes wherever the text ends with the question.

    Must run before any processor that changes logits (temperature, top-p, ...):
    it reads, never modifies, ``scores``.
    """

    def __init__(self, detector: VerdictQuestionDetector, yes_id: int, no_id: int, rows: int) -> None:
        self.detector = detector
        self.yes_id = yes_id
        self.no_id = no_id
        self.p_yes: list[float | None] = [None] * rows
        self.hits = [0] * rows
        self.step_of_hit: list[int | None] = [None] * rows
        self._step = 0
        self._trigger: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import torch

        trigger = self._trigger
        if trigger is None:
            ids = sorted(self.detector.trigger_ids)
            trigger = self._trigger = torch.tensor(ids, dtype=input_ids.dtype, device=input_ids.device)
        candidates = torch.isin(input_ids[:, -1], trigger).nonzero().flatten().tolist()
        window = self.detector.window
        for row in candidates:
            if self.detector.ends_with_question(input_ids[row, -window:].tolist()):
                pair = scores[row, [self.yes_id, self.no_id]].float().tolist()
                self.p_yes[row] = p_yes_from_logits(pair[0], pair[1])
                self.hits[row] += 1
                self.step_of_hit[row] = self._step
        self._step += 1
        return scores


class TransformersBackend:
    name = "transformers"

    def __init__(
        self,
        model_path: str | Path,
        device: str | None = None,
        dtype: Any = "auto",
        batch_size: int = 8,
        max_batch_tokens: int | None = None,
        attn_implementation: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.model_path = str(model_path)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = _resolve_dtype(dtype, self.device)
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens

        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        kwargs: dict[str, Any] = {"dtype": self.dtype}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        model = AutoModelForCausalLM.from_pretrained(self.model_path, **kwargs)
        # transformers wraps PreTrainedModel.to in a decorator whose stub loses the bound self.
        self.model = model.to(self.device).eval()  # type: ignore[arg-type]

        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self.pad_id = self.tokenizer.pad_token_id
        # Keep only eos/pad from the checkpoint's generation defaults (see module doc).
        # GenerationConfig.__init__(**kwargs) is unannotated in transformers.
        self.model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=self.pad_id)  # type: ignore[no-untyped-call]

        self._logits_to_keep = "logits_to_keep" in inspect.signature(self.model.forward).parameters
        self.yes_id, self.no_id = verdict_token_ids(self.tokenizer)
        self.detector = VerdictQuestionDetector(self.tokenizer)

    # -- generation -------------------------------------------------------------

    def generate(
        self,
        prompts: Sequence[str | Messages],
        n: int,
        sampling: Sampling,
        *,
        prefill: Sequence[str | None] | None = None,
        logits_processors: Sequence[Any] = (),
    ) -> list[list[Completion]]:
        """``n`` critiques per prompt, in prompt order.

        ``prefill``: per prompt, text the critique is forced to start with (it is part
        of the returned text and counted in ``prompt_tokens``). ``logits_processors``
        run after the p_yes recorder. Both serve tests and constrained decoding.
        With temperature 0 the one greedy critique is returned ``n`` times.
        A prompt given as chat messages goes through the tokenizer's own chat template.
        """
        import torch

        texts = [prompt_text(p, self.tokenizer) for p in prompts]
        if n < 1:
            raise ValueError("n must be >= 1")
        prefill = list(prefill) if prefill is not None else [None] * len(texts)
        if len(prefill) != len(texts):
            raise ValueError("prefill needs one entry per prompt")
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)

        greedy = sampling.temperature == 0
        n_gen = 1 if greedy else n
        encoded = []
        for prompt, pre in zip(texts, prefill, strict=True):
            prompt_ids = encode_prompt(self.tokenizer, prompt)
            encoded.append((prompt_ids, prompt_ids + encode_continuation(self.tokenizer, pre or "")))

        results: list[list[Completion]] = [[] for _ in texts]
        pending: list[tuple[int, int]] = []  # (prompt index, sample index) needing the fallback
        for group in self._groups([len(full) for _, full in encoded], n_gen, sampling.max_new_tokens):
            batch = self._generate_group(
                [encoded[i][1] for i in group], n_gen, sampling, greedy, list(logits_processors)
            )
            for row, (tokens, p_yes, hits, step, finished, latency) in enumerate(batch):
                i = group[row // n_gen]
                prompt_ids, full_ids = encoded[i]
                decoded = self.tokenizer.decode(tokens, skip_special_tokens=True)
                assert isinstance(decoded, str)  # one sequence decodes to one string
                text = (prefill[i] or "") + decoded
                completion = Completion(
                    text=text,
                    prompt_tokens=len(full_ids),
                    completion_tokens=len(tokens) + (1 if finished else 0),
                    p_yes=p_yes,
                    p_yes_source="inline" if p_yes is not None else None,
                    latency_s=latency,
                    finish_reason="stop" if finished else "length",
                    extra={
                        "verdict_questions": hits,
                        "verdict_step": step,
                        "prefill_tokens": len(full_ids) - len(prompt_ids),
                    },
                )
                results[i].append(completion)
                if p_yes is None:
                    pending.append((i, len(results[i]) - 1))

        if pending:
            contexts, sources = fallback_contexts(results, pending, texts)
            for (i, j), p, source in zip(pending, self._score_contexts(contexts), sources, strict=True):
                c = results[i][j]
                c.p_yes, c.p_yes_source = p, "fallback"
                c.extra["fallback"] = "reread" if source == "verdict_question" else "appended"
        return repeat_greedy(results, n) if greedy and n > 1 else results

    def _groups(self, lengths: list[int], n_gen: int, max_new: int) -> list[list[int]]:
        """Batches of prompt indices, longest first, within batch_size / max_batch_tokens."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        groups: list[list[int]] = []
        for i in order:
            if groups:
                g = groups[-1]
                rows = (len(g) + 1) * n_gen
                longest = lengths[g[0]]
                fits = len(g) < self.batch_size and (
                    self.max_batch_tokens is None or rows * (longest + max_new) <= self.max_batch_tokens
                )
                if fits:
                    g.append(i)
                    continue
            groups.append([i])
        return groups

    def _left_pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            if s:
                ids[r, width - len(s) :] = torch.tensor(s, dtype=torch.long)
                mask[r, width - len(s) :] = 1
        return ids.to(self.device), mask.to(self.device)

    def _generate_group(
        self, seqs: list[list[int]], n_gen: int, sampling: Sampling, greedy: bool, extra_processors: list[Any]
    ) -> list[_Row]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        input_ids, attention_mask = self._left_pad(seqs)
        rows = len(seqs) * n_gen
        recorder = VerdictLogitsRecorder(self.detector, self.yes_id, self.no_id, rows)
        config = GenerationConfig(  # type: ignore[no-untyped-call]  # unannotated **kwargs in transformers
            max_new_tokens=sampling.max_new_tokens,
            do_sample=not greedy,
            num_return_sequences=n_gen,
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=self.pad_id,
            top_k=0,
            repetition_penalty=1.0,
            **({} if greedy else {"temperature": sampling.temperature, "top_p": sampling.top_p}),
        )
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                generation_config=config,
                logits_processor=LogitsProcessorList([recorder, *extra_processors]),
            )
        latency = time.perf_counter() - start
        generated = out[:, input_ids.shape[1] :].tolist()
        batch: list[_Row] = []
        for row, tokens in enumerate(generated):
            cut = next((k for k, t in enumerate(tokens) if t in self.eos_ids), None)
            finished = cut is not None
            tokens = tokens[:cut] if finished else tokens
            batch.append(
                (
                    tokens,
                    recorder.p_yes[row],
                    recorder.hits[row],
                    recorder.step_of_hit[row],
                    finished,
                    latency,
                )
            )
        return batch

    # -- scoring existing critiques --------------------------------------------

    def score_texts(self, prompts: Sequence[str | Messages], critiques: Sequence[str]) -> list[float]:
        """p_yes of existing critiques, batched: cut after the last verdict question
        (or append it) exactly as :func:`reference_p_yes` does, one forward pass per
        batch reading only the last position."""
        texts = [prompt_text(p, self.tokenizer) for p in prompts]
        if len(texts) != len(critiques):
            raise ValueError("prompts and critiques must have the same length")
        contexts = [p + scoring_context(c)[0] for p, c in zip(texts, critiques, strict=True)]
        return self._score_contexts(contexts)

    def _score_contexts(self, texts: list[str]) -> list[float]:
        import torch

        encoded = [encode_prompt(self.tokenizer, t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: -len(encoded[i]))
        out: list[float] = [0.0] * len(texts)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            input_ids, mask = self._left_pad([encoded[i] for i in chunk])
            # Positions must ignore the left padding to match the unpadded pass.
            position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
            kwargs = {"logits_to_keep": 1} if self._logits_to_keep else {}
            with torch.inference_mode():
                logits = self.model(
                    input_ids=input_ids, attention_mask=mask, position_ids=position_ids, **kwargs
                ).logits[:, -1, :]
            pairs = logits[:, [self.yes_id, self.no_id]].float().tolist()
            for i, (l_yes, l_no) in zip(chunk, pairs, strict=True):
                out[i] = p_yes_from_logits(l_yes, l_no)
        return out

    def reference_p_yes(self, prompt: str, critique: str, occurrence: str = "last") -> float:
        """The authors' one-pass-per-critique reading (see :mod:`..reference`)."""
        return reference_p_yes(
            self.model,
            self.tokenizer,
            prompt,
            critique,
            occurrence=occurrence,
            token_ids=(self.yes_id, self.no_id),
        )

    def close(self) -> None:
        import torch

        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
