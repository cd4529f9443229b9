"""The scoring API: `POST /api/v1/score` with a bearer token.

Request (JSON): `question` (str), `steps` (list of str), optional `K` (critiques per
step, default 4, at most 32), `model` (name of a scorer or student endpoint),
`seed`, `max_new_tokens`, `template` (`name` or `name@version`). Response: per step
the reward (mean p_yes) and every sample's verdict and p_yes. Errors are JSON
`{"error": {"code", "field", "message"}}`: 400 bad JSON or field, 401 missing or
bad token, 404 unknown model, 405 wrong method, 413 body too large, 422 too many
steps, 500 the model failed. The model runs in the web process (cached per process, one call at a time).

`parse_score_request` is the whole validation layer: every malformed body (bad
syntax, deep nesting, huge integers, NaN, lone surrogates, invalid UTF-8, a chunked
body over the limit, wrong types) is an ApiError with a 4xx status, never a 500.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ImproperlyConfigured, RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from annotations.importers.limits import Decoder, LimitExceeded, Limits
from inference.core.solution_scoring import DEFAULT_K, MAX_K, score_solution

from .evaluation import authenticate_token, eval_sampling_values, scorer_endpoint, template_for
from .models import PromptTemplate


def _limit(name: str, default: int) -> int:
    """A setting, else an environment variable, else the default; bad values fail loudly."""
    value = getattr(settings, name, None) or os.environ.get(name) or default
    try:
        value = int(value)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None
    if value < 1:
        raise ImproperlyConfigured(f"{name} must be >= 1, got {value}")
    return value


def max_body_bytes() -> int:
    return _limit("SCORING_API_MAX_BODY_BYTES", 256 * 1024)


def max_steps() -> int:
    return _limit("SCORING_API_MAX_STEPS", 64)


log = logging.getLogger(__name__)
MAX_NEW_TOKENS = 4096
MAX_SEED = 2**32 - 1  # what every backend's seeding accepts
# The request is a flat object of strings and small integers: anything deeper or longer is hostile.
BODY_LIMITS = Limits(max_depth=8, max_int_digits=12)
_model_lock = threading.Lock()  # one model call at a time per process (GPU memory, torch state)


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
    model: str
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
    if not isinstance(model, str) or not model.strip():
        raise ApiError(400, "bad_field", "model must be the name of a scorer or student model", field="model")
    template = data.get("template")
    if template is not None and (not isinstance(template, str) or not template.strip()):
        raise ApiError(400, "bad_field", "template must be 'name' or 'name@version'", field="template")
    return {
        "question": question,
        "steps": steps,
        "model": model.strip(),
        "template": template,
        "k": _int_field(data, "K", DEFAULT_K, 1, MAX_K),
        "seed": _int_field(data, "seed", None, 0, MAX_SEED),
        "max_new_tokens": _int_field(data, "max_new_tokens", None, 1, MAX_NEW_TOKENS),
    }


def score_with_endpoint(
    endpoint,
    template,
    question: str,
    steps: list[str],
    k: int,
    seed: int | None = None,
    max_new_tokens: int | None = None,
) -> dict[str, Any]:
    """Score one solution with an endpoint's cached backend; the API's response body."""
    from inference.core.backends.base import Sampling

    from .runner import get_backend

    values = eval_sampling_values(endpoint, seed=seed, max_new_tokens=max_new_tokens)
    sampling = Sampling(**values)
    t0 = time.perf_counter()
    with _model_lock:
        backend = get_backend(endpoint)
        scored = score_solution(backend, template.to_core(), question, steps, k, sampling)
    seconds = time.perf_counter() - t0
    return {
        "model": endpoint.name,
        "K": k,
        "template": {"name": template.name, "version": template.version, "hash": template.content_hash},
        "sampling": values,
        "rewards": scored.rewards,
        "steps": [
            {"index": i, "reward": st.reward, "samples": [s.as_dict() for s in st.samples]}
            for i, st in enumerate(scored.steps)
        ],
        "usage": {"prompt_tokens": scored.prompt_tokens, "completion_tokens": scored.completion_tokens},
        "seconds": round(seconds, 4),
    }


@csrf_exempt
@login_not_required
def score(request: HttpRequest) -> JsonResponse:
    try:
        if request.method != "POST":
            response = ApiError(405, "method_not_allowed", "use POST").response()
            response["Allow"] = "POST"
            return response
        if authenticate_token(_bearer(request)) is None:
            raise ApiError(401, "unauthorized", "unknown or revoked token")
        args = parse_score_request(request)
        endpoint = scorer_endpoint(args.model)
        if endpoint is None:
            raise ApiError(
                404, "unknown_model", f"no scorer or student model named {args.model!r}", field="model"
            )
        try:
            template = template_for(args.template)
        except (PromptTemplate.DoesNotExist, ValueError):
            raise ApiError(
                404, "unknown_template", f"no prompt template {args.template!r}", field="template"
            ) from None
        return JsonResponse(
            score_with_endpoint(
                endpoint, template, args.question, args.steps, args.k, args.seed, args.max_new_tokens
            )
        )
    except ApiError as exc:
        return exc.response()
    except Exception:  # the model failed to load or to run: a JSON answer, no internal text
        log.exception("scoring request failed")
        return ApiError(
            500, "scoring_failed", "the model failed to score this request; see the server log"
        ).response()
