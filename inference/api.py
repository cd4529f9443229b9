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
- SCORING_API_TIMEOUT_S: past it, 504 `timeout`; the scoring's calls in flight are
  cancelled and its concurrency slot freed at once.

Errors are JSON `{"error": {"code", "field", "message"}}`: 400 bad JSON or field, 401
missing or bad token, 403 the endpoint is outside the trust boundaries, 404 unknown
model or template, 405 wrong method, 413, 422 (also `p_yes_unavailable`: the server
gives no log-probs), 429, 502 a bad upstream answer (`model_refused`: an HTTP error;
`bad_upstream_answer`: not JSON, no choices), 503 the model server did not answer, 504
`timeout` (ours) or `upstream_timeout` (a call's deadline), 500 anything else (a reference
to the log, never the exception's text).

One idea a module: `api_request.py` (the body, validated into a ScoreRequest; ApiError),
`api_limits.py` (token budget, deadline, per-token rate and concurrency), `api_pool.py`
(idle backends, the scoring job on its own thread), and here the view and the endpoint.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from inference.core.backends.openai_transport import OpenAIBackendError
from inference.scorers import authenticate_token, eval_sampling_values, scorer_endpoint, template_for

from .api_limits import Refused, check_budget, limiter, request_timeout_s, token_limits
from .api_pool import ScoringJob
from .api_request import ApiError, bearer, parse_request, read_body
from .models import ModelEndpoint, PromptTemplate
from .trust import EndpointRejected

log = logging.getLogger(__name__)


def run_scoring(endpoint: ModelEndpoint, template: PromptTemplate, args: dict[str, Any],
                sampling: dict[str, Any], timeout_s: float, release: Callable[[], None]) -> dict[str, Any]:  # fmt: skip
    """Score on a thread of its own and wait at most ``timeout_s``; the response body.

    ``release()`` frees the request's concurrency slot: called here when the scoring
    ended in time, by the scoring thread when it ends after the deadline (its calls are
    cancelled then, so that is at once)."""
    t0 = time.perf_counter()
    job = ScoringJob(endpoint, template.to_core(), args, sampling, timeout_s, release)
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
    assert job.result is not None
    _require_p_yes(job)
    return _body(endpoint, template, args, sampling, job, time.perf_counter() - t0)


def _require_p_yes(job: ScoringJob) -> None:
    """422 when the server cannot give p_yes at all (no log-probs, no /systemone)."""
    reader = getattr(job.backend, "p_yes", None)
    assert job.result is not None
    if all(r is None for r in job.result.rewards) and getattr(reader, "server_has_logprobs", None) is False:
        raise ApiError(
            422, "p_yes_unavailable",
            "the model endpoint returns no log-probs (and no usable /v1/systemone), so it cannot give p_yes: "
            "serve the model with log-probs (vllm serve) or register a scorer that has them",
            field="model",
        )  # fmt: skip


def _body(endpoint: ModelEndpoint, template: PromptTemplate, args: dict[str, Any], sampling: dict[str, Any],
          job: ScoringJob, seconds: float) -> dict[str, Any]:  # fmt: skip
    scored = job.result
    assert scored is not None
    return {
        "model": endpoint.name,
        "K": args["n_samples"],
        "template": {"name": template.name, "version": template.version, "hash": template.content_hash},
        "sampling": sampling,
        "rewards": scored.rewards,
        "steps": [
            {"index": i, "reward": st.reward, "samples": [s.as_dict() for s in st.samples]}
            for i, st in enumerate(scored.steps)
        ],
        "usage": {"prompt_tokens": scored.prompt_tokens, "completion_tokens": scored.completion_tokens},
        "seconds": round(seconds, 4),
    }


def default_endpoint() -> ModelEndpoint | None:
    """The server of RPRM_SCORING_ENDPOINT (vllm serve in compose), unsaved, when set."""
    url = settings.SCORING_ENDPOINT_URL
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


def _template(name: str | None) -> PromptTemplate:
    try:
        return template_for(name)
    except (PromptTemplate.DoesNotExist, ValueError):
        raise ApiError(404, "unknown_template", f"no prompt template {name!r}", field="template") from None


def upstream_error(exc: OpenAIBackendError) -> JsonResponse:
    """What a failed model call answers; the server's text stays in the log."""
    log.warning("scoring request: model endpoint failed: %s", exc)
    if exc.kind == "timeout":
        return ApiError(
            504, "upstream_timeout", "the model endpoint did not answer within its deadline"
        ).response()
    if exc.kind == "bad_answer":
        return ApiError(502, "bad_upstream_answer",
                        "the model endpoint's answer was not usable (not JSON, or no choices)").response()  # fmt: skip
    if exc.kind == "p_yes_unavailable":
        return ApiError(
            422, "p_yes_unavailable", "the model endpoint cannot give p_yes", field="model"
        ).response()
    if exc.status is not None and exc.status < 500 and exc.status != 429:
        return ApiError(
            502, "model_refused", f"the model endpoint refused the request (HTTP {exc.status})"
        ).response()
    response = ApiError(503, "model_unavailable", "the model endpoint did not answer; retry later").response()
    response["Retry-After"] = "5"
    return response


def _score(request: HttpRequest) -> JsonResponse:
    token = authenticate_token(bearer(request))
    if token is None:
        raise ApiError(401, "unauthorized", "unknown or revoked token")
    args = parse_request(read_body(request))
    endpoint = resolve_endpoint(args["model"])
    template = _template(args["template"])
    sampling = eval_sampling_values(endpoint, seed=args["seed"], max_new_tokens=args["max_new_tokens"])
    check_budget(args, sampling)
    gate = limiter()
    try:
        lease = gate.acquire(token, token_limits())
    except Refused as refused:
        response = ApiError(429, refused.code, refused.message).response()
        response["Retry-After"] = str(refused.retry_after)
        return response
    release = lambda: gate.release(token, lease)  # noqa: E731
    return JsonResponse(run_scoring(endpoint, template, args, sampling, request_timeout_s(), release))


@csrf_exempt
@login_not_required
def score(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        response = ApiError(405, "method_not_allowed", "use POST").response()
        response["Allow"] = "POST"
        return response
    try:
        return _score(request)
    except ApiError as exc:
        return exc.response()
    except EndpointRejected as exc:  # blocked at call time (a row edited behind the app's back)
        return ApiError(403, "endpoint_blocked", str(exc), field="model").response()
    except OpenAIBackendError as exc:
        return upstream_error(exc)
    except Exception:
        ref = uuid.uuid4().hex[:12]
        log.exception("scoring request failed (ref %s)", ref)
        return ApiError(500, "scoring_failed", f"scoring failed; the error is logged as ref {ref}").response()
