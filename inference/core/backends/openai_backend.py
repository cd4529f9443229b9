"""Backend for OpenAI-compatible HTTP servers: ``vllm serve``, ``transformers serve``, others.

Transport
    The official ``openai`` SDK (``AsyncOpenAI``) sends every request: its
    ``completions`` and ``chat.completions`` resources (vLLM-only fields such as
    ``continue_final_message`` and the endpoint's ``extra_body`` go in the SDK's
    ``extra_body``), and its generic ``post`` for ``transformers serve``'s
    non-standard ``/v1/systemone``. The SDK does retries and timeouts; an
    ``asyncio.Semaphore`` caps the requests in flight at ``max_concurrency``. The
    client lives on the backend's own event-loop thread, so :meth:`OpenAIBackend.generate`
    is a plain blocking call from sync code, worker threads and code already inside a
    running event loop alike. Responses are read as the server's JSON, not as the SDK's
    models: vLLM's and transformers' log-prob layouts are read as they come.

Prompts and chat messages
    A prompt is a text or a list of chat messages (a chat template's system, few-shot
    pairs and user message). Messages are never flattened by hand: with the served
    model's tokenizer (``tokenizer_path``) and a mode other than ``"chat"`` they are
    rendered locally with its chat template (generation prompt added) and sent as a
    completion, which keeps per-token log-probs; otherwise they go as they are to
    ``/v1/chat/completions`` and the server applies the model's chat template.
    :meth:`OpenAIBackend.request_prompt` is that rule; the transport (``_call``)
    only carries the bodies built from it.

Generation
    ``mode="completions"`` posts the rendered prompt as-is to ``/v1/completions``
    (``prompt, n, temperature, top_p, max_tokens, logprobs, seed``). ``mode="chat"``
    posts it as one user message to ``/v1/chat/completions`` (the server applies its
    chat template). ``mode="auto"`` uses completions and switches to chat for good
    the first time the server answers 404/405 there. A server that returns fewer
    than ``n`` choices (``transformers serve`` ignores ``n``) is asked again for the
    rest, with ``seed + k`` so seeded requests do not repeat the same sample.
    ``transformers serve`` samples only when the model's ``generation_config.json``
    has ``"do_sample": true`` (it sets temperature/top_p but never do_sample); else
    every sample is the greedy one, and the backend logs a warning when all ``n > 1``
    samples of a prompt come back identical.

p_yes, ``p_yes_via="logprobs"``
    Read from the generated tokens' top log-probs at the token right after the
    verdict question (``source="inline"``). Token strings ``" Yes"``, ``"ĠYes"``,
    ``"▁Yes"`` (the same token in byte-level / sentencepiece spelling) are taken
    first; the bare ``"Yes"`` token only when no spaced form is in the top-k (servers
    whose tokenizer writes the answer without the space). Likewise for No. If only one
    of the two is in the top-k, the other's log-prob is at most the k-th largest
    top-k log-prob; that bound is used, so p_yes is a lower bound (Yes seen) or an
    upper bound (No seen), recorded in ``extra["p_yes_bound"]``.
    Fallback (``source="fallback"``), one extra request with ``max_tokens=1`` and
    log-probs: at ``prompt + critique[:end of verdict question]`` when the critique
    has the question but its token position could not be lined up with the text;
    at ``prompt + critique + FALLBACK_SUFFIX`` when it has no question, or neither
    token is in the top-k there. In chat mode the fallback continues the assistant
    message (vLLM's ``continue_final_message``); servers without it give p_yes=None.

p_yes, ``p_yes_via="systemone"`` (``transformers serve``)
    ``transformers serve`` returns no log-probs on any endpoint (its completions and
    chat handlers list ``logprobs``/``top_logprobs``/``n`` as accepted but ignored).
    Its ``/v1/systemone`` endpoint answers a yes/no ("noul") question with
    ``softmax([l_a, l_b])[0]`` over the next-token logits of two label tokens after a
    templated prompt. Started with ``--decision-config`` pointing at the file written
    by :func:`write_decision_config` (labels " Yes"/" No", template = the text as-is,
    control tokens kept), that is exactly the R-PRM p_yes at the end of the text sent:
    ``prompt + critique[:end of verdict question]``, or ``prompt + critique +
    FALLBACK_SUFFIX`` (``source="fallback"``). Before first use the backend checks
    that the server's template is the identity (``/v1/systemone`` input tokens equal
    ``/v1/completions`` prompt tokens for the same text); the labels cannot be seen
    from outside, so the decision config is the operator's responsibility.
    Completions mode only (chat mode would need the server's rendered text).

``p_yes_via="auto"`` requests log-probs and, if the server returns none, uses
systemone when the check passes; otherwise p_yes is None with the reason in
``extra["p_yes_error"]`` (logged once). ``"none"`` never reads p_yes.

Token counts
    ``prompt_tokens`` of every choice is ``usage.prompt_tokens`` of its request (the
    prompt is shared, servers count it once). ``completion_tokens`` is the number of
    log-prob entries of the choice when present (exact); otherwise the request's
    ``usage.completion_tokens`` itself for a single choice, or split over the choices
    in proportion to their text length (largest remainder, sums to the total), flagged
    ``extra["completion_tokens_estimated"]``. Extra p_yes requests are not counted in
    the completion; they are in ``extra["p_yes_prompt_tokens"]``.

Latency
    ``latency_s`` is the wall time of the HTTP request that produced the choice,
    retries and waits for a concurrency slot included (shared by the choices of one
    request); the extra p_yes request is in ``extra["p_yes_latency_s"]``;
    ``extra["attempts"]`` counts the SDK's tries.

Errors
    The SDK retries connect errors, timeouts (``timeout_s`` for each of connect, read,
    write and pool wait, per attempt), 408, 409, 429 and 5xx ``max_retries`` times: it
    waits ``Retry-After`` (or ``retry-after-ms``) when the server sends one of at most two
    minutes, else 0.5 s doubling up to 8 s with jitter. Other statuses fail at once. Every
    failure is raised as :class:`OpenAIBackendError`, naming the URL, the attempts, and
    the status and body when there is one (the scoring API answers 502 for a refusal,
    503 otherwise). ``backoff``/``max_backoff`` are accepted for stored endpoint options
    but no longer used: the SDK's own backoff applies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx2  # the openai SDK's own HTTP library (a dependency of it)
from openai import APIConnectionError, APIStatusError, APITimeoutError, AsyncOpenAI, Omit

from ..prompts import Messages, apply_chat
from ..scoring import FALLBACK_SUFFIX, p_yes_from_logits, verdict_token_ids
from ..verdict import VERDICT_QUESTION, verdict_question_end
from .base import Completion, Sampling

logger = logging.getLogger(__name__)

T = TypeVar("T")

MODES = ("completions", "chat", "auto")
P_YES_VIA = ("logprobs", "systemone", "auto", "none")

# Decision config for `transformers serve --decision-config`: /v1/systemone then reads
# softmax(l(" Yes"), l(" No")) right after the text sent, with no prompt around it.
DECISION_CONFIG: dict[str, Any] = {
    "labels": {"noul": [" Yes", " No"]},
    "chat_template": "{{ state }}",
    # Keep <|im_start|> etc. in the text as control tokens, as /v1/completions does.
    "sanitize_control_tokens": False,
}

# Spellings of the answer tokens, best first: the spaced token (as decoded text,
# byte-level BPE piece, sentencepiece piece), then the bare word.
YES_TOKENS = (" Yes", "ĠYes", "▁Yes", "Yes")
NO_TOKENS = (" No", "ĠNo", "▁No", "No")

_SYSTEMONE_PATH = "/systemone"
_SYSTEMONE_QUESTION = {"verdict": {"type": "noul"}}


def write_decision_config(path: str | Path) -> Path:
    """Write :data:`DECISION_CONFIG` as JSON for ``transformers serve --decision-config``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(DECISION_CONFIG, indent=2) + "\n", encoding="utf-8")
    return path


