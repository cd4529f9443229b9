"""Reading p_yes from an OpenAI-compatible server: inline log-probs, an extra pass, /systemone.

``p_yes_via="logprobs"``
    Read from the generated tokens' top log-probs at the token right after the
    verdict question (``source="inline"``). Token strings ``" Yes"``, ``"ĠYes"``,
    ``"▁Yes"`` (the same token in byte-level / sentencepiece spelling) are taken
    first; the bare ``"Yes"`` token only when no spaced form is in the top-k. Likewise
    for No. If only one of the two is in the top-k, the other's log-prob is at most the
    k-th largest top-k log-prob; that bound is used, so p_yes is a lower bound (Yes
    seen) or an upper bound (No seen), recorded in ``extra["p_yes_bound"]``.
    Fallback (``source="fallback"``), one extra request with ``max_tokens=1`` and
    log-probs: at ``prompt + critique[:end of verdict question]`` when the critique has
    the question but its token position could not be lined up with the text; at
    ``prompt + critique + FALLBACK_SUFFIX`` when it has no question, or neither token is
    in the top-k there. In chat mode the fallback continues the assistant message
    (vLLM's ``continue_final_message``); servers without it give p_yes=None.

``p_yes_via="systemone"`` (``transformers serve``)
    ``transformers serve`` returns no log-probs; its ``/v1/systemone`` answers a yes/no
    ("noul") question with ``softmax([l_a, l_b])[0]`` over the next-token logits of two
    label tokens after a templated prompt. Started with ``--decision-config`` pointing at
    the file :func:`write_decision_config` writes, that is exactly the R-PRM p_yes at the
    end of the text sent. Before first use the reader checks that the server's template
    is the identity (``/v1/systemone`` input tokens equal ``/v1/completions`` prompt tokens
    for the same text). Completions mode only.

``p_yes_via="auto"`` requests log-probs and, if the server returns none, uses systemone
when the check passes; otherwise p_yes is None with the reason in ``extra["p_yes_error"]``.
``"none"`` never reads p_yes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..prompts import Messages
from ..scoring import FALLBACK_SUFFIX, p_yes_from_logits
from ..verdict import VERDICT_QUESTION, verdict_question_end
from .base import Completion
from .openai_transport import SYSTEMONE_PATH, OpenAIBackendError, Transport

logger = logging.getLogger(__name__)

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

SYSTEMONE_QUESTION = {"verdict": {"type": "noul"}}


def write_decision_config(path: str | Path) -> Path:
    """Write :data:`DECISION_CONFIG` as JSON for ``transformers serve --decision-config``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(DECISION_CONFIG, indent=2) + "\n", encoding="utf-8")
    return path


class Unsupported(Exception):
    """The server lacks an optional capability (reason in args[0])."""


@dataclass
class PYes:
    """One yes-probability reading; ``detail`` goes into ``Completion.extra``."""

    p_yes: float | None
    source: str | None
    detail: dict[str, Any] = field(default_factory=dict)


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
    assert no is not None
    detail["p_yes_bound"] = "upper"
    return PYes(p_yes_from_logits(bound, top[no]), None, detail)


def token_index_at(pieces: list[str] | list[bytes], text: str | bytes, end: int) -> int | None:
    """Index of the token that starts exactly at ``text[end]`` (pieces concatenate to text)."""
    pos = 0
    for i, piece in enumerate(pieces):
        if pos == end:
            return i if text[:end] == type(text)().join(pieces[:i]) else None  # type: ignore[arg-type]
        pos += len(piece)
        if pos > end:
            return None  # the question ends inside a token
    return None  # nothing generated after the question


def _completions_top(choice: dict[str, Any], text: str, end: int) -> dict[str, float] | None:
    lp = choice.get("logprobs") or {}
    tokens, tops = lp.get("tokens"), lp.get("top_logprobs")
    if not tokens or not tops:
        return None
    index = token_index_at(list(tokens), text, end)
    return tops[index] if index is not None and index < len(tops) else None


def _chat_top(choice: dict[str, Any], text: str, end: int) -> dict[str, float] | None:
    content = (choice.get("logprobs") or {}).get("content")
    if not content:
        return None
    if all(c.get("bytes") is not None for c in content):  # exact even for split characters
        pieces: list[bytes] = [bytes(c["bytes"]) for c in content]
        index = token_index_at(pieces, text.encode("utf-8"), len(text[:end].encode("utf-8")))
    else:
        index = token_index_at([c.get("token", "") for c in content], text, end)
    if index is None:
        return None
    top: dict[str, float] = {}
    for entry in content[index].get("top_logprobs") or []:
        token, value = entry.get("token"), entry.get("logprob")
        if token is not None and value is not None:
            top[token] = max(value, top.get(token, value))
    return top


