"""The one interface every model backend implements.

A backend turns rendered prompts into critiques: ``generate(prompts, n, sampling)``
returns, for each prompt, ``n`` :class:`Completion` objects carrying the text,
token counts and the verdict yes-probability read in the same pass wherever the
backend allows it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..scoring import scoring_context


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters. Defaults: the R-PRM seed run (T=0.4, top_p=0.95)."""

    temperature: float = 0.4
    top_p: float = 0.95
    max_new_tokens: int = 8192
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")


@dataclass
class Completion:
    """One sampled critique for one prompt."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    # p = exp(l_yes) / (exp(l_yes) + exp(l_no)) right after the verdict question;
    # None only when the backend could not read it at all.
    p_yes: float | None
    # "inline": read during generation; "fallback": verdict question appended and
    # read with one extra next-token pass; None when p_yes is None.
    p_yes_source: str | None = None
    latency_s: float = 0.0
    finish_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    name: str

    def generate(
        self, prompts: list[str | list[dict[str, str]]], n: int, sampling: Sampling
    ) -> list[list[Completion]]:
        """Return ``n`` completions for each prompt, in prompt order."""
        ...

    def close(self) -> None:
        """Release model memory / HTTP connections."""
        ...


class BackendUnavailable(RuntimeError):
    """The backend's library or service is not installed / not reachable here."""


class BackendCancelled(RuntimeError):
    """The backend's calls in flight were cancelled (a run's cancel, a request's deadline)."""


def repeat_greedy(results: list[list[Completion]], n: int) -> list[list[Completion]]:
    """A greedy run decodes each prompt once: its one completion stands for all ``n``."""
    return [
        [r[0]] + [dataclasses.replace(r[0], extra=dict(r[0].extra)) for _ in range(n - 1)] for r in results
    ]


def fallback_contexts(
    results: list[list[Completion]], pending: list[tuple[int, int]], texts: list[str]
) -> tuple[list[str], list[str]]:
    """For each (prompt, sample) without an inline p_yes: the text to read the verdict
    token after (prompt + cut or extended critique) and how it was made."""
    contexts: list[str] = []
    sources: list[str] = []
    for i, j in pending:
        prefix, source = scoring_context(results[i][j].text)
        contexts.append(texts[i] + prefix)
        sources.append(source)
    return contexts, sources
