"""Generation parameters in one place: K (`n_samples`), temperature, top_p, max new
tokens and seed, with the method's two presets. Every default above the backends
comes from here; the UI labels `n_samples` "K".

* TEACHER: the seed-data run (the paper's 4 trajectories per step; the authors'
  script: T=0.4, top_p=0.95, up to 8,192 new tokens).
* STUDENT: sampling the SFT model for DPO pairs (higher temperature, so the K
  samples of a step disagree often enough to pair).
* EVALUATION: inference-time scaling (T=0.95, top_p=0.95, up to 4,096 new tokens);
  K=4 is what the paper recommends (most of the gain at 40% of the cost of its
  default K=10, `PAPER_K`); `MAX_K` is the largest K of its scaling figure.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .backends.base import Sampling

MAX_K = 32
PAPER_K = 10


@dataclass(frozen=True)
class GenerationParams:
    n_samples: int  # K: critiques per step (or completions per prompt)
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.n_samples < 1:
            raise ValueError("n_samples (K) must be at least 1")
        self.sampling()  # validates temperature, top_p, max_new_tokens

    def sampling(self) -> Sampling:
        return Sampling(
            temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens, seed=self.seed
        )

    def fields(self) -> dict[str, Any]:
        """As model / form fields (GenerationRun, EvaluationRun, GuidanceRun share the names)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> GenerationParams:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


TEACHER = GenerationParams(n_samples=4, temperature=0.4, top_p=0.95, max_new_tokens=8192)
EVALUATION = GenerationParams(n_samples=4, temperature=0.95, top_p=0.95, max_new_tokens=4096)
STUDENT = GenerationParams(n_samples=4, temperature=1.0, top_p=0.95, max_new_tokens=4096)
