"""The R-PRM yes-probability and the token bookkeeping it needs.

``p = exp(l_yes) / (exp(l_yes) + exp(l_no))`` where ``l_yes``/``l_no`` are the
logits (or log-probs: the shared normaliser cancels) of the first token of " Yes"
and " No" right after the verdict question. The step reward is the mean of p over
the K critiques of a step. No torch import here: backends bring their own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from .verdict import VERDICT_QUESTION, VERDICT_QUESTION_TAIL, verdict_question_end

# Appended to a critique that never asked the verdict question, so the next-token
# distribution can still be read (documented fallback of the R-PRM method).
FALLBACK_SUFFIX = "\n" + VERDICT_QUESTION


class VerdictTokenError(ValueError):
    """The tokenizer does not encode ' Yes' and ' No' as one token each."""


def p_yes_from_logits(l_yes: float, l_no: float) -> float:
    """Two-way softmax, stable for any finite or infinite pair (NaN is an error)."""
    l_yes, l_no = float(l_yes), float(l_no)
    if math.isnan(l_yes) or math.isnan(l_no):
        raise ValueError(f"logits must not be NaN (l_yes={l_yes}, l_no={l_no})")
    if l_yes == l_no:  # also covers -inf == -inf, where the difference is NaN
        return 0.5
    d = l_yes - l_no
    if d >= 0:
        return 1.0 / (1.0 + math.exp(-d))
    e = math.exp(d)
    return e / (1.0 + e)


def tokenizer_label(tokenizer: Any) -> str:
    return getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__


def verdict_token_ids(tokenizer: Any) -> tuple[int, int]:
    """Ids of " Yes" and " No"; raise :class:`VerdictTokenError` unless each is one token."""
    ids = []
    for word in (" Yes", " No"):
        encoded = list(tokenizer.encode(word, add_special_tokens=False))
        if len(encoded) != 1:
            pieces = tokenizer.convert_ids_to_tokens(encoded)
            raise VerdictTokenError(
                f"tokenizer {tokenizer_label(tokenizer)!r} encodes {word!r} as {len(encoded)} tokens "
                f"{encoded} {pieces}; R-PRM scoring needs it to be exactly one token"
            )
        ids.append(encoded[0])
    if ids[0] == ids[1]:
        raise VerdictTokenError(
            f"tokenizer {tokenizer_label(tokenizer)!r} maps ' Yes' and ' No' to the same id"
        )
    return ids[0], ids[1]


def mean_reward(p_values: Iterable[float | None]) -> float | None:
    """Mean of the critiques' p_yes, ignoring missing ones; None when none is known."""
    values = []
    for p in p_values:
        if p is None:
            continue
        p = float(p)
        if not 0.0 <= p <= 1.0:  # also rejects NaN
            raise ValueError(f"p_yes must be within [0, 1], got {p}")
        values.append(p)
    if not values:
        return None
    return math.fsum(values) / len(values)


def scoring_context(critique: str, occurrence: str = "last") -> tuple[str, str]:
    """The critique text whose next token carries the verdict, and how it was made.

    Cut right after the last (or, like the authors' script, the ``"first"``)
    verdict question: source ``"verdict_question"``. Without one, append
    :data:`FALLBACK_SUFFIX`: source ``"appended"``.
    """
    if occurrence == "last":
        end = verdict_question_end(critique)
    elif occurrence == "first":
        pos = critique.find(VERDICT_QUESTION_TAIL)
        end = None if pos < 0 else pos + len(VERDICT_QUESTION_TAIL)
    else:
        raise ValueError(f"occurrence must be 'last' or 'first', got {occurrence!r}")
    if end is None:
        return critique + FALLBACK_SUFFIX, "appended"
    return critique[:end], "verdict_question"


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a rendered prompt.

    Chat templates already write the BOS token into the text, so special tokens are
    added only when the tokenizer has a BOS token that the text does not start with
    (plain, non-chat prompts for models such as Llama).
    """
    bos = getattr(tokenizer, "bos_token", None)
    add_special = isinstance(bos, str) and bool(bos) and not text.startswith(bos)
    return list(tokenizer.encode(text, add_special_tokens=add_special))


def encode_continuation(tokenizer: Any, text: str) -> list[int]:
    """Token ids of text that follows a prompt (a critique): never special tokens."""
    return list(tokenizer.encode(text, add_special_tokens=False)) if text else []


class VerdictQuestionDetector:
    """Tells whether a token sequence ends with the verdict question.

    Cheap enough to run at every generation step: only sequences whose last token
    decodes to text ending in the question's last character ("?") are decoded, and
    then only the last few tokens.
    """

    def __init__(self, tokenizer: Any, question: str = VERDICT_QUESTION_TAIL) -> None:
        self.tokenizer = tokenizer
        self.question = question
        size = len(tokenizer)
        decoded = tokenizer.batch_decode([[i] for i in range(size)], skip_special_tokens=False)
        last = question[-1]
        self.trigger_ids = frozenset(i for i, t in enumerate(decoded) if t.endswith(last))
        # Every token carries at least one byte, so this many tokens cover the question.
        self.window = len(question.encode("utf-8")) + 2

    def ends_with_question(self, ids: Sequence[int]) -> bool:
        if not ids or int(ids[-1]) not in self.trigger_ids:
            return False
        tail = [int(i) for i in ids[-self.window :]]
        return bool(self.tokenizer.decode(tail, skip_special_tokens=False).endswith(self.question))

    def positions(self, ids: Sequence[int], start: int = 0) -> list[int]:
        """Every ``p >= max(start, 1)`` such that ``ids[:p]`` ends with the question."""
        ids = [int(i) for i in ids]
        return [
            p
            for p in range(max(start, 1), len(ids) + 1)
            if ids[p - 1] in self.trigger_ids and self.ends_with_question(ids[:p])
        ]
