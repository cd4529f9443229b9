"""The scoring API: `POST /api/v1/score` with a bearer token.

Request (JSON): `question` (str), `steps` (list of str), optional `K` (critiques per
step, default 4, at most 32), `model` (name of a scorer or student endpoint served
over HTTP; default: the server of RPRM_SCORING_ENDPOINT), `seed`, `max_new_tokens`,
`template` (`name` or `name@version`). Response: per step the reward (mean p_yes)
and every sample's verdict and p_yes.

No model is ever loaded in the web process. The API calls an OpenAI-compatible server
(`vllm serve` in production, a local `transformers serve` of the tiny model in the
quickstart) through the OpenAI-compatible backend; an endpoint with an in-process
backend (transformers, vllm offline) is refused with 422. Not the gpu queue: it has
one slot that training and evaluation runs hold for hours, while a server batches
concurrent requests. The web thread waits for the scoring on a thread of its own and
gives up at the deadline, so gunicorn never kills it.

Bounds, each with its JSON error:
- body size (413 `too_large`, SCORING_API_MAX_BODY_BYTES) and steps (422, SCORING_API_MAX_STEPS);
- token budget: steps x K x max_new_tokens at most SCORING_API_MAX_TOKENS (413 `over_budget`);
- per token, at most SCORING_API_RATE_PER_MINUTE requests a minute and
  SCORING_API_MAX_CONCURRENT at a time (429 `rate_limited` / `too_many_concurrent` with
  `Retry-After`), kept in Redis, or in the database without REDIS_URL (api_limits.py);
- SCORING_API_TIMEOUT_S: past it, 504 `timeout`; the scoring stops before its next
  round of backend calls and holds its concurrency slot until then.

Errors are JSON `{"error": {"code", "field", "message"}}`: 400 bad JSON or field, 401
missing or bad token, 404 unknown model or template, 405 wrong method, 413, 422, 429,
502 the model server refused the request, 503 the model server did not answer, 504
timeout, 500 anything else (a reference to the log, never the exception's text).

`parse_score_request` (and `_body` / `parse_request` under it) is the whole validation
layer: every malformed body (bad syntax, deep nesting, huge integers, NaN, lone
surrogates, invalid UTF-8, a chunked body over the limit, wrong types) is an ApiError
with a 4xx status, never a 500.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from annotations.importers.limits import Decoder, LimitExceeded
from annotations.importers.limits import Limits as JsonLimits
from inference.core.backends.openai_backend import OpenAIBackendError
from inference.core.solution_scoring import DEFAULT_K, MAX_K, score_solution
from inference.scorers import authenticate_token, eval_sampling_values, scorer_endpoint, template_for

from .api_limits import Limits, Refused, limiter
from .models import ModelEndpoint, PromptTemplate


def _limit(name: str, default: int) -> int:
    """The setting (parsed and validated at start-up in settings.py)."""
    return int(getattr(settings, name))


def max_body_bytes() -> int:
    return _limit("SCORING_API_MAX_BODY_BYTES", 256 * 1024)


def max_steps() -> int:
    return _limit("SCORING_API_MAX_STEPS", 64)


def max_tokens() -> int:
    """Per-request budget of generated tokens: steps x K x max_new_tokens (8 x 8 x 4,096)."""
    return _limit("SCORING_API_MAX_TOKENS", 262_144)


def request_timeout_s() -> int:
    """Below gunicorn's default 30 s worker timeout and common proxy timeouts."""
    return _limit("SCORING_API_TIMEOUT_S", 25)


def max_concurrent() -> int:
    return _limit("SCORING_API_MAX_CONCURRENT", 4)


def rate_per_minute() -> int:
    return _limit("SCORING_API_RATE_PER_MINUTE", 60)


log = logging.getLogger(__name__)
MAX_NEW_TOKENS = 4096
MAX_SEED = 2**32 - 1  # what every backend's seeding accepts
# The request is a flat object of strings and small integers: anything deeper or longer is hostile.
BODY_LIMITS = JsonLimits(max_depth=8, max_int_digits=12)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def response(self) -> JsonResponse:
        response = JsonResponse(
            {"error": {"code": self.code, "field": self.field, "message": self.message}}, status=self.status
        )
        if self.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="rprm"'
        return response


