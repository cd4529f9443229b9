"""One env-driven settings module.

Every knob comes from the environment (12-factor). Unset, the project runs on the
embedded default: SQLite under var/ and a filesystem Celery broker that needs no
server, so a newcomer can start without Postgres or Redis. Bad values fail here,
at start-up, with a message that names the variable.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
# Everything the embedded default writes (SQLite, broker folders, uploads, models).
VAR_DIR = Path(env.str("RPRM_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()


_Value = TypeVar("_Value")
_Number = TypeVar("_Number", int, float)


def _env(name: str, reader: Callable[..., _Value], default: Any) -> _Value:
    """The variable read by `reader` (an `environ.Env` method), or `default` when unset; a
    value the reader refuses stops start-up with an error naming the variable."""
    try:
        return reader(name, default=default)
    except (ValueError, ImproperlyConfigured) as exc:  # pragma: no cover - exercised at start-up
        raise ImproperlyConfigured(f"Environment variable {name} is invalid: {exc}") from exc


DEBUG = _env("DEBUG", env.bool, False)
SECRET_KEY = _env("SECRET_KEY", env.str, "")
if not SECRET_KEY:
    if not DEBUG and env.bool("RPRM_REQUIRE_SECRET_KEY", default=False):
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off in production.")
    # Embedded default only: a stable per-checkout key so sessions survive restarts.
    key_file = VAR_DIR / "secret_key"
    if key_file.exists():
        SECRET_KEY = key_file.read_text().strip()
    else:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        SECRET_KEY = secrets.token_urlsafe(50)
        key_file.write_text(SECRET_KEY)

ALLOWED_HOSTS = _env("ALLOWED_HOSTS", env.list, ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = _env("CSRF_TRUSTED_ORIGINS", env.list, [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "axes",
    # The pipeline, bottom to top: each app imports only the ones above it in this list.
    "rprm_web",  # the kernel: run lifecycle and its commands (retry_run, archive_run)
    "annotations",
    "inference",
    "review",
    "training",
    "evaluation",
    "dashboards",
    "lineage",  # reads every layer: a model's chain and what stands downstream
    "studio",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads request.GET: a NUL byte in a query parameter is a 400.
    "rprm_web.middleware.QueryStringGuardMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "rprm_web.middleware.HtmxVaryMiddleware",
    # A launch the broker refused or never answered: a 503 page (JSON for the API), not a 500.
    "rprm_web.middleware.EnqueueErrorMiddleware",
    # A view's PermissionDenied becomes the styled 403 page, logged without a traceback.
    "rprm_web.errors.PermissionDeniedMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes requires: turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

# Login throttling (django-axes): after AXES_FAILURE_LIMIT failed logins for one user name
# from one address, that pair is locked out for AXES_COOLOFF_MINUTES.
AUTHENTICATION_BACKENDS = [
    "rprm_web.auth.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = _env("AXES_FAILURE_LIMIT", env.int, 5)
AXES_COOLOFF_TIME = timedelta(minutes=_env("AXES_COOLOFF_MINUTES", env.int, 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLED = _env("AXES_ENABLED", env.bool, True)
# No start-up banner on every command and no log line per successful login: axes logs
# only what needs a look (a failed login, a lockout), through its own logger below.
AXES_VERBOSE = False
# Behind a reverse proxy, the client address comes from X-Forwarded-For (count the proxies).
AXES_IPWARE_PROXY_COUNT = _env("AXES_PROXY_COUNT", env.int, 0) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if AXES_IPWARE_PROXY_COUNT else ["REMOTE_ADDR"]
)

# Content Security Policy (django-csp): scripts only from this origin (no inline script,
# no inline handlers); inline styles stay allowed (KaTeX and htmx set them).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

ROOT_URLCONF = "rprm_web.urls"
WSGI_APPLICATION = "rprm_web.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "annotations.context_processors.studio",
            ],
            "builtins": ["template_partials.templatetags.partials", "rprm_web.mathtext"],
        },
    },
]

DATABASES = {
    "default": _env("DATABASE_URL", env.db_url, f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # WAL + a busy timeout: the web process and the worker share one file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USING_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "annotations:dataset_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on a missing root
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG and _env("STATIC_MANIFEST", env.bool, False)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
MEDIA_ROOT = _env("MEDIA_ROOT", env.path, VAR_DIR / "media")
# Uploaded datasets can be large: stream them to disk, never hold them in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 20 * 1024 * 1024
# Import limits (annotations/importers/limits.py): a hostile file fails with a message.
IMPORT_MAX_UPLOAD_BYTES = _env("IMPORT_MAX_UPLOAD_BYTES", env.int, 2 << 30)
# Any upload over IMPORT_MAX_UPLOAD_BYTES is dropped while it streams in, before it fills the disk.
FILE_UPLOAD_HANDLERS = [
    "annotations.uploads.UploadSizeLimitHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
IMPORT_MAX_RECORD_BYTES = _env("IMPORT_MAX_RECORD_BYTES", env.int, 64 << 20)
IMPORT_MAX_DECOMPRESSED_BYTES = _env("IMPORT_MAX_DECOMPRESSED_BYTES", env.int, 50 << 30)
IMPORT_MAX_DECOMPRESSION_RATIO = _env("IMPORT_MAX_DECOMPRESSION_RATIO", env.int, 100)
IMPORT_RATIO_FLOOR_BYTES = _env("IMPORT_RATIO_FLOOR_BYTES", env.int, 64 << 20)
IMPORT_MAX_DEPTH = _env("IMPORT_MAX_DEPTH", env.int, 64)
IMPORT_MAX_INT_DIGITS = _env("IMPORT_MAX_INT_DIGITS", env.int, 100)
MODELS_DIR = _env("MODELS_DIR", env.path, VAR_DIR / "models")

# --- Celery -----------------------------------------------------------------
REDIS_URL = _env("REDIS_URL", env.str, "")
if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(f"REDIS_URL must be a redis:// URL, got {REDIS_URL!r}")
BROKER_DIR = VAR_DIR / "broker"
# A launch must never hang the web: connecting to the broker and publishing a run's message
# give up after these many seconds (a silent broker), and a refused publish is retried this
# many times; then the run is failed with the reason and the page says so (rprm_web.runs.enqueue).
BROKER_CONNECT_TIMEOUT_S = _env("BROKER_CONNECT_TIMEOUT_S", env.float, 3.0)
BROKER_SOCKET_TIMEOUT_S = _env("BROKER_SOCKET_TIMEOUT_S", env.float, 5.0)
BROKER_PUBLISH_RETRIES = _env("BROKER_PUBLISH_RETRIES", env.int, 1)
if BROKER_CONNECT_TIMEOUT_S <= 0 or BROKER_SOCKET_TIMEOUT_S <= 0 or BROKER_PUBLISH_RETRIES < 0:
    raise ImproperlyConfigured(
        "BROKER_CONNECT_TIMEOUT_S and BROKER_SOCKET_TIMEOUT_S must be > 0, BROKER_PUBLISH_RETRIES >= 0"
    )
CELERY_BROKER_CONNECTION_TIMEOUT = BROKER_CONNECT_TIMEOUT_S
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": BROKER_PUBLISH_RETRIES,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {
        "visibility_timeout": 12 * 3600,
        "socket_connect_timeout": BROKER_CONNECT_TIMEOUT_S,
        "socket_timeout": BROKER_SOCKET_TIMEOUT_S,
    }
else:
    # Embedded default: a broker that is just folders, for one machine without Redis.
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = _env("CELERY_TASK_ALWAYS_EAGER", env.bool, False)
# CPU threads for torch in workers (0 = torch's default). Small models on a busy
# 2-core box run several times faster on 1 thread than with oversubscribed cores.
TORCH_CPU_THREADS = _env("TORCH_CPU_THREADS", env.int, 0)
# The scoring API's default model server (OpenAI-compatible: `vllm serve` in compose, a
# local `transformers serve` in the quickstart) and the model name it serves. The API
# never loads a model in the web process; its limits are SCORING_API_* (inference/api.py).
SCORING_ENDPOINT_URL = _env("RPRM_SCORING_ENDPOINT", env.str, "")
SCORING_ENDPOINT_MODEL = _env("RPRM_SCORING_MODEL", env.str, "")
if SCORING_ENDPOINT_URL and not SCORING_ENDPOINT_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"RPRM_SCORING_ENDPOINT must be an http(s) URL, got {SCORING_ENDPOINT_URL!r}")
if SCORING_ENDPOINT_URL and not SCORING_ENDPOINT_MODEL:
    raise ImproperlyConfigured(
        "RPRM_SCORING_MODEL (the served model name) must be set with RPRM_SCORING_ENDPOINT"
    )


def _at_least(name: str, reader: Callable[..., _Number], default: _Number, minimum: _Number) -> _Number:
    """`_env`, and an error naming the variable when the value is below `minimum`."""
    value = _env(name, reader, default)
    if value < minimum:
        raise ImproperlyConfigured(f"Environment variable {name} must be >= {minimum}, got {value}")
    return value


# Scoring API limits (inference/api.py): body size, steps per request, the token budget
# (steps x K x max_new_tokens), the whole-request deadline, per-token concurrency and rate.
SCORING_API_MAX_BODY_BYTES = _at_least("SCORING_API_MAX_BODY_BYTES", env.int, 256 * 1024, 1)
SCORING_API_MAX_STEPS = _at_least("SCORING_API_MAX_STEPS", env.int, 64, 1)
SCORING_API_MAX_TOKENS = _at_least("SCORING_API_MAX_TOKENS", env.int, 262_144, 1)
SCORING_API_TIMEOUT_S = _at_least("SCORING_API_TIMEOUT_S", env.int, 25, 1)
SCORING_API_MAX_CONCURRENT = _at_least("SCORING_API_MAX_CONCURRENT", env.int, 4, 1)
SCORING_API_RATE_PER_MINUTE = _at_least("SCORING_API_RATE_PER_MINUTE", env.int, 60, 1)
# Deadlines of every call to a model server (inference/core/backends/openai_transport.py),
# unless the endpoint's options set its own (connect_timeout_s, timeout_s, total_timeout_s):
# to connect, for the server's next bytes (the first included), and for the whole request
# with its retries, which also cuts a server that drips its answer. A generation run polls
# its cancel flag this often while a call is in flight, and cancels the call.
MODEL_CALL_CONNECT_TIMEOUT_S = _at_least("MODEL_CALL_CONNECT_TIMEOUT_S", env.float, 10.0, 0.1)
MODEL_CALL_FIRST_BYTE_TIMEOUT_S = _at_least("MODEL_CALL_FIRST_BYTE_TIMEOUT_S", env.float, 300.0, 0.1)
MODEL_CALL_TOTAL_TIMEOUT_S = _at_least("MODEL_CALL_TOTAL_TIMEOUT_S", env.float, 600.0, 0.1)
RUN_CANCEL_POLL_S = _at_least("RUN_CANCEL_POLL_S", env.float, 2.0, 0.1)
# Dashboards: a summary older than this is refreshed; up to this many critiques it is
# rebuilt in the request itself (0: always by the worker).
DASHBOARD_STALE_SECONDS = _at_least("DASHBOARD_STALE_SECONDS", env.int, 600, 1)
DASHBOARD_SYNC_LIMIT = _at_least("DASHBOARD_SYNC_LIMIT", env.int, 20_000, 0)
# Review workflow: how long a claimed item stays leased, and the share of items
# sampled (deterministically) for a second, independent review.
REVIEW_LEASE_MINUTES = _at_least("REVIEW_LEASE_MINUTES", env.int, 20, 1)
REVIEW_DOUBLE_FRACTION = _env("REVIEW_DOUBLE_FRACTION", env.float, 0.1)
if not 0 <= REVIEW_DOUBLE_FRACTION <= 1:
    raise ImproperlyConfigured("REVIEW_DOUBLE_FRACTION must be between 0 and 1")
# Gold items (review/gold.py): the share of claims served a known answer, and the bar under
# which a reviewer with at least REVIEW_GOLD_MIN_N answers is flagged to admins.
REVIEW_GOLD_RATE = _env("REVIEW_GOLD_RATE", env.float, 0.05)
REVIEW_GOLD_MIN_ACCURACY = _env("REVIEW_GOLD_MIN_ACCURACY", env.float, 0.7)
REVIEW_GOLD_MIN_N = _at_least("REVIEW_GOLD_MIN_N", env.int, 10, 1)
if not (0 <= REVIEW_GOLD_RATE <= 1 and 0 <= REVIEW_GOLD_MIN_ACCURACY <= 1):
    raise ImproperlyConfigured("REVIEW_GOLD_RATE and REVIEW_GOLD_MIN_ACCURACY must be between 0 and 1")
# The deployment's OpenAI-compatible model server (compose: the vllm service), which
# `manage.py register_endpoints` registers under these names as the default teacher
# and scorer; the web, the scoring API and the workers call it over HTTP.
VLLM_URL = _env("VLLM_URL", env.str, "")
VLLM_SERVED_MODEL = _env("VLLM_SERVED_MODEL", env.str, "")
DEFAULT_TEACHER_ENDPOINT = _env("DEFAULT_TEACHER_ENDPOINT", env.str, "vllm-teacher")
DEFAULT_SCORER_ENDPOINT = _env("DEFAULT_SCORER_ENDPOINT", env.str, "vllm-scorer")
# Trust boundaries of model endpoints (inference/trust.py): the hosts an OpenAI-compatible
# endpoint may point at (exact names or "*.example.org"), checked at registration and at
# every call. The host of VLLM_URL (compose's vllm service), set by the operator, is always
# allowed too. And whether `trust_remote_code` (code from the model repository runs on the
# GPU worker) may be set at all.
# Entries are host:port pairs ("127.0.0.1:8000", "[::1]:8000", "*.models.internal:443"),
# "host:*" for any port; a bare host allows its scheme's port (80/443) only. Local model
# paths must lie under MODELS_DIR or one of MODEL_PATH_ROOTS (a shared model store).
MODEL_ENDPOINT_ALLOWED_HOSTS = _env(
    "MODEL_ENDPOINT_ALLOWED_HOSTS", env.list, ["127.0.0.1:8000", "localhost:8000", "[::1]:8000"]
)
for _entry in MODEL_ENDPOINT_ALLOWED_HOSTS:
    _port = (
        _entry.rsplit("]", 1)[-1].rpartition(":")[2]
        if _entry.count(":") == 1 or _entry.startswith("[")
        else ""
    )
    if _port and _port != "*" and not _port.isdigit():
        raise ImproperlyConfigured(
            f"MODEL_ENDPOINT_ALLOWED_HOSTS: {_entry!r} is not host:port, host:* or host"
        )
MODEL_PATH_ROOTS = _env("MODEL_PATH_ROOTS", env.list, [])
MODEL_ALLOW_TRUST_REMOTE_CODE = _env("MODEL_ALLOW_TRUST_REMOTE_CODE", env.bool, False)
# Seconds without a heartbeat after which a worker counts as gone (UI banner).
WORKER_STALE_AFTER_S = _env("WORKER_STALE_AFTER_S", env.int, 45)
# Run lifecycle (rprm_web/runs.py): a running job whose heartbeat is older than this
# was left by a dead worker and is taken over; heartbeats are written this often.
RUN_STALE_AFTER_S = _env("RUN_STALE_AFTER_S", env.int, 600)
RUN_HEARTBEAT_EVERY_S = _env("RUN_HEARTBEAT_EVERY_S", env.float, 30.0)
if not 0 < RUN_HEARTBEAT_EVERY_S * 2 <= RUN_STALE_AFTER_S:
    raise ImproperlyConfigured("RUN_STALE_AFTER_S must be at least twice RUN_HEARTBEAT_EVERY_S")
# A lost database connection inside a run (failover, admin shutdown) is retried this many times
# in a row, waiting RUN_TRANSIENT_BACKOFF_S, then twice that … (at most 30 s), before it fails.
RUN_TRANSIENT_RETRIES = _env("RUN_TRANSIENT_RETRIES", env.int, 5)
RUN_TRANSIENT_BACKOFF_S = _env("RUN_TRANSIENT_BACKOFF_S", env.float, 1.0)
if RUN_TRANSIENT_RETRIES < 0 or RUN_TRANSIENT_BACKOFF_S < 0:
    raise ImproperlyConfigured("RUN_TRANSIENT_RETRIES and RUN_TRANSIENT_BACKOFF_S must be >= 0")
# A run still queued after this long may have lost its message (the web died between commit and
# publish, the broker lost its data): a worker's sweep queues it again (claims are conditional).
RUN_REQUEUE_QUEUED_AFTER_S = _env("RUN_REQUEUE_QUEUED_AFTER_S", env.int, 600)
# Test-only fault injection (tests/faults): model names whose claim kills the worker.
FAULT_KILL_ON_CLAIM = _env("RPRM_FAULT_KILL_ON_CLAIM", env.list, [])

# Hugging Face's progress bars (model loading) only on a terminal: in worker, CI and service
# logs they are noise. Set here, before any ML library is imported. The project's own bars
# (rprm_web.cli.Progress) choose by their stream: a bar on a terminal, plain lines otherwise.
if not sys.stderr.isatty():
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": _env("LOG_LEVEL", env.str, "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # A 403 for a missing role or a 404 is a page the user sees, not an incident: Django
        # would log each with a traceback at WARNING. Server errors (5xx) are still logged.
        "django.request": {"level": "ERROR"},
        "axes": {"level": "WARNING"},
    },
}

if not DEBUG:
    SESSION_COOKIE_HTTPONLY = True
    CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
    X_FRAME_OPTIONS = "DENY"

# --- HTTPS (production) ---------------------------------------------------------------
# RPRM_REQUIRE_SECRET_KEY marks a production deployment (compose sets it): there every
# setting below defaults to the strict value `manage.py check --deploy` asks for; each can
# be turned off by its variable (e.g. SECURE_SSL_REDIRECT=0 when the proxy redirects).
PRODUCTION = not DEBUG and env.bool("RPRM_REQUIRE_SECRET_KEY", default=False)
SECURE_SSL_REDIRECT = _env("SECURE_SSL_REDIRECT", env.bool, PRODUCTION)
SESSION_COOKIE_SECURE = _env("SESSION_COOKIE_SECURE", env.bool, PRODUCTION)
CSRF_COOKIE_SECURE = _env("CSRF_COOKIE_SECURE", env.bool, PRODUCTION)
SECURE_HSTS_SECONDS = _env("SECURE_HSTS_SECONDS", env.int, 31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _env("SECURE_HSTS_INCLUDE_SUBDOMAINS", env.bool, PRODUCTION)
SECURE_HSTS_PRELOAD = _env("SECURE_HSTS_PRELOAD", env.bool, PRODUCTION)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# The TLS-terminating proxy says the original scheme in this header (Caddy, nginx, Traefik
# all can); without it, SECURE_SSL_REDIRECT would loop. Off: set SECURE_PROXY_SSL_HEADER="".
_proxy_header = _env("SECURE_PROXY_SSL_HEADER", env.str, "HTTP_X_FORWARDED_PROTO" if PRODUCTION else "")
SECURE_PROXY_SSL_HEADER = (_proxy_header, "https") if _proxy_header else None