class OpenAIBackendError(RuntimeError):
    """A request failed for good; the message names the URL (and status)."""

    def __init__(self, message: str, *, url: str, status: int | None = None, body: str | None = None):
        super().__init__(message)
        self.url = url
        self.status = status
        self.body = body


class _Unsupported(Exception):
    """The server lacks an optional capability (reason in args[0])."""


@dataclass
class _Response:
    data: dict
    latency_s: float
    attempts: int


@dataclass
class PYes:
    """One yes-probability reading; ``detail`` goes into ``Completion.extra``."""

    p_yes: float | None
    source: str | None
    detail: dict = field(default_factory=dict)


def normalise_base_url(base_url: str) -> str:
    """``http://host:8000`` -> ``http://host:8000/v1``; a URL with another path is kept."""
    url = base_url.rstrip("/")
    if urlsplit(url).path in ("", "/"):
        url += "/v1"
    return url


def read_top_logprobs(top: dict[str, float], k: int) -> PYes:
    """p_yes from one position's ``{token: logprob}`` top-k (see module docstring)."""
    yes = next((t for t in YES_TOKENS if t in top), None)
    no = next((t for t in NO_TOKENS if t in top), None)
    if yes is None and no is None:
        return PYes(None, None, {"p_yes_error": "neither Yes nor No in the top log-probs"})
    detail: dict[str, Any] = {"yes_token": yes, "no_token": no}
    if yes is not None and no is not None:
        return PYes(p_yes_from_logits(top[yes], top[no]), None, detail)
    # The absent token is not in the top-k, so its log-prob is <= the k-th largest.
    # (vLLM may add the sampled token as a (k+1)-th entry: hence k-th, not min.)
    values = sorted(top.values(), reverse=True)
    bound = values[min(k, len(values)) - 1]
    if yes is not None:
        detail["p_yes_bound"] = "lower"
        return PYes(p_yes_from_logits(top[yes], bound), None, detail)
    detail["p_yes_bound"] = "upper"
    return PYes(p_yes_from_logits(bound, top[no]), None, detail)