def _bearer(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <token>'")
    return token.strip()


def _raw_body(request: HttpRequest, limit: int) -> bytes:
    too_large = ApiError(413, "too_large", f"request body over {limit} bytes")
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        raise ApiError(400, "bad_request", "Content-Length is not a number") from None
    if declared > limit:
        raise too_large
    if not declared and "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        # Django reads nothing without a Content-Length; the server has de-chunked the
        # stream, so read it here, one byte past the limit at most.
        stream = request.META.get("wsgi.input")
        raw = stream.read(limit + 1) if stream is not None else b""
    else:
        try:
            raw = request.body
        except RequestDataTooBig:
            raise too_large from None
    if len(raw) > limit:
        raise too_large
    return raw


def _body(request: HttpRequest) -> dict[str, Any]:
    raw = _raw_body(request, max_body_bytes())
    if not raw.strip():
        raise ApiError(400, "bad_json", "the body is empty; send a JSON object", field="body")
    try:
        data = Decoder(BODY_LIMITS).loads(raw)
    except LimitExceeded as exc:
        field = exc.field.split(".")[0] if exc.field else "body"
        raise ApiError(400, "bad_json", f"{exc.field or 'body'}: {exc.message}", field=field) from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            "bad_json",
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            field="body",
        ) from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", "body must be a JSON object", field="body")
    return data


@dataclass(frozen=True, slots=True)
class ScoreRequest:
    question: str
    steps: list[str]
    model: str | None  # None: the server of RPRM_SCORING_ENDPOINT
    template: str | None
    k: int
    seed: int | None
    max_new_tokens: int | None


def parse_score_request(request: HttpRequest) -> ScoreRequest:
    """The validated body of a scoring request; raises ApiError (a 4xx) for any malformed one."""
    return ScoreRequest(**parse_request(_body(request)))


def _int_field(data: dict, name: str, default: int | None, low: int, high: int | None) -> int | None:
    value = data.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, "bad_field", f"{name} must be an integer", field=name)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ApiError(400, "bad_field", f"{name} must be {bound}, got {value}", field=name)
    return value


def parse_request(data: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(data) - {"question", "steps", "K", "model", "seed", "max_new_tokens", "template"})
    if unknown:
        raise ApiError(400, "bad_field", f"unknown field {unknown[0]!r}", field=unknown[0])
    question = data.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ApiError(400, "bad_field", "question must be a non-empty string", field="question")
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ApiError(400, "bad_field", "steps must be a non-empty list of strings", field="steps")
    for i, s in enumerate(steps):
        if not isinstance(s, str) or not s.strip():
            raise ApiError(400, "bad_field", f"steps[{i}] must be a non-empty string", field=f"steps[{i}]")
    if len(steps) > max_steps():
        raise ApiError(
            422, "too_many_steps", f"{len(steps)} steps; at most {max_steps()} per request", field="steps"
        )
    model = data.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise ApiError(400, "bad_field", "model must be the name of a scorer or student model", field="model")
    template = data.get("template")
    if template is not None and (not isinstance(template, str) or not template.strip()):
        raise ApiError(400, "bad_field", "template must be 'name' or 'name@version'", field="template")
    return {
        "question": question,
        "steps": steps,
        "model": model.strip() if model is not None else None,
        "template": template,
        "k": _int_field(data, "K", DEFAULT_K, 1, MAX_K),
        "seed": _int_field(data, "seed", None, 0, MAX_SEED),
        "max_new_tokens": _int_field(data, "max_new_tokens", None, 1, MAX_NEW_TOKENS),
    }


# ----- execution: off the web process's model-free path, bounded in time ------------------

# Idle backends per endpoint configuration. Each in-flight request has a backend of its
# own (its own connection pool and concurrency limit), so a small request's calls never
# queue behind a big one's inside this process; pooling keeps what a backend learnt about
# its server (chat or completions, /systemone) across requests.
_pool: dict[tuple, list] = {}
_pool_lock = threading.Lock()
POOL_IDLE_MAX = 8


class _Stopped(Exception):
    """The request's deadline passed: stop before the next backend call."""


def _backend_key(endpoint: ModelEndpoint) -> tuple:
    return (
        endpoint.path_or_url,
        endpoint.served_model_name or endpoint.name,
        repr(sorted(endpoint.options.items())),
    )


def _checkout(endpoint: ModelEndpoint, timeout_s: float):
    from inference.core.backends import make_backend

    key = _backend_key(endpoint)
    with _pool_lock:
        if _pool.get(key):
            return key, _pool[key].pop()
    kwargs = endpoint.backend_kwargs()
    # No HTTP call outlives the request by much (the margin keeps the answer a 504, not a 503).
    kwargs["timeout_s"] = min(float(kwargs.get("timeout_s", timeout_s)), timeout_s + 2)
    return key, make_backend(ModelEndpoint.Backend.OPENAI, **kwargs)


