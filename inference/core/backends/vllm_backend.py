"""vLLM offline engine, p_yes read from the sampling pass's log-probs.

Written against vLLM's documented offline API: ``LLM(model, ...)``,
``SamplingParams(n, temperature, top_p, max_tokens, logprobs, seed)``,
``llm.generate(prompts, sampling_params)`` returning ``RequestOutput`` objects whose
``outputs`` carry ``text``, ``token_ids``, ``finish_reason`` and ``logprobs`` (one
``{token_id: Logprob}`` dict per generated token: the top-``logprobs`` entries plus
the sampled one). vLLM (V1) returns raw log-probs, before temperature and top-p,
and since log-probs differ from logits by a per-position constant,
``softmax([lp_yes, lp_no])`` is the R-PRM p_yes.

For each critique the generated ids are scanned for positions right after the
verdict question; the last one is used. If " Yes" or " No" is missing from that
position's top log-probs, the missing one is bounded by the smallest listed
log-prob and the completion is marked ``extra["p_yes_bound"] = True``. Critiques
without the question get the fallback: one more batched ``generate`` with
``max_tokens=1`` over prompt + cut/extended critique, cheap thanks to prefix caching.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from ..prompts import Messages, prompt_text
from ..scoring import (
    VerdictQuestionDetector,
    encode_prompt,
    p_yes_from_logits,
    scoring_context,
    verdict_token_ids,
)
from .base import BackendUnavailable, Completion, Sampling, fallback_contexts, repeat_greedy


# The parts of vLLM's documented offline API this backend uses (vLLM itself is imported
# only when a backend is built: it is a heavy, CUDA-only ML import).
class _CompletionOutput(Protocol):
    @property
    def text(self) -> str: ...
    @property
    def token_ids(self) -> Sequence[int]: ...
    @property
    def finish_reason(self) -> str | None: ...
    @property
    def logprobs(self) -> Sequence[Mapping[int, Any]] | None: ...  # {token_id: Logprob} per token


class _RequestOutput(Protocol):
    @property
    def prompt_token_ids(self) -> Sequence[int] | None: ...
    @property
    def outputs(self) -> Sequence[_CompletionOutput]: ...


class _LLM(Protocol):
    def generate(
        self, prompts: Sequence[dict[str, list[int]]], sampling_params: Any, *, use_tqdm: bool = ...
    ) -> Sequence[_RequestOutput]: ...

    def get_tokenizer(self) -> Any: ...


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def _import_vllm() -> ModuleType:
    try:
        import vllm  # heavy ML import, deferred to building a backend
    except ImportError as exc:
        raise BackendUnavailable(
            "vLLM is not installed: install the project's 'vllm' extra on a CUDA machine "
            "(pip install -e '.[vllm]') or use the transformers / openai backend"
        ) from exc
    module: ModuleType = vllm  # not installed where mypy runs: typed by the Protocols above
    return module


def _logprob_value(entry: Any) -> float:
    return float(getattr(entry, "logprob", entry))


def p_yes_from_top_logprobs(top: Mapping[int, Any], yes_id: int, no_id: int) -> tuple[float, bool] | None:
    """(p_yes, bounded) from one position's top log-probs, or None if both are absent.

    ``bounded`` is True when one of the two tokens was outside the returned top-k and
    its log-prob was replaced by the smallest listed value (an upper bound).
    """
    if not top:
        return None
    values = {int(k): _logprob_value(v) for k, v in top.items()}
    if yes_id not in values and no_id not in values:
        return None
    floor = min(values.values())
    l_yes = values.get(yes_id, floor)
    l_no = values.get(no_id, floor)
    return p_yes_from_logits(l_yes, l_no), (yes_id not in values or no_id not in values)


def read_inline_p_yes(
    detector: VerdictQuestionDetector,
    prompt_ids: Sequence[int],
    token_ids: Sequence[int],
    logprobs: Sequence[Mapping[int, Any]] | None,
    yes_id: int,
    no_id: int,
) -> tuple[float, bool, int] | None:
    """p_yes at the last verdict question inside a generated sequence.

    ``logprobs[j]`` is the distribution of generated token ``j``; the question may end
    inside the prompt tail (position 0) or after any generated token. Returns
    ``(p_yes, bounded, j)`` or None when no usable position exists.
    """
    if not logprobs:
        return None
    tail = list(prompt_ids[-detector.window :])
    seq = tail + [int(t) for t in token_ids]
    for p in reversed(detector.positions(seq, start=len(tail))):
        j = p - len(tail)
        if j < len(logprobs) and logprobs[j]:
            read = p_yes_from_top_logprobs(logprobs[j], yes_id, no_id)
            if read is not None:
                return read[0], read[1], j
        break  # only the last question counts; never fall back to an earlier one
    return None


class VLLMBackend:
    name = "vllm"

    def __init__(
        self,
        model: str | Path,
        tensor_parallel_size: int = 1,
        enable_prefix_caching: bool = True,
        gpu_memory_utilization: float = 0.9,
        logprobs: int = 20,
        **llm_kwargs: Any,
    ) -> None:
        vllm = _import_vllm()
        self.model_name = str(model)
        self.logprobs = logprobs
        self.llm: _LLM | None = vllm.LLM(
            model=self.model_name,
            tensor_parallel_size=tensor_parallel_size,
            enable_prefix_caching=enable_prefix_caching,
            gpu_memory_utilization=gpu_memory_utilization,
            **llm_kwargs,
        )
        self.tokenizer = self._engine().get_tokenizer()
        self.yes_id, self.no_id = verdict_token_ids(self.tokenizer)
        self.detector = VerdictQuestionDetector(self.tokenizer)
        self._SamplingParams = vllm.SamplingParams

    def _engine(self) -> _LLM:
        if self.llm is None:
            raise BackendUnavailable("this vLLM backend was closed")
        return self.llm

    def _token_prompts(self, texts: Sequence[str]) -> list[dict[str, list[int]]]:
        # Token prompts: the same BOS rule as the transformers backend (vLLM would
        # add special tokens to text prompts that already carry them).
        return [{"prompt_token_ids": encode_prompt(self.tokenizer, t)} for t in texts]

    def generate(
        self, prompts: Sequence[str | Messages], n: int, sampling: Sampling
    ) -> list[list[Completion]]:
        # Chat messages go through the model's own chat template, as the authors' inference does.
        texts = [prompt_text(p, self.tokenizer) for p in prompts]
        if n < 1:
            raise ValueError("n must be >= 1")
        greedy = sampling.temperature == 0
        params = self._SamplingParams(
            n=1 if greedy else n,
            temperature=sampling.temperature,
            top_p=1.0 if greedy else sampling.top_p,
            max_tokens=sampling.max_new_tokens,
            logprobs=self.logprobs,
            seed=sampling.seed,
        )
        start = time.perf_counter()
        outputs = self._engine().generate(self._token_prompts(texts), params, use_tqdm=False)
        latency = time.perf_counter() - start

        results: list[list[Completion]] = []
        pending: list[tuple[int, int]] = []
        for i, request in enumerate(outputs):
            prompt_ids = list(request.prompt_token_ids or [])
            row: list[Completion] = []
            for sample in request.outputs:
                read = read_inline_p_yes(
                    self.detector, prompt_ids, sample.token_ids, sample.logprobs, self.yes_id, self.no_id
                )
                completion = Completion(
                    text=sample.text,
                    prompt_tokens=len(prompt_ids),
                    completion_tokens=len(sample.token_ids),
                    p_yes=read[0] if read else None,
                    p_yes_source="inline" if read else None,
                    latency_s=latency,
                    finish_reason=sample.finish_reason,
                    extra={"p_yes_bound": read[1], "verdict_step": read[2]} if read else {},
                )
                row.append(completion)
                if read is None:
                    pending.append((i, len(row) - 1))
            results.append(row)

        if pending:
            contexts, sources = fallback_contexts(results, pending, texts)
            for (i, j), (p, bounded), source in zip(
                pending, self._score_contexts(contexts), sources, strict=True
            ):
                c = results[i][j]
                c.p_yes, c.p_yes_source = p, ("fallback" if p is not None else None)
                c.extra.update(
                    p_yes_bound=bounded, fallback="reread" if source == "verdict_question" else "appended"
                )

        return repeat_greedy(results, n) if greedy and n > 1 else results

    def _score_contexts(self, texts: Sequence[str]) -> list[tuple[float | None, bool]]:
        """One batched 1-token pass; the prompt prefixes hit vLLM's prefix cache."""
        params = self._SamplingParams(n=1, temperature=0.0, max_tokens=1, logprobs=self.logprobs)
        outputs = self._engine().generate(self._token_prompts(texts), params, use_tqdm=False)
        scored: list[tuple[float | None, bool]] = []
        for request in outputs:
            logprobs = request.outputs[0].logprobs or []
            read = p_yes_from_top_logprobs(logprobs[0], self.yes_id, self.no_id) if logprobs else None
            scored.append(read if read is not None else (None, False))
        return scored

    def score_texts(self, prompts: Sequence[str | Messages], critiques: Sequence[str]) -> list[float | None]:
        """p_yes of existing critiques (same cut/append rule as the transformers backend)."""
        texts = [prompt_text(p, self.tokenizer) for p in prompts]
        if len(texts) != len(critiques):
            raise ValueError("prompts and critiques must have the same length")
        contexts = [p + scoring_context(c)[0] for p, c in zip(texts, critiques, strict=True)]
        return [p for p, _bounded in self._score_contexts(contexts)]

    def close(self) -> None:
        self.llm = None
        try:
            import torch  # heavy ML import, present wherever vLLM runs

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
