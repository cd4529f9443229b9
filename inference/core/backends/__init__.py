"""Model backends behind one interface (:class:`~.base.Backend`).

Backends import their heavy libraries (torch, transformers, vLLM, httpx) lazily, so
importing this package is cheap and works on machines without them.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import Backend

_BACKENDS = {
    "transformers": ("inference.core.backends.transformers_backend", "TransformersBackend"),
    "openai": ("inference.core.backends.openai_backend", "OpenAIBackend"),
    "vllm": ("inference.core.backends.vllm_backend", "VLLMBackend"),
}

BACKEND_KINDS: tuple[str, ...] = tuple(_BACKENDS)


def backend_class(kind: str) -> type:
    try:
        module_name, class_name = _BACKENDS[kind]
    except KeyError:
        raise ValueError(
            f"unknown backend kind {kind!r}; expected one of {', '.join(BACKEND_KINDS)}"
        ) from None
    cls: type = getattr(importlib.import_module(module_name), class_name)
    return cls


def make_backend(kind: str, **kwargs: Any) -> Backend:
    """Build a backend: ``make_backend("transformers", model_path=...)``."""
    backend: Backend = backend_class(kind)(**kwargs)
    return backend
