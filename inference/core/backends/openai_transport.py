"""Transport for OpenAI-compatible servers: the SDK client, deadlines, cancel, errors.

The official ``openai`` SDK (``AsyncOpenAI``) sends every request: its ``completions``
and ``chat.completions`` resources (server-specific fields in the SDK's ``extra_body``)
and its generic ``post`` for ``transformers serve``'s ``/v1/systemone``. The client lives
on the transport's own event-loop thread, so :meth:`Transport.run` is a plain blocking
call from sync code, worker threads and code already inside a running event loop alike.
An ``asyncio.Semaphore`` caps the requests in flight at ``max_concurrency``.

Deadlines (:class:`Deadlines`), per endpoint, with defaults:

* ``connect_s``: to open the connection;
* ``first_byte_s``: the longest wait for the server's next bytes, the first included
  (httpx's read timeout; a non-streaming server sends nothing until it has generated);
* ``total_s``: the whole request, the SDK's retries and backoff included, from the
  moment it holds a concurrency slot. A server that drips one byte a second never
  trips the read timeout; the total deadline cuts it.

The SDK retries connect errors, timeouts, 408, 409, 429 and 5xx ``max_retries`` times
(``Retry-After`` when sent, else 0.5 s doubling up to 8 s); the total deadline bounds them.

:meth:`Transport.cancel` (from any thread) cancels every call in flight: the blocked
:meth:`Transport.run` raises :class:`~.base.BackendCancelled` within milliseconds.

Every failure is an :class:`OpenAIBackendError` whose ``kind`` says what happened:
``timeout`` (a deadline), ``connect`` (no connection), ``status`` (an HTTP error status),
``bad_answer`` (not JSON, not an object, no ``choices``). The scoring API maps kinds
to 504, 503, 502/503 and 502.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import httpx2  # the openai SDK's own HTTP library (a dependency of it)
from openai import APIConnectionError, APIStatusError, APITimeoutError, AsyncOpenAI, Omit

from .base import BackendCancelled

T = TypeVar("T")
ErrorKind = Literal["timeout", "connect", "status", "bad_answer", "p_yes_unavailable"]

SYSTEMONE_PATH = "/systemone"


@dataclass(frozen=True)
class Deadlines:
    """Seconds allowed to connect, to wait for the next bytes, and for the whole request."""

    connect_s: float = 10.0
    first_byte_s: float = 300.0
    total_s: float = 600.0

    def __post_init__(self) -> None:
        for name in ("connect_s", "first_byte_s", "total_s"):
            if not 0 < getattr(self, name) <= 86_400:
                raise ValueError(f"{name} must be in (0, 86400] seconds, got {getattr(self, name)!r}")

    def httpx_timeout(self) -> httpx2.Timeout:
        return httpx2.Timeout(
            connect=self.connect_s, read=self.first_byte_s, write=self.first_byte_s, pool=self.connect_s
        )


class OpenAIBackendError(RuntimeError):
    """A request failed for good; the message names the URL, ``kind`` what went wrong."""

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None = None,
        body: str | None = None,
        kind: ErrorKind = "status",
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.body = body
        self.kind: ErrorKind = kind


@dataclass
class Response:
    data: dict[str, Any]
    latency_s: float
    attempts: int


def normalise_base_url(base_url: str) -> str:
    """``http://host:8000`` -> ``http://host:8000/v1``; a URL with another path is kept."""
    url = base_url.rstrip("/")
    if urlsplit(url).path in ("", "/"):
        url += "/v1"
    return url


def attempts_of(request: httpx2.Request) -> int:
    """Tries the SDK made: it numbers each in the ``x-stainless-retry-count`` header."""
    try:
        return int(request.headers.get("x-stainless-retry-count", 0)) + 1
    except ValueError:
        return 1


