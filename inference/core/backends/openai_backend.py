"""Backend for OpenAI-compatible HTTP servers: ``vllm serve``, ``transformers serve``, others.

One idea a module:

* ``openai_transport.py``: the SDK client on its loop thread, the concurrency cap, the
  deadlines (connect, first byte, total), cancel, and the errors (``kind``);
* ``openai_p_yes.py``: p_yes from inline log-probs, an extra pass, or ``/v1/systemone``;
* ``openai_tokens.py``: completions and their token counts from an answer's choices;
* here: what is sent (text or chat messages) and where (completions or chat), and
  generation.

Prompts and chat messages
    A prompt is a text or a list of chat messages. Messages are never flattened by
    hand: with the served model's tokenizer (``tokenizer_path``) and a mode other than
    ``"chat"`` they are rendered locally with its chat template (generation prompt
    added) and sent as a completion, which keeps per-token log-probs; otherwise they go
    as they are to ``/v1/chat/completions`` and the server applies the chat template.
    :meth:`OpenAIBackend.request_prompt` is that rule.

Mode
    ``mode="completions"`` posts the rendered prompt as-is to ``/v1/completions``
    (``prompt, n, temperature, top_p, max_tokens, logprobs, seed``). ``mode="chat"``
    posts it as one user message to ``/v1/chat/completions``. ``mode="auto"`` uses
    completions and switches to chat for good the first time the server answers
    404/405 there.

Generation
    A server that returns fewer than ``n`` choices (``transformers serve`` ignores
    ``n``) is asked again for the rest, with ``seed + k`` so seeded requests do not
    repeat the same sample; an answer with no choices at all is a bad answer
    (``OpenAIBackendError`` of kind ``bad_answer``). ``transformers serve`` samples only
    when the model's ``generation_config.json`` has ``"do_sample": true``; the backend
    logs a warning when all ``n > 1`` samples of a prompt come back identical.

Latency
    ``latency_s`` is the wall time of the HTTP request that produced the choice, retries
    included (shared by the choices of one request); the extra p_yes request is in
    ``extra["p_yes_latency_s"]``; ``extra["attempts"]`` counts the SDK's tries.

Deadlines and cancel: see ``openai_transport.py``. :meth:`OpenAIBackend.cancel` (any
thread) makes a blocked :meth:`OpenAIBackend.generate` raise ``BackendCancelled``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from ..prompts import Messages, apply_chat
from ..scoring import verdict_token_ids
from .base import Completion, Sampling
from .openai_p_yes import P_YES_VIA, PYes, PYesReader, as_messages
from .openai_tokens import completions_from
from .openai_transport import Deadlines, OpenAIBackendError, Response, Transport

logger = logging.getLogger(__name__)

T = TypeVar("T")

MODES = ("completions", "chat", "auto")


def _check_options(
    mode: str, p_yes_via: str, max_concurrency: int, top_logprobs: int, max_retries: int
) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if p_yes_via not in P_YES_VIA:
        raise ValueError(f"p_yes_via must be one of {P_YES_VIA}, got {p_yes_via!r}")
    if max_concurrency < 1:
        raise ValueError("max_concurrency must be >= 1")
    if top_logprobs < 1:
        raise ValueError("top_logprobs must be >= 1")
    if max_retries < 0:
        raise ValueError("max_retries must be >= 0")


def _load_tokenizer(tokenizer_path: str | Path) -> Any:
    """The served model's tokenizer; fails before any request when " Yes"/" No" are not single tokens."""
    from transformers import AutoTokenizer  # heavy ML import, deferred to the endpoints that need it

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_path), local_files_only=True)
    verdict_token_ids(tokenizer)
    return tokenizer


