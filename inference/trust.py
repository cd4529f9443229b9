"""Trust boundaries of model endpoints (issue 13 part 6).

- Hosts: an OpenAI-compatible endpoint's URL must be http(s) and name a host:port in
  MODEL_ENDPOINT_ALLOWED_HOSTS (the model servers; ``host:*`` for any port, a bare host
  for its scheme's port), checked when it is registered and again at every call (a row
  edited behind the app's back is still refused): ``http://127.0.0.1:5432/`` (Postgres)
  or ``http://localhost:6379/`` (Redis) are refused unless that very pair is allowed.
- Local model paths (transformers, vLLM, an endpoint's ``tokenizer_path``): a hub id
  (``org/name``) or a directory under MODELS_DIR (or MODEL_PATH_ROOTS), resolved, no
  ``..``; a URL of any scheme (``file:``, ``gopher:``) is refused.
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
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
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
        if options.get("tokenizer_path") is not None:
            check_model_path(options["tokenizer_path"], "tokenizer_path")
    elif backend in ("transformers", "vllm"):
        check_model_path(path_or_url)


DEFAULT_PORTS = {"http": 80, "https": 443}
# A URL scheme at the start of a local path ("file:", "gopher:", "C:" too): never a model path.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# A hub id: "name" or "org/name", nothing that walks the filesystem.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


def check_url(url: str) -> None:
    """An http(s) URL whose host:port is in the allow-list (the scheme's port when none is given)."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise EndpointRejected(f"{url[:200]!r} is not an http(s) URL")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise EndpointRejected(f"{url[:200]!r} has an invalid port") from None
    if not host_allowed(parts.hostname, port):
        shown = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        raise EndpointRejected(
            f"host {shown}:{port} is not in MODEL_ENDPOINT_ALLOWED_HOSTS ({', '.join(allowed_hosts()) or 'empty'})"
        )


def _server(url: str) -> str | None:
    """``host:port`` of a configured server URL (VLLM_URL, RPRM_SCORING_ENDPOINT)."""
    parts = urlsplit(url or "")
    if not parts.hostname or parts.scheme not in DEFAULT_PORTS:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port or DEFAULT_PORTS[parts.scheme]}"


def allowed_hosts() -> list[str]:
    """The setting (``host:port`` pairs), plus the servers the operator configured (VLLM_URL,
    RPRM_SCORING_ENDPOINT)."""
    hosts = list(settings.MODEL_ENDPOINT_ALLOWED_HOSTS)
    for url in (settings.VLLM_URL, settings.SCORING_ENDPOINT_URL):
        server = _server(url)
        if server and server not in hosts:
            hosts.append(server)
    return hosts


def parse_allowed(entry: str) -> tuple[str, str | None]:
    """``host:port`` -> (host, port); ``[v6]:port``; ``host:*`` any port; a bare host (or
    bare IPv6) means the scheme's default port only."""
    entry = entry.strip().lower()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else None
    if entry.count(":") == 1:
        host, port = entry.split(":")
        return host, port
    return entry, None


def host_allowed(host: str, port: int) -> bool:
    host = host.lower().rstrip(".")
    for entry in allowed_hosts():
        pattern, allowed_port = parse_allowed(entry)
        pattern = pattern.rstrip(".")
        if not (pattern == host or (pattern.startswith("*.") and host.endswith(pattern[1:]))):
            continue
        if allowed_port == "*" or allowed_port == str(port) or (allowed_port is None and port in (80, 443)):
            return True
    return False


def model_roots() -> list[Path]:
    """Where local models may live: MODELS_DIR, and MODEL_PATH_ROOTS (a shared model store)."""
    return [Path(settings.MODELS_DIR).resolve(), *(Path(p).resolve() for p in settings.MODEL_PATH_ROOTS)]


def check_model_path(value: str, what: str = "model path") -> None:
    """A hub id (``org/name``) or a local directory under :func:`model_roots`; never a URL."""
    if not isinstance(value, str) or not value.strip():
        raise EndpointRejected(f"the {what} is empty")
    if _SCHEME.match(value):
        raise EndpointRejected(
            f"{value[:200]!r} is a URL: a local model is a directory under MODELS_DIR, a hub model an id like org/name"
        )
    if ".." in Path(value).parts:
        raise EndpointRejected(f"the {what} {value[:200]!r} may not contain '..'")
    if _HUB_ID.match(value) and not Path(value).is_absolute() and not Path(value).exists():
        return
    resolved = Path(value).expanduser().resolve()
    if not any(resolved.is_relative_to(root) for root in model_roots()):
        raise EndpointRejected(
            f"the {what} {value[:200]!r} is not under MODELS_DIR ({settings.MODELS_DIR})"
            + (" or MODEL_PATH_ROOTS" if settings.MODEL_PATH_ROOTS else "")
        )


# -- keys ---------------------------------------------------------------------------------
def _fernet() -> MultiFernet:
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    keys = [
        base64.urlsafe_b64encode(hashlib.sha256(b"rprm-endpoint-key:" + s.encode()).digest()) for s in secrets
    ]
    return MultiFernet([Fernet(k) for k in keys])


def encrypt_secret(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode() if value else ""


def decrypt_secret(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise EndpointRejected(
            "the endpoint's stored API key cannot be decrypted (SECRET_KEY changed?): enter the key again"
        ) from None