def _checkin(key: tuple, backend, reuse: bool) -> None:
    with _pool_lock:
        idle = _pool.setdefault(key, [])
        if reuse and len(idle) < POOL_IDLE_MAX:
            idle.append(backend)
            return
    backend.close()


class _Job:
    """One scoring request on its own thread; the web thread waits for it at most until the deadline."""

    def __init__(
        self, endpoint, template, args: dict, sampling: dict, timeout_s: float, on_abandoned_end
    ) -> None:
        self.endpoint, self.template, self.args, self.sampling = endpoint, template, args, sampling
        self.timeout_s = timeout_s
        self.on_abandoned_end = on_abandoned_end  # releases the lease when the web thread no longer can
        self.result = self.error = None
        self.done = threading.Event()
        self.stop = threading.Event()
        self.abandoned = False
        self.lock = threading.Lock()

    def check(self) -> None:
        if self.stop.is_set():
            raise _Stopped()

    def run(self) -> None:
        from inference.core.backends.base import Sampling

        try:
            key, backend = _checkout(self.endpoint, self.timeout_s)
            ok = False
            try:
                a = self.args
                # Chunks of about one round of concurrent calls: the deadline is checked between them.
                self.result = score_solution(
                    backend, self.template, a["question"], a["steps"], a["k"], Sampling(**self.sampling),
                    max_prompts_per_call=max(1, int(getattr(backend, "max_concurrency", 8))),
                    before_call=self.check,
                )  # fmt: skip
                ok = True
            finally:
                _checkin(key, backend, ok)
        except BaseException as exc:  # handed to the web thread, which answers JSON
            self.error = exc
        finally:
            with self.lock:
                self.done.set()
                abandoned = self.abandoned
            if abandoned:
                if self.error is not None and not isinstance(self.error, _Stopped):
                    log.warning("scoring request past its deadline ended with %s", type(self.error).__name__)
                try:
                    self.on_abandoned_end()
                except Exception:
                    log.exception("releasing an abandoned scoring request's lease failed")
                finally:
                    from django.db import connection

                    connection.close()  # this thread's own connection, if the release used one

    def wait(self, timeout_s: float) -> bool:
        """True when finished in time; else marks the job abandoned (it stops at its next check)."""
        if self.done.wait(timeout_s):
            return True
        with self.lock:
            if self.done.is_set():
                return True
            self.abandoned = True
            self.stop.set()
        return False


def score_within_deadline(endpoint: ModelEndpoint, template: PromptTemplate, args: dict[str, Any], sampling: dict[str, Any],
            timeout_s: float, release) -> dict[str, Any]:  # fmt: skip
    """Score on a thread of its own and wait at most ``timeout_s``; the response body.

    ``release()`` frees the request's concurrency slot: called here when the scoring
    ended in time, by the scoring thread when it ends after the deadline (the slot stays
    held while its last backend call still runs)."""
    t0 = time.perf_counter()
    job = _Job(endpoint, template.to_core(), args, sampling, timeout_s, release)
    threading.Thread(target=job.run, name="score-api", daemon=True).start()
    if not job.wait(timeout_s):
        raise ApiError(
            504, "timeout",
            f"scoring took longer than {timeout_s:g} s and was stopped: send fewer steps, a lower K or a "
            "lower max_new_tokens, or retry later",
        )  # fmt: skip
    release()
    if job.error is not None:
        raise job.error
    scored = job.result
    return {
        "model": endpoint.name,
        "K": args["k"],
        "template": {"name": template.name, "version": template.version, "hash": template.content_hash},
        "sampling": sampling,
        "rewards": scored.rewards,
        "steps": [
            {"index": i, "reward": st.reward, "samples": [s.as_dict() for s in st.samples]}
            for i, st in enumerate(scored.steps)
        ],
        "usage": {"prompt_tokens": scored.prompt_tokens, "completion_tokens": scored.completion_tokens},
        "seconds": round(time.perf_counter() - t0, 4),
    }


