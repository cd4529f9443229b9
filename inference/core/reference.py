"""The authors' way of reading p_yes: one un-batched forward pass per critique.

Mirrors NJUNLP/R-PRM's scoring script: the critique is cut right after the verdict
question (or, when it never asks it, a verdict question is appended), the prompt
and the critique are tokenised together, and one full forward pass gives the
next-token logits of " Yes" and " No". It is the baseline that the one-pass
backends are benchmarked and tested against. Differences from the script, on
purpose: the cut is at the LAST question by default (``occurrence="first"``
reproduces the script) and the appended question is :data:`FALLBACK_SUFFIX`.
"""

from __future__ import annotations

from typing import Any

from .scoring import encode_prompt, p_yes_from_logits, scoring_context, verdict_token_ids


def reference_p_yes(
    model: Any,
    tokenizer: Any,
    prompt: str,
    critique: str,
    *,
    occurrence: str = "last",
    token_ids: tuple[int, int] | None = None,
) -> float:
    import torch

    yes_id, no_id = token_ids or verdict_token_ids(tokenizer)
    prefix, _source = scoring_context(critique, occurrence)
    ids = encode_prompt(tokenizer, prompt + prefix)
    device = next(model.parameters()).device
    with torch.inference_mode():
        logits = model(torch.tensor([ids], device=device)).logits[0, -1]
    return p_yes_from_logits(float(logits[yes_id]), float(logits[no_id]))
