"""Token counting for OpenAI-compatible answers: one :class:`~.base.Completion` per choice.

``prompt_tokens`` of every choice is ``usage.prompt_tokens`` of its request (the prompt
is shared, servers count it once). ``completion_tokens`` is the number of log-prob
entries of the choice when present (exact); otherwise the request's
``usage.completion_tokens`` itself for a single choice, or split over the choices in
proportion to their text length (largest remainder, sums to the total), flagged
``extra["completion_tokens_estimated"]``. Extra p_yes requests are not counted in the
completion; they are in ``extra["p_yes_prompt_tokens"]``.
"""

from __future__ import annotations

from typing import Any

from .base import Completion
from .openai_transport import Response


def split_usage(total: int, texts: list[str]) -> list[int]:
    """Split ``total`` tokens over choices in proportion to text length, summing to total."""
    weights = [max(len(t), 1) for t in texts]
    raw = [total * w / sum(weights) for w in weights]
    counts = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def choice_text_and_tokens(mode: str, choice: dict[str, Any]) -> tuple[str, list[str] | None]:
    """The choice's text and its generated tokens (None when the server sent no log-probs)."""
    if mode == "completions":
        lp = choice.get("logprobs") or {}
        return choice.get("text") or "", lp.get("tokens") if lp.get("top_logprobs") is not None else None
    content = (choice.get("logprobs") or {}).get("content")
    text = (choice.get("message") or {}).get("content") or ""
    return text, [c.get("token", "") for c in content] if content is not None else None


def completion_counts(
    usage: dict[str, Any], texts: list[str], tokens: list[list[str] | None]
) -> tuple[list[int], bool]:
    """Completion tokens per choice, and whether they are estimated."""
    if all(t is not None for t in tokens):
        return [len(t or []) for t in tokens], False
    if len(texts) == 1:
        return [int(usage.get("completion_tokens") or 0)], False
    return split_usage(int(usage.get("completion_tokens") or 0), texts), True


def completions_from(
    mode: str, response: Response, choices: list[dict[str, Any]]
) -> tuple[list[Completion], bool]:
    """Completions for ``choices`` (each keeps its raw choice in ``extra["_choice"]`` for the
    p_yes reader), and whether any choice carried log-probs."""
    usage = response.data.get("usage") or {}
    read = [choice_text_and_tokens(mode, c) for c in choices]
    texts, tokens = [t for t, _ in read], [k for _, k in read]
    counts, estimated = completion_counts(usage, texts, tokens)
    result = []
    for choice, text, count in zip(choices, texts, counts, strict=True):
        extra: dict[str, Any] = {"mode": mode, "attempts": response.attempts}
        if estimated:
            extra["completion_tokens_estimated"] = True
        if not usage:
            extra["usage_missing"] = True
        extra["_choice"] = choice  # read by the p_yes reader, then dropped
        result.append(
            Completion(
                text=text,
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=count,
                p_yes=None,
                latency_s=response.latency_s,
                finish_reason=choice.get("finish_reason"),
                extra=extra,
            )
        )
    return result, any(t is not None for t in tokens)