def inline_p_yes(mode: str, text: str, choice: dict[str, Any], k: int) -> PYes | None:
    """p_yes from the choice's own log-probs; None when that position cannot be found."""
    end = verdict_question_end(text)
    if end is None:
        return None
    top = _completions_top(choice, text, end) if mode == "completions" else _chat_top(choice, text, end)
    if not top:
        return None
    reading = read_top_logprobs(top, k)
    reading.source = "inline"
    reading.detail["p_yes_position"] = "verdict_question"
    return reading


def as_messages(prompt: str | Messages) -> Messages:
    """Chat messages for a request: a text prompt is one user message."""
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def _first_top(mode: str, data: dict[str, Any]) -> dict[str, float] | None | bool:
    """The first position's top log-probs of an extra-pass answer; False: no log-probs at all."""
    choice = (data.get("choices") or [{}])[0]
    if not choice.get("logprobs"):
        return False
    if mode == "completions":
        tops = choice["logprobs"].get("top_logprobs")
        return tops[0] if tops else None
    content = choice["logprobs"].get("content") or []
    return {e["token"]: e["logprob"] for e in (content[0].get("top_logprobs") or [])} if content else None


class PYesReader:
    """The extra passes: next-token log-probs after a continuation, or /systemone."""

    def __init__(
        self,
        transport: Transport,
        model: str,
        *,
        via: str,
        top_logprobs: int,
        extra_body: dict[str, Any],
        mode_of: Callable[[], str | None],
    ) -> None:
        self.transport, self.model, self.via = transport, model, via
        self.top_logprobs, self.extra_body, self.mode_of = top_logprobs, extra_body, mode_of
        self.server_has_logprobs: bool | None = None
        self._systemone: bool | str | None = None  # True, or the reason it cannot be used
        self._systemone_lock: asyncio.Lock | None = None
        self._warned: set[str] = set()

    def reset_loop_state(self) -> None:
        """The transport closed its loop: the lock belonged to it."""
        self._systemone_lock = None

    def wants_logprobs(self) -> bool:
        return self.via == "logprobs" or (self.via == "auto" and self.server_has_logprobs is not False)

    def warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message)

    async def fill(self, prompt: str | Messages, completion: Completion) -> None:
        """Set ``completion.p_yes``: inline when the choice's log-probs allow, else an extra pass."""
        choice = completion.extra.pop("_choice")
        if self.via == "none":
            return
        reading = inline_p_yes(completion.extra["mode"], completion.text, choice, self.top_logprobs)
        if reading is None or reading.p_yes is None:
            appended = reading is not None  # question found and lined up, but no Yes/No in top-k
            reading = await self.extra_pass(prompt, completion.text, appended=appended)
        completion.p_yes = reading.p_yes
        completion.p_yes_source = reading.source if reading.p_yes is not None else None
        completion.extra.update(reading.detail)

    async def extra_pass(self, prompt: str | Messages, critique: str, appended: bool = False) -> PYes:
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
            reading = await self._read_via(via, prompt, continuation)
        except Unsupported as exc:
            return PYes(None, None, {"p_yes_error": str(exc)})
        if reading.detail.pop("no_logprobs", False) and self.via == "auto":
            # First sign (e.g. read_p_yes before any generate) that the server has no log-probs.
            self.server_has_logprobs = False
            return await self.extra_pass(prompt, critique, appended)
        if reading.p_yes is None and position == "verdict_question":
            # The model's own question position has no Yes/No in its top-k: ask again after the critique.
            return await self.extra_pass(prompt, critique, appended=True)
        reading.source = "fallback" if reading.p_yes is not None else None
        reading.detail["p_yes_position"] = position
        reading.detail["p_yes_via"] = via
        return reading

    async def _read_via(self, via: str, prompt: str | Messages, continuation: str) -> PYes:
        if via == "systemone":
            if not isinstance(prompt, str):
                raise Unsupported("/systemone reads text; these chat messages were sent without a tokenizer")
            return await self._systemone_p_yes(prompt + continuation)
        return await self._logprobs_p_yes(prompt, continuation)

    async def _extra_pass_via(self) -> str | PYes:
        """'logprobs' or 'systemone' for the extra pass, or a PYes(None) explaining why neither."""
        if self.via == "none":
            return PYes(None, None, {})
        if self.wants_logprobs():
            return "logprobs"
        reason = await self._check_systemone()
        if reason is True:
            return "systemone"
        if self.via == "systemone":
            raise OpenAIBackendError(
                f"cannot read p_yes via /systemone: {reason}",
                url=self.transport.base_url,
                kind="p_yes_unavailable",
            )
        base = self.transport.base_url
        self.warn_once("no-p-yes", f"{base}: server returns no log-probs and {reason}; p_yes will be None")
        return PYes(None, None, {"p_yes_error": f"server returns no log-probs and {reason}"})

    async def _logprobs_p_yes(self, prompt: str | Messages, continuation: str) -> PYes:
        mode = "chat" if not isinstance(prompt, str) else (self.mode_of() or "completions")
        body: dict[str, Any] = {"model": self.model, "max_tokens": 1, "temperature": 0.0}
        if mode == "completions":
            assert isinstance(prompt, str)
            body |= {"prompt": prompt + continuation, "logprobs": self.top_logprobs}
            response = await self.transport.completions(body, self.extra_body)
        else:
            messages = [*as_messages(prompt), {"role": "assistant", "content": continuation}]
            body |= {"messages": messages, "logprobs": True, "top_logprobs": self.top_logprobs}
            # vLLM extensions: read the next token of the assistant message itself.
            vllm = {"continue_final_message": True, "add_generation_prompt": False}
            try:
                response = await self.transport.chat(body, {**vllm, **self.extra_body})
            except OpenAIBackendError as exc:
                if exc.status is not None and 400 <= exc.status < 500:
                    raise Unsupported(f"chat fallback (continue_final_message) refused: {exc}") from exc
                raise
        top = _first_top(mode, response.data)
        if top is False:
            return PYes(None, None, {"p_yes_error": "server returned no log-probs", "no_logprobs": True})
        if not top:
            return PYes(None, None, {"p_yes_error": "extra pass returned no log-probs"})
        reading = read_top_logprobs(top, self.top_logprobs)  # type: ignore[arg-type]
        reading.detail["p_yes_latency_s"] = response.latency_s
        usage = response.data.get("usage") or {}
        if "prompt_tokens" in usage:
            reading.detail["p_yes_prompt_tokens"] = usage["prompt_tokens"]
        return reading

    async def _systemone_p_yes(self, text: str) -> PYes:
        body = {"model": self.model, "state": text, "questions": SYSTEMONE_QUESTION}
        response = await self.transport.post_systemone(body)
        try:
            p = float(response.data["answers"]["verdict"]["noul"])
        except (KeyError, TypeError, ValueError) as exc:
            url = self.transport.base_url + SYSTEMONE_PATH
            raise OpenAIBackendError(
                f"POST {url}: unexpected answer {json.dumps(response.data)[:300]}", url=url, kind="bad_answer"
            ) from exc
        detail: dict[str, Any] = {"p_yes_latency_s": response.latency_s}
        if "input_tokens" in (response.data.get("usage") or {}):
            detail["p_yes_prompt_tokens"] = response.data["usage"]["input_tokens"]
        return PYes(p, None, detail)

    async def _check_systemone(self) -> bool | str:
        """True when /systemone reads the text as-is, else the reason it cannot be used (cached)."""
        if self._systemone_lock is None:  # created on the loop thread, which owns it
            self._systemone_lock = asyncio.Lock()
        async with self._systemone_lock:
            if self._systemone is None:
                self._systemone = await self._probe_systemone()
            return self._systemone

    async def _probe_systemone(self) -> bool | str:
        if (self.mode_of() or "completions") != "completions":
            return "/systemone is only used in completions mode"
        # Same text both ways: identical token counts mean the decision template adds nothing.
        probe = VERDICT_QUESTION
        try:
            s1 = await self.transport.post_systemone(
                {"model": self.model, "state": probe, "questions": SYSTEMONE_QUESTION}
            )
            c = await self.transport.completions(
                {"model": self.model, "prompt": probe, "max_tokens": 1}, None
            )
        except OpenAIBackendError as exc:
            if exc.status is None or exc.status >= 500:
                raise
            return f"/systemone is not available ({exc})"
        got = (s1.data.get("usage") or {}).get("input_tokens")
        want = (c.data.get("usage") or {}).get("prompt_tokens")
        if got is None or got != want:
            return (
                f"/systemone wraps the text in a prompt ({got} input tokens for a {want}-token text): "
                "start the server with --decision-config <file from write_decision_config()>"
            )
        return True