def default_endpoint() -> ModelEndpoint | None:
    """The server of RPRM_SCORING_ENDPOINT (vllm serve in compose), unsaved, when set."""
    url = getattr(settings, "SCORING_ENDPOINT_URL", "")
    if not url:
        return None
    name = settings.SCORING_ENDPOINT_MODEL
    # The same server registered as an endpoint brings its options (its tokenizer for chat
    # templates, concurrency, timeouts): the quickstart registers its local server so.
    registered = (
        ModelEndpoint.objects.filter(
            backend=ModelEndpoint.Backend.OPENAI, path_or_url=url, served_model_name=name
        )
        .order_by("id")
        .first()
    )
    if registered is not None:
        return registered
    return ModelEndpoint(name=name, role=ModelEndpoint.Role.SCORER, backend=ModelEndpoint.Backend.OPENAI,
                         path_or_url=url, served_model_name=name)  # fmt: skip


def resolve_endpoint(name: str | None) -> ModelEndpoint:
    """A registered scorer/student endpoint served over HTTP, or the default one."""
    default = default_endpoint()
    if name is None:
        if default is None:
            raise ApiError(400, "bad_field", "model is required (no default scoring endpoint is configured: "
                           "RPRM_SCORING_ENDPOINT)", field="model")  # fmt: skip
        return default
    endpoint = scorer_endpoint(name, prefer_served=True)
    if endpoint is None:
        if default is not None and default.name == name:
            return default
        raise ApiError(404, "unknown_model", f"no scorer or student model named {name!r}", field="model")
    if endpoint.backend != ModelEndpoint.Backend.OPENAI:
        # Loading it here would put a model copy in every web process.
        raise ApiError(
            422, "model_not_served",
            f"model {name!r} runs inside a worker (backend {endpoint.backend}); the scoring API calls served "
            "models only: serve it (vllm serve, transformers serve) and register it as an OpenAI-compatible endpoint",
            field="model",
        )  # fmt: skip
    return endpoint


def check_budget(args: dict[str, Any], sampling: dict[str, Any]) -> None:
    """Refuse before any work a request that may generate more than the token budget."""
    budget = max_tokens()
    n, k, m = len(args["steps"]), args["k"], sampling["max_new_tokens"]
    if n * k * m > budget:
        raise ApiError(
            413, "over_budget",
            f"this request may generate up to {n} steps x K={k} x {m} max_new_tokens = {n * k * m:,} tokens; "
            f"the budget is {budget:,} tokens per request: send fewer steps, a lower K or a lower max_new_tokens",
        )  # fmt: skip


def _limits() -> Limits:
    timeout = request_timeout_s()
    # A slot outlives its request by the time its last backend call may still run.
    return Limits(rate_per_minute(), max_concurrent(), lease_s=2 * timeout + 30)


@csrf_exempt
@login_not_required
def score(request: HttpRequest) -> JsonResponse:
    try:
        if request.method != "POST":
            response = ApiError(405, "method_not_allowed", "use POST").response()
            response["Allow"] = "POST"
            return response
        token = authenticate_token(_bearer(request))
        if token is None:
            raise ApiError(401, "unauthorized", "unknown or revoked token")
        args = parse_request(_body(request))
        endpoint = resolve_endpoint(args["model"])
        try:
            template = template_for(args["template"])
        except (PromptTemplate.DoesNotExist, ValueError):
            raise ApiError(
                404, "unknown_template", f"no prompt template {args['template']!r}", field="template"
            ) from None
        sampling = eval_sampling_values(endpoint, seed=args["seed"], max_new_tokens=args["max_new_tokens"])
        check_budget(args, sampling)
        limits, gate = _limits(), limiter()
        try:
            lease = gate.acquire(token, limits)
        except Refused as refused:
            response = ApiError(429, refused.code, refused.message).response()
            response["Retry-After"] = str(refused.retry_after)
            return response
        return JsonResponse(
            score_within_deadline(
                endpoint, template, args, sampling, request_timeout_s(), lambda: gate.release(token, lease)
            )
        )
    except ApiError as exc:
        return exc.response()
    except OpenAIBackendError as exc:  # the model server failed: its text stays in the log
        log.warning("scoring request: model endpoint failed: %s", exc)
        if exc.status is not None and exc.status < 500 and exc.status != 429:
            return ApiError(502, "model_refused",
                            f"the model endpoint refused the request (HTTP {exc.status})").response()  # fmt: skip
        response = ApiError(
            503, "model_unavailable", "the model endpoint did not answer; retry later"
        ).response()
        response["Retry-After"] = "5"
        return response
    except Exception:
        ref = uuid.uuid4().hex[:12]
        log.exception("scoring request failed (ref %s)", ref)
        return ApiError(500, "scoring_failed", f"scoring failed; the error is logged as ref {ref}").response()
