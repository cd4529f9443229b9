"""What the scoring API and the evaluations share: API tokens, scorer endpoints,
prompt templates by name, and the evaluation sampling values."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from rprm_web.access import is_reviewer

from .actions import default_template
from .core.solution_scoring import EVAL_SAMPLING
from .models import ApiToken, ModelEndpoint, PromptTemplate

# Endpoints that may score (a student fine-tuned as PRM scores too).
SCORER_ROLES = (ModelEndpoint.Role.SCORER, ModelEndpoint.Role.STUDENT)


# ---------------------------------------------------------------- API tokens


class TokenRefused(ValueError):
    """The user could never use a token (inactive, or neither reviewer nor admin)."""


def create_api_token(user: User, name: str = "") -> tuple[ApiToken, str]:
    """A new token for `user`; the plain token is returned once and never stored.

    Refused up front (TokenRefused) for a user a token could never act for: inactive, or
    holding no role; `authenticate_token` refuses those at use too."""
    if not user.is_active:
        raise TokenRefused(f"user {user.username!r} is inactive: a token would be refused at every use")
    if not is_reviewer(user):
        raise TokenRefused(
            f"user {user.username!r} is neither reviewer nor admin: add them to a group before issuing a token"
        )
    raw = "rprm_" + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=raw[:12], token_hash=ApiToken.hash(raw))
    return token, raw


def authenticate_token(raw: str) -> ApiToken | None:
    if not raw:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(token_hash=ApiToken.hash(raw), revoked_at__isnull=True)
        .first()
    )
    # A token acts for its user: only while that user is active and holds a role
    # (reviewer or admin); an account stripped of its groups loses API access too.
    if token is None or not token.user.is_active or not is_reviewer(token.user):
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > timedelta(seconds=60):
        # At most one write a minute per token: the API must not write on every call.
        ApiToken.objects.filter(id=token.id).update(last_used_at=now)
    return token


# ---------------------------------------------------------------- shared helpers


def eval_sampling_values(endpoint: ModelEndpoint | None, **overrides: Any) -> dict[str, Any]:
    """Method defaults (T=0.95, top_p=0.95, 4,096 new tokens); an endpoint's own
    `default_sampling` may lower max_new_tokens (a model limit); explicit values win."""
    values: dict[str, Any] = {
        "temperature": EVAL_SAMPLING.temperature,
        "top_p": EVAL_SAMPLING.top_p,
        "max_new_tokens": EVAL_SAMPLING.max_new_tokens,
        "seed": None,
    }
    if endpoint is not None:
        for key in ("max_new_tokens", "seed"):
            if endpoint.default_sampling.get(key) is not None:
                values[key] = endpoint.default_sampling[key]
    values.update({k: v for k, v in overrides.items() if v is not None})
    return values


# Other names a scoring endpoint answers to, taught by later stages at start-up (training: a
# model version's own name means its scorer, then its student endpoint). A resolver returns
# endpoint ids in order of preference.
NAME_RESOLVERS: list[Callable[[str], list[int]]] = []


def register_name_resolver(resolver: Callable[[str], list[int]]) -> None:
    if resolver not in NAME_RESOLVERS:
        NAME_RESOLVERS.append(resolver)


def scorer_endpoint(name: str, *, prefer_served: bool = False) -> ModelEndpoint | None:
    """The scorer or student endpoint of this name, or of the model this name registers
    (`prefer_served`: an OpenAI-compatible one first, as the scoring API calls only those)."""
    found = ModelEndpoint.objects.filter(name=name, role__in=SCORER_ROLES).first()
    if found is not None:
        return found
    ids = [i for resolve in NAME_RESOLVERS for i in resolve(name)]
    by_id = ModelEndpoint.objects.filter(id__in=ids, role__in=SCORER_ROLES).in_bulk()
    candidates = [by_id[i] for i in ids if i in by_id]
    if prefer_served:
        candidates.sort(key=lambda e: e.backend != ModelEndpoint.Backend.OPENAI)  # stable: order kept
    return candidates[0] if candidates else None


def template_for(name: str | None = None) -> PromptTemplate:
    """`name` or `name@version`; the built-in default template when empty."""
    if not name:
        return default_template()
    base, _, version = name.partition("@")
    qs = PromptTemplate.objects.filter(name=base)
    if version:
        qs = qs.filter(version=int(version))
    found = qs.order_by("-version").first()
    if found is None:
        raise PromptTemplate.DoesNotExist(f"no prompt template {name!r}")
    return found