class _LoopThread:
    """An event loop on a daemon thread: callable from sync code and from inside other loops."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="openai-backend", daemon=True)
        self.thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


# Returns the httpx response (the SDK's own httpx build, untyped here).
Send = Callable[[AsyncOpenAI], Awaitable[Any]]


class Transport:
    """One server: the SDK client on a loop thread, the concurrency cap, deadlines, cancel."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        max_concurrency: int,
        max_retries: int,
        deadlines: Deadlines,
    ) -> None:
        self.base_url = normalise_base_url(base_url)
        self.api_key = api_key
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.deadlines = deadlines
        self._runner: _LoopThread | None = None
        self._client: AsyncOpenAI | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._lock = threading.Lock()
        self._in_flight: set[concurrent.futures.Future[Any]] = set()

    # ----- from the caller's thread -------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop thread and wait; :class:`BackendCancelled` after :meth:`cancel`."""
        with self._lock:
            if self._runner is None:
                self._runner = _LoopThread()
            future = self._runner.submit(coro)
            self._in_flight.add(future)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise BackendCancelled(f"calls to {self.base_url} were cancelled") from None
        finally:
            with self._lock:
                self._in_flight.discard(future)

    def cancel(self) -> int:
        """Cancel every call in flight (any thread); the number cancelled."""
        with self._lock:
            futures = list(self._in_flight)
        return sum(1 for f in futures if f.cancel())

    def close(self) -> None:
        with self._lock:
            runner, self._runner = self._runner, None
        if runner is None:
            return
        if self._client is not None:
            runner.submit(self._client.close()).result()
        self._client = None
        self._semaphore = None
        runner.stop()

    # ----- on the loop thread -------------------------------------------------------

    def ensure_client(self) -> None:
        """Create the SDK client and semaphore on the loop thread (they belong to its loop)."""
        if self._client is None:
            # The one place the endpoint's base URL reaches the transport.
            self._client = AsyncOpenAI(
                base_url=self.base_url,
                # Always explicit, so OPENAI_API_KEY from the environment never goes to this server;
                # without a key the Authorization header is omitted per request (headers).
                api_key=self.api_key or "unused",
                timeout=self.deadlines.httpx_timeout(),
                max_retries=self.max_retries,
                # Omit() drops the SDK's own header (typed as str, documented for this use).
                default_headers={"OpenAI-Organization": Omit(), "OpenAI-Project": Omit()},  # type: ignore[dict-item]
            )
            self._semaphore = asyncio.Semaphore(self.max_concurrency)

    @property
    def headers(self) -> dict[str, Any] | None:
        return None if self.api_key else {"Authorization": Omit()}

    async def completions(self, params: dict[str, Any], extra_body: dict[str, Any] | None) -> Response:
        """``/completions``: standard fields in ``params``, server-specific ones in ``extra_body``."""

        async def send(client: AsyncOpenAI) -> Any:
            raw = await client.completions.with_raw_response.create(
                **params, extra_body=extra_body or None, extra_headers=self.headers
            )
            return raw.http_response

        return await self.call("/completions", send)

    async def chat(self, params: dict[str, Any], extra_body: dict[str, Any] | None) -> Response:
        async def send(client: AsyncOpenAI) -> Any:
            raw = await client.chat.completions.with_raw_response.create(
                **params, extra_body=extra_body or None, extra_headers=self.headers
            )
            return raw.http_response

        return await self.call("/chat/completions", send)

    async def post_systemone(self, body: dict[str, Any]) -> Response:
        """``transformers serve``'s ``/v1/systemone`` has no SDK resource: the SDK's generic POST."""

        async def send(client: AsyncOpenAI) -> Any:
            options: Any = {"headers": self.headers} if self.headers else {}
            return await client.post(SYSTEMONE_PATH, cast_to=httpx2.Response, body=body, options=options)

        return await self.call(SYSTEMONE_PATH, send)

    async def call(self, path: str, send: Send) -> Response:
        """One request under the concurrency cap and the total deadline; errors become OpenAIBackendError."""
        self.ensure_client()
        assert self._client is not None and self._semaphore is not None
        url = f"{self.base_url}{path}"
        async with self._semaphore:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.deadlines.total_s):
                    response = await send(self._client)
                    data = _json_object(response, url)
            except TimeoutError:
                raise OpenAIBackendError(
                    f"POST {url} had no complete answer within the total deadline of {self.deadlines.total_s:g} s",
                    url=url,
                    kind="timeout",
                ) from None
            except (APITimeoutError, APIStatusError, APIConnectionError) as exc:
                raise _sdk_error(exc, url, self.deadlines) from exc
        return Response(data, time.perf_counter() - started, attempts_of(response.request))


def _json_object(response: Any, url: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise _bad_answer(response, url, f"a body that is not JSON: {response.text[:300]!r}") from None
    if not isinstance(data, dict):
        raise _bad_answer(response, url, "JSON that is not an object")
    return data


def _bad_answer(response: Any, url: str, what: str) -> OpenAIBackendError:
    return OpenAIBackendError(
        f"POST {url}: HTTP {response.status_code} with {what}",
        url=url,
        status=response.status_code,
        body=response.text,
        kind="bad_answer",
    )


def _sdk_error(exc: Exception, url: str, deadlines: Deadlines) -> OpenAIBackendError:
    if isinstance(exc, APITimeoutError):
        return OpenAIBackendError(
            f"POST {url} timed out after {deadlines.first_byte_s:g} s ({attempts_of(exc.request)} attempt(s))",
            url=url,
            kind="timeout",
        )
    if isinstance(exc, APIStatusError):
        text = exc.response.text
        return OpenAIBackendError(
            f"POST {url} failed after {attempts_of(exc.response.request)} attempt(s): "
            f"HTTP {exc.status_code}: {text[:500]}",
            url=url,
            status=exc.status_code,
            body=text,
        )
    assert isinstance(exc, APIConnectionError)
    cause = exc.__cause__
    problem = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
    return OpenAIBackendError(
        f"POST {url} failed after {attempts_of(exc.request)} attempt(s): {problem}", url=url, kind="connect"
    )
