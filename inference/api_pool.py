"""The scoring API's backends: a pool of idle ones per endpoint, and the scoring job that
runs on a thread of its own so the web thread can give up at the deadline.

Each in-flight request has a backend of its own (its own connection pool and concurrency
limit), so a small request's calls never queue behind a big one's inside this process;
pooling keeps what a backend learnt about its server (chat or completions, /systemone)
across requests. No call outlives its request by much: every call's total deadline is
the request's, and a request that passes its deadline cancels its calls in flight, so the
job ends (and frees its concurrency slot) within moments of the 504.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from django.db import connection

from inference.core.backends import make_backend
from inference.core.backends.base import Backend, Sampling
from inference.core.prompts import PromptTemplate as CoreTemplate
from inference.core.solution_scoring import SolutionScores, score_solution

from .models import ModelEndpoint

log = logging.getLogger(__name__)

POOL_IDLE_MAX = 8
PoolKey = tuple[str, str, str]

_pool: dict[PoolKey, list[Backend]] = {}
_pool_lock = threading.Lock()


class Stopped(Exception):
    """The request's deadline passed: stop before the next backend call."""


def backend_key(endpoint: ModelEndpoint) -> PoolKey:
    return (
        endpoint.path_or_url,
        endpoint.served_model_name or endpoint.name,
        repr(sorted(endpoint.options.items())),
    )


def checkout(endpoint: ModelEndpoint, timeout_s: float) -> tuple[PoolKey, Backend]:
    """An idle backend for the endpoint, or a new one whose calls end by the request's deadline.

    Raises ``inference.trust.EndpointRejected`` when the endpoint is outside the trust boundaries."""
    key = backend_key(endpoint)
    with _pool_lock:
        if _pool.get(key):
            return key, _pool[key].pop()
    kwargs: dict[str, Any] = endpoint.backend_kwargs()
    # The margin keeps the answer the API's own 504 rather than an upstream timeout.
    for name in ("timeout_s", "total_timeout_s"):
        kwargs[name] = min(float(kwargs.get(name, timeout_s)), timeout_s + 2)
    return key, make_backend(ModelEndpoint.Backend.OPENAI, **kwargs)


def checkin(key: PoolKey, backend: Backend, reuse: bool) -> None:
    with _pool_lock:
        idle = _pool.setdefault(key, [])
        if reuse and len(idle) < POOL_IDLE_MAX:
            idle.append(backend)
            return
    backend.close()


class ScoringJob:
    """One scoring request on its own thread; the web thread waits for it at most until the deadline."""

    def __init__(
        self,
        endpoint: ModelEndpoint,
        template: CoreTemplate,
        args: dict[str, Any],
        sampling: dict[str, Any],
        timeout_s: float,
        on_abandoned_end: Callable[[], None],
    ) -> None:
        self.endpoint, self.template, self.args, self.sampling = endpoint, template, args, sampling
        self.timeout_s = timeout_s
        self.on_abandoned_end = on_abandoned_end  # releases the slot when the web thread no longer can
        self.result: SolutionScores | None = None
        self.error: BaseException | None = None
        self.backend: Backend | None = None
        self.done = threading.Event()
        self.stop = threading.Event()
        self.abandoned = False
        self.lock = threading.Lock()

    def check(self) -> None:
        if self.stop.is_set():
            raise Stopped()

    def _score(self) -> None:
        key, backend = checkout(self.endpoint, self.timeout_s)
        with self.lock:
            self.backend = backend
        ok = False
        try:
            a = self.args
            # Chunks of about one round of concurrent calls: the deadline is checked between them.
            self.result = score_solution(
                backend, self.template, a["question"], a["steps"], a["n_samples"], Sampling(**self.sampling),
                max_prompts_per_call=max(1, int(getattr(backend, "max_concurrency", 8))),
                before_call=self.check,
            )  # fmt: skip
            ok = True
        finally:
            checkin(key, backend, ok)

    def run(self) -> None:
        try:
            self._score()
        except BaseException as exc:  # handed to the web thread, which answers JSON
            self.error = exc
        finally:
            with self.lock:
                self.done.set()
                abandoned = self.abandoned
            if abandoned:
                self._end_abandoned()

    def _end_abandoned(self) -> None:
        if self.error is not None and not isinstance(self.error, Stopped):
            log.info("scoring request past its deadline ended with %s", type(self.error).__name__)
        try:
            self.on_abandoned_end()
        except Exception:
            log.exception("releasing an abandoned scoring request's slot failed")
        finally:
            connection.close()  # this thread's own connection, if the release used one

    def wait(self, timeout_s: float) -> bool:
        """True when finished in time; else abandons the job and cancels its calls in flight."""
        if self.done.wait(timeout_s):
            return True
        with self.lock:
            if self.done.is_set():
                return True
            self.abandoned = True
            self.stop.set()
            backend = self.backend
        cancel = getattr(backend, "cancel", None)
        if cancel is not None:
            cancel()
        return False
