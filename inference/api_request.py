"""The scoring API's request: the body read within its limits and validated into a
:class:`ScoreRequest`, and the JSON error every refusal answers.

Every malformed body (bad syntax, deep nesting, huge integers, NaN, lone surrogates,
invalid UTF-8, a chunked body over the limit, wrong types) is an :class:`ApiError` with a
4xx status, never a 500. Errors are JSON ``{"error": {"code", "field", "message"}}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse

from annotations.importers.limits import Decoder, LimitExceeded
from annotations.importers.limits import Limits as JsonLimits
from inference.core.generation import MAX_K
from inference.core.solution_scoring import DEFAULT_K

MAX_NEW_TOKENS = 4096
MAX_SEED = 2**32 - 1  # what every backend's seeding accepts
# The request is a flat object of strings and small integers: anything deeper or longer is hostile.
BODY_LIMITS = JsonLimits(max_depth=8, max_int_digits=12)
FIELDS = frozenset({"question", "steps", "K", "model", "seed", "max_new_tokens", "template"})


def max_body_bytes() -> int:
    return int(settings.SCORING_API_MAX_BODY_BYTES)


def max_steps() -> int:
    return int(settings.SCORING_API_MAX_STEPS)


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


def bearer(request: HttpRequest) -> str:
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


def read_body(request: HttpRequest) -> dict[str, Any]:
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
    n_samples: int  # the wire field "K"
    seed: int | None
    max_new_tokens: int | None


def parse_score_request(request: HttpRequest) -> ScoreRequest:
    """The validated body of a scoring request; raises ApiError (a 4xx) for any malformed one."""
    return ScoreRequest(**parse_request(read_body(request)))


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
    unknown = sorted(set(data) - FIELDS)
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
        "n_samples": _int_field(data, "K", DEFAULT_K, 1, MAX_K),
        "seed": _int_field(data, "seed", None, 0, MAX_SEED),
        "max_new_tokens": _int_field(data, "max_new_tokens", None, 1, MAX_NEW_TOKENS),
    }