class OpenAIBackend:
    """:class:`~inference.core.backends.base.Backend` over an OpenAI-compatible server."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        max_concurrency: int = 8,
        timeout_s: float = 300.0,
        max_retries: int = 4,
        mode: str = "completions",
        top_logprobs: int = 20,
        tokenizer_path: str | Path | None = None,
        p_yes_via: str = "auto",
        extra_body: dict[str, Any] | None = None,
        connect_timeout_s: float = 10.0,
        total_timeout_s: float = 600.0,
    ) -> None:
        _check_options(mode, p_yes_via, max_concurrency, top_logprobs, max_retries)
        deadlines = Deadlines(float(connect_timeout_s), float(timeout_s), float(total_timeout_s))
        self.transport = Transport(
            base_url,
            api_key,
            max_concurrency=max_concurrency,
            max_retries=int(max_retries),
            deadlines=deadlines,
        )
        self.base_url = self.transport.base_url
        self.model = model
        self.max_concurrency = max_concurrency
        self.mode = mode
        self.top_logprobs = int(top_logprobs)
        self.extra_body = dict(extra_body or {})
        self.tokenizer_path = tokenizer_path
        # With the served model's tokenizer, callers render chat templates locally and
        # send plain completions (how `vllm serve` is meant to be driven for PRMs).
        self.tokenizer = _load_tokenizer(tokenizer_path) if tokenizer_path is not None else None
        self._resolved_mode: str | None = None if mode == "auto" else mode
        self.p_yes = PYesReader(
            self.transport, model, via=p_yes_via, top_logprobs=self.top_logprobs,
            extra_body=self.extra_body, mode_of=lambda: self._resolved_mode,
        )  # fmt: skip

    # ----- public API -------------------------------------------------------------

    def generate(self, prompts: list[str | Messages], n: int, sampling: Sampling) -> list[list[Completion]]:
        if n < 1:
            raise ValueError("n must be >= 1")
        if not prompts:
            return []
        sent = [self.request_prompt(p) for p in prompts]
        return self.transport.run(self._gather([self._generate_one(p, n, sampling) for p in sent]))

    def read_p_yes(self, items: list[tuple[str | Messages, str]]) -> list[PYes]:
        """p_yes of existing ``(prompt, critique)`` pairs by one extra pass each (no inline read)."""
        passes = [self.p_yes.extra_pass(self.request_prompt(p), c) for p, c in items]
        return self.transport.run(self._gather(passes))

    def request_prompt(self, prompt: str | Messages) -> str | Messages:
        """What is sent: text for ``/completions``, or messages for ``/chat/completions``.

        Messages become text only through the served model's own chat template (local
        tokenizer, generation prompt added), when completions log-probs are wanted.
        """
        if isinstance(prompt, str):
            return prompt
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]
        if self.tokenizer is not None and self.mode != "chat":
            return apply_chat(self.tokenizer, messages)
        return messages

    def cancel(self) -> int:
        """Cancel the calls in flight (from any thread); the blocked call raises BackendCancelled."""
        return self.transport.cancel()

    def close(self) -> None:
        self.transport.close()
        self.p_yes.reset_loop_state()

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- generation ----------------------------------------------------------------

    async def _gather(self, coros: list[Coroutine[Any, Any, T]]) -> list[T]:
        """Like asyncio.gather, but the first failure cancels the rest and is raised as is."""
        tasks = [asyncio.ensure_future(c) for c in coros]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _generate_one(self, prompt: str | Messages, n: int, sampling: Sampling) -> list[Completion]:
        out: list[Completion] = []
        while len(out) < n:
            mode, response = await self._request_choices(prompt, n - len(out), sampling, len(out))
            choices = sorted(response.data.get("choices") or [], key=lambda c: c.get("index", 0))
            if not choices:
                raise OpenAIBackendError(
                    f"POST {self.base_url}: response has no choices: {json.dumps(response.data)[:300]}",
                    url=self.base_url,
                    kind="bad_answer",
                )
            completions, has_logprobs = completions_from(mode, response, choices[: n - len(out)])
            if self.p_yes.wants_logprobs() and self.p_yes.server_has_logprobs is None:
                self.p_yes.server_has_logprobs = has_logprobs
            out.extend(completions)
        if n > 1 and sampling.temperature > 0 and len({c.text for c in out}) == 1:
            # transformers serve samples only if the model's generation_config has do_sample=true.
            self.p_yes.warn_once(
                "identical",
                f"{self.base_url}: all {n} samples of a prompt are identical at temperature "
                f"{sampling.temperature}; is the server sampling (do_sample in the model's generation_config)?",
            )
        await self._gather([self.p_yes.fill(prompt, c) for c in out])
        return out

    # ----- mode choice -----------------------------------------------------------------

    async def _request_choices(
        self, prompt: str | Messages, n: int, sampling: Sampling, seed_offset: int
    ) -> tuple[str, Response]:
        body: dict[str, Any] = {
            "model": self.model,
            "n": n,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_new_tokens,
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed + seed_offset
        logprobs = self.p_yes.wants_logprobs()
        if not isinstance(prompt, str):  # chat messages: only the server can apply the chat template
            return await self._request_choices_in("chat", body, prompt, logprobs)
        if self._resolved_mode is None:  # auto: completions until the server says it has none
            try:
                return await self._request_choices_in("completions", body, prompt, logprobs)
            except OpenAIBackendError as exc:
                if exc.status not in (404, 405):
                    raise
                logger.warning("%s; switching to /chat/completions", exc)
                self._resolved_mode = "chat"
        return await self._request_choices_in(self._resolved_mode, body, prompt, logprobs)

    async def _request_choices_in(
        self, mode: str, body: dict[str, Any], prompt: str | Messages, logprobs: bool
    ) -> tuple[str, Response]:
        if mode == "completions":
            body = {**body, "prompt": prompt}
            if logprobs:
                body["logprobs"] = self.top_logprobs
            response = await self.transport.completions(body, self.extra_body)
        else:
            body = {**body, "messages": as_messages(prompt)}
            if logprobs:
                body |= {"logprobs": True, "top_logprobs": self.top_logprobs}
            response = await self.transport.chat(body, self.extra_body)
        if self._resolved_mode is None and isinstance(prompt, str):
            self._resolved_mode = mode
        return mode, response