def _token_index_at(pieces: list[str] | list[bytes], text: str | bytes, end: int) -> int | None:
    """Index of the token that starts exactly at ``text[end]`` (pieces concatenate to text)."""
    pos = 0
    for i, piece in enumerate(pieces):
        if pos == end:
            return i if text[:end] == type(text)().join(pieces[:i]) else None
        pos += len(piece)
        if pos > end:
            return None  # the question ends inside a token
    return None  # nothing generated after the question


def _split_usage(total: int, texts: list[str]) -> list[int]:
    """Split ``total`` tokens over choices in proportion to text length, summing to total."""
    weights = [max(len(t), 1) for t in texts]
    raw = [total * w / sum(weights) for w in weights]
    counts = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


class _LoopThread:
    """An event loop on a daemon thread: callable from sync code and from inside other loops."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="openai-backend", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class OpenAIBackend:
    """:class:`~inference.core.backends.base.Backend` over an OpenAI-compatible server."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        max_concurrency: int = 8,
        timeout_s: float = 600.0,
        max_retries: int = 4,
        backoff: float | None = None,
        mode: str = "completions",
        top_logprobs: int = 20,
        tokenizer_path: str | Path | None = None,
        p_yes_via: str = "auto",
        max_backoff: float | None = None,
        extra_body: dict | None = None,
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
        if backoff is not None or max_backoff is not None:
            logger.warning(
                "OpenAIBackend: backoff/max_backoff are ignored; the openai SDK backs off "
                "(Retry-After when sent, else 0.5 s doubling up to 8 s)"
            )
        self.base_url = normalise_base_url(base_url)
        self.model = model
        self.api_key = api_key
        self.max_concurrency = max_concurrency
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.mode = mode
        self.top_logprobs = int(top_logprobs)
        self.p_yes_via = p_yes_via
        self.extra_body = dict(extra_body or {})
        self.tokenizer_path = tokenizer_path
        # With the served model's tokenizer, callers render chat templates locally and
        # send plain completions (how `vllm serve` is meant to be driven for PRMs).
        self.tokenizer = None
        if tokenizer_path is not None:
            # Fail before any request when " Yes"/" No" are not single tokens.
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_path), local_files_only=True)
            verdict_token_ids(self.tokenizer)
        self._resolved_mode: str | None = None if mode == "auto" else mode
        self._server_has_logprobs: bool | None = None
        self._systemone: bool | str | None = None  # True, or the reason it cannot be used
        self._systemone_lock: asyncio.Lock | None = None
        self._runner: _LoopThread | None = None
        self._client: AsyncOpenAI | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    # ----- public API -------------------------------------------------------------

    def generate(self, prompts: list[str | Messages], n: int, sampling: Sampling) -> list[list[Completion]]:
        if n < 1:
            raise ValueError("n must be >= 1")
        if not prompts:
            return []
        return self._run(self._generate_all([self.request_prompt(p) for p in prompts], n, sampling))

    def read_p_yes(self, items: list[tuple[str | Messages, str]]) -> list[PYes]:
        """p_yes of existing ``(prompt, critique)`` pairs by one extra pass each (no inline read)."""
        return self._run(
            self._gather([self._p_yes_extra_pass(self.request_prompt(p), c) for p, c in items])
        )

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

    def close(self) -> None:
        with self._lock:
            runner, self._runner = self._runner, None
        if runner is None:
            return
        if self._client is not None:
            runner.run(self._client.close())
        self._client = None
        self._semaphore = None
        self._systemone_lock = None
        runner.stop()

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- plumbing ----------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            if self._runner is None:
                self._runner = _LoopThread()
            runner = self._runner
        return runner.run(coro)

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

    def _ensure_client(self) -> None:
        """Create the SDK client, semaphore and lock on the loop thread (they belong to its loop)."""
        if self._client is None:
            # The one place the endpoint's base URL reaches the transport.
            self._client = AsyncOpenAI(
                base_url=self.base_url,
                # Always explicit, so OPENAI_API_KEY from the environment never goes to this server;
                # without a key the Authorization header is omitted per request (_headers).
                api_key=self.api_key or "unused",
                timeout=self.timeout_s,
                max_retries=self.max_retries,
                default_headers={"OpenAI-Organization": Omit(), "OpenAI-Project": Omit()},
            )
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
            self._systemone_lock = asyncio.Lock()

    @property
    def _headers(self) -> dict[str, Any] | None:
        return None if self.api_key else {"Authorization": Omit()}

    async def _completions(self, params: dict, extra_body: dict | None) -> _Response:
        """``/completions``: standard fields in ``params``, server-specific ones in ``extra_body``."""

        async def send(client: AsyncOpenAI) -> httpx2.Response:
            raw = await client.completions.with_raw_response.create(
                **params, extra_body=extra_body or None, extra_headers=self._headers
            )
            return raw.http_response

        return await self._call("/completions", send)

    async def _chat(self, params: dict, extra_body: dict | None) -> _Response:
        async def send(client: AsyncOpenAI) -> httpx2.Response:
            raw = await client.chat.completions.with_raw_response.create(
                **params, extra_body=extra_body or None, extra_headers=self._headers
            )
            return raw.http_response

        return await self._call("/chat/completions", send)

    async def _post_systemone(self, body: dict) -> _Response:
        """``transformers serve``'s ``/v1/systemone`` has no SDK resource: the SDK's generic POST."""

        async def send(client: AsyncOpenAI) -> httpx2.Response:
            options = {"headers": self._headers} if self._headers else {}
            return await client.post(_SYSTEMONE_PATH, cast_to=httpx2.Response, body=body, options=options)

        return await self._call(_SYSTEMONE_PATH, send)

    async def _call(self, path: str, send: Callable[[AsyncOpenAI], Awaitable[httpx2.Response]]) -> _Response:
        """One request under the concurrency cap; the SDK retries, SDK errors become OpenAIBackendError."""
        self._ensure_client()
        assert self._client is not None and self._semaphore is not None
        url = f"{self.base_url}{path}"
        started = time.perf_counter()
        try:
            async with self._semaphore:
                response = await send(self._client)
        except APITimeoutError as exc:
            raise OpenAIBackendError(
                f"POST {url} timed out after {self.timeout_s:g} s ({_attempts(exc.request)} attempt(s))",
                url=url,
            ) from exc
        except APIStatusError as exc:
            text = exc.response.text
            raise OpenAIBackendError(
                f"POST {url} failed after {_attempts(exc.response.request)} attempt(s): "
                f"HTTP {exc.status_code}: {text[:500]}",
                url=url,
                status=exc.status_code,
                body=text,
            ) from exc
        except APIConnectionError as exc:
            cause = exc.__cause__
            problem = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
            raise OpenAIBackendError(
                f"POST {url} failed after {_attempts(exc.request)} attempt(s): {problem}", url=url
            ) from exc
        try:
            data = response.json()
        except ValueError as exc:
            raise OpenAIBackendError(
                f"POST {url}: HTTP {response.status_code} with a body that is not JSON: {response.text[:300]!r}",
                url=url,
                status=response.status_code,
                body=response.text,
            ) from exc
        return _Response(data, time.perf_counter() - started, _attempts(response.request))

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message)

    # ----- generation ----------------------------------------------------------------

    async def _generate_all(self, prompts: list[str], n: int, sampling: Sampling) -> list[list[Completion]]:
        return await self._gather([self._generate_one(p, n, sampling) for p in prompts])

    def _wants_logprobs(self) -> bool:
        return self.p_yes_via == "logprobs" or (
            self.p_yes_via == "auto" and self._server_has_logprobs is not False
        )

    async def _request_choices(self, prompt: str | Messages, n: int, sampling: Sampling, seed_offset: int) -> tuple:
        body: dict[str, Any] = {
            "model": self.model,
            "n": n,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_new_tokens,
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed + seed_offset
        logprobs = self._wants_logprobs()
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

    async def _request_choices_in(self, mode: str, body: dict, prompt: str | Messages, logprobs: bool) -> tuple:
        if mode == "completions":
            body = {**body, "prompt": prompt}
            if logprobs:
                body["logprobs"] = self.top_logprobs
            response = await self._completions(body, self.extra_body)
        else:
            body = {**body, "messages": _as_messages(prompt)}
            if logprobs:
                body |= {"logprobs": True, "top_logprobs": self.top_logprobs}
            response = await self._chat(body, self.extra_body)
        if self._resolved_mode is None and isinstance(prompt, str):
            self._resolved_mode = mode
        return mode, response

    async def _generate_one(self, prompt: str | Messages, n: int, sampling: Sampling) -> list[Completion]:
        out: list[Completion] = []
        while len(out) < n:
            mode, response = await self._request_choices(prompt, n - len(out), sampling, len(out))
            choices = sorted(response.data.get("choices") or [], key=lambda c: c.get("index", 0))
            if not choices:
                raise OpenAIBackendError(
                    f"POST {self.base_url}: response has no choices: {json.dumps(response.data)[:300]}",
                    url=self.base_url,
                )
            out.extend(self._completions_from(mode, prompt, response, choices[: n - len(out)]))
        if n > 1 and sampling.temperature > 0 and len({c.text for c in out}) == 1:
            # transformers serve samples only if the model's generation_config has do_sample=true.
            self._warn_once(
                "identical",
                f"{self.base_url}: all {n} samples of a prompt are identical at temperature "
                f"{sampling.temperature}; is the server sampling (do_sample in the model's generation_config)?",
            )
        await self._gather([self._fill_p_yes(prompt, c) for c in out])
        return out

    def _completions_from(self, mode: str, prompt: str | Messages, response: _Response, choices: list[dict]) -> list:
        usage = response.data.get("usage") or {}
        texts, token_lists = [], []
        for choice in choices:
            if mode == "completions":
                texts.append(choice.get("text") or "")
                lp = choice.get("logprobs") or {}
                token_lists.append(lp.get("tokens") if lp.get("top_logprobs") is not None else None)
            else:
                texts.append((choice.get("message") or {}).get("content") or "")
                content = (choice.get("logprobs") or {}).get("content")
                token_lists.append([c.get("token", "") for c in content] if content is not None else None)
        if self._wants_logprobs() and self._server_has_logprobs is None:
            self._server_has_logprobs = any(t is not None for t in token_lists)
        estimated = False
        if all(t is not None for t in token_lists):
            completion_tokens = [len(t) for t in token_lists]
        elif len(choices) == 1:
            completion_tokens = [int(usage.get("completion_tokens") or 0)]
        else:
            completion_tokens = _split_usage(int(usage.get("completion_tokens") or 0), texts)
            estimated = True
        result = []
        for choice, text, count in zip(choices, texts, completion_tokens, strict=True):
            extra: dict[str, Any] = {"mode": mode, "attempts": response.attempts}
            if estimated:
                extra["completion_tokens_estimated"] = True
            if not usage:
                extra["usage_missing"] = True
            completion = Completion(
                text=text,
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=count,
                p_yes=None,
                latency_s=response.latency_s,
                finish_reason=choice.get("finish_reason"),
                extra=extra,
            )
            completion.extra["_choice"] = choice  # read by _fill_p_yes, then dropped
            result.append(completion)
        return result

    # ----- p_yes ----------------------------------------------------------------------

    async def _fill_p_yes(self, prompt: str | Messages, completion: Completion) -> None:
        choice = completion.extra.pop("_choice")
        if self.p_yes_via == "none":
            return
        reading = self._inline_p_yes(completion.extra["mode"], completion.text, choice)
        if reading is None or reading.p_yes is None:
            appended = reading is not None  # question found and lined up, but no Yes/No in top-k
            reading = await self._p_yes_extra_pass(prompt, completion.text, appended=appended)
        completion.p_yes = reading.p_yes
        completion.p_yes_source = reading.source if reading.p_yes is not None else None
        completion.extra.update(reading.detail)

    def _inline_p_yes(self, mode: str, text: str, choice: dict) -> PYes | None:
        """Read p_yes from the choice's own log-probs; None when that position cannot be found."""
        end = verdict_question_end(text)
        if end is None:
            return None
        if mode == "completions":
            lp = choice.get("logprobs") or {}
            tokens, tops = lp.get("tokens"), lp.get("top_logprobs")
            if not tokens or not tops:
                return None
            index = _token_index_at(list(tokens), text, end)
            top = tops[index] if index is not None and index < len(tops) else None
        else:
            content = (choice.get("logprobs") or {}).get("content")
            if not content:
                return None
            if all(c.get("bytes") is not None for c in content):  # exact even for split characters
                pieces: list = [bytes(c["bytes"]) for c in content]
                index = _token_index_at(pieces, text.encode("utf-8"), len(text[:end].encode("utf-8")))
            else:
                index = _token_index_at([c.get("token", "") for c in content], text, end)
            top = None
            if index is not None:
                top = {}
                for entry in content[index].get("top_logprobs") or []:
                    token, value = entry.get("token"), entry.get("logprob")
                    if token is not None and value is not None:
                        top[token] = max(value, top.get(token, value))
        if not top:
            return None
        reading = read_top_logprobs(top, self.top_logprobs)
        reading.source = "inline"
        reading.detail["p_yes_position"] = "verdict_question"
        return reading

    async def _p_yes_extra_pass(self, prompt: str | Messages, critique: str, appended: bool = False) -> PYes:
        """One extra next-token read: at the critique's verdict question, or after an appended one."""
        end = None if appended else verdict_question_end(critique)
        if end is not None:
            continuation, position = critique[:end], "verdict_question"
        else:
            continuation, position = critique + FALLBACK_SUFFIX, "appended_question"
        via = await self._extra_pass_via()
        if isinstance(via, PYes):
            return via
        try:
            if via == "systemone":
                if not isinstance(prompt, str):
                    raise _Unsupported("/systemone reads text; these chat messages were sent without a tokenizer")
                reading = await self._systemone_p_yes(prompt + continuation)
            else:
                reading = await self._logprobs_p_yes(prompt, continuation)
        except _Unsupported as exc:
            return PYes(None, None, {"p_yes_error": str(exc)})
        if reading.detail.pop("no_logprobs", False) and self.p_yes_via == "auto":
            # First sign (e.g. read_p_yes before any generate) that the server has no log-probs.
            self._server_has_logprobs = False
            return await self._p_yes_extra_pass(prompt, critique, appended)
        if reading.p_yes is None and position == "verdict_question":
            # The model's own question position has no Yes/No in its top-k: ask again after the critique.
            return await self._p_yes_extra_pass(prompt, critique, appended=True)
        reading.source = "fallback" if reading.p_yes is not None else None
        reading.detail["p_yes_position"] = position
        reading.detail["p_yes_via"] = via
        return reading

    async def _extra_pass_via(self) -> str | PYes:
        """'logprobs' or 'systemone' for the extra pass, or a PYes(None) explaining why neither."""
        if self.p_yes_via == "none":
            return PYes(None, None, {})
        if self.p_yes_via == "logprobs" or (
            self.p_yes_via == "auto" and self._server_has_logprobs is not False
        ):
            return "logprobs"
        reason = await self._check_systemone()
        if reason is True:
            return "systemone"
        if self.p_yes_via == "systemone":
            raise OpenAIBackendError(f"cannot read p_yes via /systemone: {reason}", url=self.base_url)
        self._warn_once(
            "no-p-yes", f"{self.base_url}: server returns no log-probs and {reason}; p_yes will be None"
        )
        return PYes(None, None, {"p_yes_error": f"server returns no log-probs and {reason}"})

    async def _logprobs_p_yes(self, prompt: str | Messages, continuation: str) -> PYes:
        mode = "chat" if not isinstance(prompt, str) else (self._resolved_mode or "completions")
        if mode == "completions":
            body = {
                "model": self.model,
                "prompt": prompt + continuation,
                "max_tokens": 1,
                "temperature": 0.0,
                "logprobs": self.top_logprobs,
            }
            response = await self._completions(body, self.extra_body)
            choice = (response.data.get("choices") or [{}])[0]
            if not choice.get("logprobs"):
                return PYes(None, None, {"p_yes_error": "server returned no log-probs", "no_logprobs": True})
            tops = choice["logprobs"].get("top_logprobs")
            top = tops[0] if tops else None
        else:
            body = {
                "model": self.model,
                "messages": [*_as_messages(prompt), {"role": "assistant", "content": continuation}],
                "max_tokens": 1,
                "temperature": 0.0,
                "logprobs": True,
                "top_logprobs": self.top_logprobs,
            }
            # vLLM extensions: read the next token of the assistant message itself.
            vllm = {"continue_final_message": True, "add_generation_prompt": False}
            try:
                response = await self._chat(body, {**vllm, **self.extra_body})
            except OpenAIBackendError as exc:
                if exc.status is not None and 400 <= exc.status < 500:
                    raise _Unsupported(f"chat fallback (continue_final_message) refused: {exc}") from exc
                raise
            choice = (response.data.get("choices") or [{}])[0]
            if not choice.get("logprobs"):
                return PYes(None, None, {"p_yes_error": "server returned no log-probs", "no_logprobs": True})
            content = choice["logprobs"].get("content") or []
            top = (
                {e["token"]: e["logprob"] for e in (content[0].get("top_logprobs") or [])}
                if content
                else None
            )
        if not top:
            return PYes(None, None, {"p_yes_error": "extra pass returned no log-probs"})
        reading = read_top_logprobs(top, self.top_logprobs)
        reading.detail["p_yes_latency_s"] = response.latency_s
        usage = response.data.get("usage") or {}
        if "prompt_tokens" in usage:
            reading.detail["p_yes_prompt_tokens"] = usage["prompt_tokens"]
        return reading

    async def _systemone_p_yes(self, text: str) -> PYes:
        body = {"model": self.model, "state": text, "questions": _SYSTEMONE_QUESTION}
        response = await self._post_systemone(body)
        try:
            p = float(response.data["answers"]["verdict"]["noul"])
        except (KeyError, TypeError, ValueError) as exc:
            raise OpenAIBackendError(
                f"POST {self.base_url}{_SYSTEMONE_PATH}: unexpected answer {json.dumps(response.data)[:300]}",
                url=self.base_url + _SYSTEMONE_PATH,
            ) from exc
        detail: dict[str, Any] = {"p_yes_latency_s": response.latency_s}
        if "input_tokens" in (response.data.get("usage") or {}):
            detail["p_yes_prompt_tokens"] = response.data["usage"]["input_tokens"]
        return PYes(p, None, detail)

    async def _check_systemone(self) -> bool | str:
        """True when /systemone reads the text as-is, else the reason it cannot be used (cached)."""
        self._ensure_client()
        assert self._systemone_lock is not None
        async with self._systemone_lock:
            if self._systemone is not None:
                return self._systemone
            if (self._resolved_mode or "completions") != "completions":
                self._systemone = "/systemone is only used in completions mode"
                return self._systemone
            # Same text both ways: identical token counts mean the decision template adds nothing.
            probe = VERDICT_QUESTION
            try:
                s1 = await self._post_systemone({"model": self.model, "state": probe, "questions": _SYSTEMONE_QUESTION})
                c = await self._completions({"model": self.model, "prompt": probe, "max_tokens": 1}, None)
            except OpenAIBackendError as exc:
                if exc.status is None or exc.status >= 500:
                    raise
                self._systemone = f"/systemone is not available ({exc})"
                return self._systemone
            got = (s1.data.get("usage") or {}).get("input_tokens")
            want = (c.data.get("usage") or {}).get("prompt_tokens")
            if got is None or got != want:
                self._systemone = (
                    f"/systemone wraps the text in a prompt ({got} input tokens for a {want}-token text): "
                    "start the server with --decision-config <file from write_decision_config()>"
                )
            else:
                self._systemone = True
            return self._systemone


def _as_messages(prompt: str | Messages) -> Messages:
    """Chat messages for a request: a text prompt is one user message."""
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def _attempts(request: httpx2.Request) -> int:
    """Tries the SDK made: it numbers each in the ``x-stainless-retry-count`` header."""
    try:
        return int(request.headers.get("x-stainless-retry-count", 0)) + 1
    except ValueError:
        return 1
