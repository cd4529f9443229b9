"""Trust boundaries of model endpoints (issue 13 part 6).

- Hosts: an OpenAI-compatible endpoint's URL must name a host in
  MODEL_ENDPOINT_ALLOWED_HOSTS, checked when it is registered and again at every call
  (a row edited behind the app's back is still refused).
- Options: only the backend keyword arguments listed here reach a backend;
  `trust_remote_code` (code execution on the GPU worker) only when
  MODEL_ALLOW_TRUST_REMOTE_CODE is on.
- Keys: an endpoint's API key is encrypted at rest (Fernet, keyed from SECRET_KEY and its
  fallbacks) or named as an environment variable (`api_key_env`); it is never shown.
- Upstream errors: the public run error is one short line without the server's body;
  the detail, truncated, is for staff (rprm_web.runs.split_error, applied by the lifecycle).
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

ALLOWED_OPTIONS: dict[str, frozenset[str]] = {
    "openai": frozenset({
        "mode", "max_concurrency", "timeout_s", "connect_timeout_s", "total_timeout_s", "max_retries",
        "top_logprobs", "tokenizer_path", "p_yes_via", "extra_body", "api_key_env",
    }),
    "transformers": frozenset({"device", "dtype", "batch_size", "max_batch_tokens", "attn_implementation"}),
    "vllm": frozenset({
        "tensor_parallel_size", "enable_prefix_caching", "gpu_memory_utilization", "logprobs", "max_model_len",
        "dtype", "enforce_eager", "max_num_seqs", "quantization", "seed", "trust_remote_code",
    }),
    "recorded": frozenset(),
}  # fmt: skip
API_KEY_ENV = re.compile(r"^[A-Z][A-Z0-9_]*_API_KEY$")


class EndpointRejected(ValueError):
    """An endpoint outside the trust boundaries; the message says which rule and how to fix it."""


def check_endpoint(backend: str, path_or_url: str, options: dict[str, Any]) -> None:
    if not isinstance(options, dict):
        raise EndpointRejected("options must be a JSON object")
    allowed = ALLOWED_OPTIONS.get(backend, frozenset())
    for name in options:
        if name == "api_key":
            raise EndpointRejected("options may not hold an API key: set the endpoint's key (stored encrypted) "
                                   "or name an environment variable with api_key_env")  # fmt: skip
        if name not in allowed:
            raise EndpointRejected(
                f"option {name!r} is not allowed for the {backend} backend "
                f"(allowed: {', '.join(sorted(allowed)) or 'none'})"
            )
    if options.get("trust_remote_code") and not settings.MODEL_ALLOW_TRUST_REMOTE_CODE:
        raise EndpointRejected(
            "trust_remote_code runs the model repository's code on the GPU worker; "
            "an operator must enable MODEL_ALLOW_TRUST_REMOTE_CODE first"
        )
    env_name = options.get("api_key_env")
    if env_name is not None and (not isinstance(env_name, str) or not API_KEY_ENV.match(env_name)):
        raise EndpointRejected("api_key_env must name a variable such as OPENAI_API_KEY (ending in _API_KEY)")
    if backend == "openai":
        check_url(path_or_url)


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointRejected(f"{url!r} is not an http(s) URL")
    if not host_allowed(parts.hostname):
        raise EndpointRejected(
            f"host {parts.hostname!r} is not in MODEL_ENDPOINT_ALLOWED_HOSTS "
            f"({', '.join(allowed_hosts()) or 'empty'})"
        )


def allowed_hosts() -> list[str]:
    """The setting, plus the hosts of the servers the operator configured (VLLM_URL,
    RPRM_SCORING_ENDPOINT)."""
    hosts = list(settings.MODEL_ENDPOINT_ALLOWED_HOSTS)
    for name in ("VLLM_URL", "SCORING_ENDPOINT_URL"):
        server = urlsplit(getattr(settings, name, "") or "").hostname
        if server and server not in hosts:
            hosts.append(server)
    return hosts


def host_allowed(host: str) -> bool:
    host = host.lower().rstrip(".")
    for pattern in allowed_hosts():
        pattern = pattern.lower().strip("[]")
        if pattern == host or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


# -- keys ---------------------------------------------------------------------------------
def _fernet():
    from cryptography.fernet import Fernet, MultiFernet

    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    keys = [
        base64.urlsafe_b64encode(hashlib.sha256(b"rprm-endpoint-key:" + s.encode()).digest()) for s in secrets
    ]
    return MultiFernet([Fernet(k) for k in keys])


def encrypt_secret(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode() if value else ""


def decrypt_secret(token: str) -> str:
    from cryptography.fernet import InvalidToken

    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise EndpointRejected(
            "the endpoint's stored API key cannot be decrypted (SECRET_KEY changed?): enter the key again"
        ) from None
