"""Prompt templates, model endpoints, generation runs and critiques.

A *critique* is one analysis + verdict for one step; a *run* is one batch job.
Runs and critiques keep their provenance (template hash, endpoint, sampling)
with PROTECT so nothing that produced training data can be deleted from under it.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.urls import reverse

from annotations.models import Dataset, Step
from inference.core.backends.base import Sampling
from inference.core.generation import TEACHER
from inference.core.prompts import PromptTemplate as CoreTemplate
from rprm_web.runs import RunBase

from .trust import EndpointRejected, check_endpoint, decrypt_secret, encrypt_secret


class PromptTemplate(models.Model):
    """A versioned, hashed template; `(name, version)` is what runs record."""

    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    system = models.TextField(blank=True)
    user_template = models.TextField(help_text="Must contain {question}, {previous_steps} and {now_step}.")
    few_shot = models.JSONField(default=list, blank=True, help_text="[[user, assistant], ...]")
    chat = models.BooleanField(default=True, help_text="Render through the tokenizer's chat template.")
    # "named": {question}/{previous_steps}/{now_step}; "positional": the official files' three {}.
    style = models.CharField(max_length=12, default="named")
    # "rprm": rendered exactly like the authors' step rows; "legacy": versions stored before that.
    rendering = models.CharField(max_length=12, default="rprm")
    source_sha256 = models.CharField(
        max_length=64, blank=True, help_text="sha256 of the file it was loaded from."
    )
    content_hash = models.CharField(max_length=64, editable=False)
    source = models.CharField(max_length=255, blank=True, help_text="File it was loaded from, if any.")
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="prompttemplate_unique_version"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Validates placeholders and fixes the hash; templates are immutable once used.
        self.content_hash = self.to_core().content_hash
        super().save(*args, **kwargs)

    def to_core(self) -> CoreTemplate:
        return CoreTemplate(
            name=self.name,
            version=self.version,
            system=self.system,
            user=self.user_template,
            few_shot=tuple(tuple(p) for p in self.few_shot),
            chat=self.chat,
            style=self.style,
            rendering=self.rendering,
            source=self.source,
            source_sha256=self.source_sha256,
        )


class ModelEndpoint(models.Model):
    class Role(models.TextChoices):
        TEACHER = "teacher"
        STUDENT = "student"
        POLICY = "policy"
        SCORER = "scorer"

    class Backend(models.TextChoices):
        TRANSFORMERS = "transformers", "transformers (in the GPU worker)"
        OPENAI = "openai", "OpenAI-compatible server (vllm serve, transformers serve)"
        VLLM = "vllm", "vLLM offline (in the GPU worker)"
        RECORDED = "recorded", "recorded: critiques imported from a file"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200, unique=True)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.TEACHER)
    backend = models.CharField(max_length=15, choices=Backend.choices)
    path_or_url = models.CharField(
        max_length=500, help_text="Model directory / hub id, or the server's base URL."
    )
    served_model_name = models.CharField(
        max_length=200, blank=True, help_text="OpenAI-compatible: the model name."
    )
    default_sampling = models.JSONField(default=dict, blank=True)
    # Backend kwargs, e.g. {"tensor_parallel_size": 2} for vLLM or {"mode": "chat"} for a server;
    # only those inference.trust.ALLOWED_OPTIONS lists.
    options = models.JSONField(default=dict, blank=True)
    # The server's API key, Fernet-encrypted (inference.trust); never shown. Or options.api_key_env.
    api_key_encrypted = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def set_api_key(self, key: str) -> None:
        self.api_key_encrypted = encrypt_secret(key)

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_encrypted or self.options.get("api_key_env"))

    def api_key(self) -> str:
        """The key, decrypted or read from the environment at call time."""
        if self.api_key_encrypted:
            return decrypt_secret(self.api_key_encrypted)
        env_name = self.options.get("api_key_env")
        return os.environ.get(env_name, "") if env_name else ""

    def clean(self) -> None:
        try:
            check_endpoint(self.backend, self.path_or_url, self.options)
        except EndpointRejected as exc:
            raise ValidationError(str(exc)) from None

    def backend_kwargs(self) -> dict:
        """Keyword arguments for inference.core.backends.make_backend; checked against the
        trust boundaries at every call (raises inference.trust.EndpointRejected)."""
        check_endpoint(self.backend, self.path_or_url, self.options)
        options = {k: v for k, v in self.options.items() if k != "api_key_env"}
        if self.backend == self.Backend.OPENAI:
            target = {
                "base_url": self.path_or_url,
                "model": self.served_model_name or self.name,
                **call_deadlines(),
            }
            key = self.api_key()
            if key:
                target["api_key"] = key
        elif self.backend == self.Backend.TRANSFORMERS:
            target = {"model_path": self.path_or_url}
        else:
            target = {"model": self.path_or_url}
        return {**target, **options}


def call_deadlines() -> dict[str, float]:
    """The default deadlines of a model call (settings); an endpoint's options override them."""
    return {
        "connect_timeout_s": settings.MODEL_CALL_CONNECT_TIMEOUT_S,
        "timeout_s": settings.MODEL_CALL_FIRST_BYTE_TIMEOUT_S,
        "total_timeout_s": settings.MODEL_CALL_TOTAL_TIMEOUT_S,
    }


class GenerationRun(RunBase):
    class Kind(models.TextChoices):
        TEACHER_SEED = "teacher_seed", "teacher seed"
        STUDENT_SAMPLE = "student_sample", "student sampling"
        IMPORTED = "imported", "imported critiques"

    # The teacher's critiques (seed runs and critiques imported from elsewhere); student
    # samples feed DPO only. Queues, agreement and the default SFT pool take these.
    TEACHER_KINDS = (Kind.TEACHER_SEED, Kind.IMPORTED)

    PROGRESS = ("steps_done", "steps_total")  # percent = done / total (RunBase)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.TEACHER_SEED)
    endpoint = models.ForeignKey(ModelEndpoint, on_delete=models.PROTECT, related_name="runs")
    template = models.ForeignKey(PromptTemplate, on_delete=models.PROTECT, related_name="runs")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="generation_runs")
    # Step selection: {"labels": [...], "solution_error": "any|error|correct", "limit": int}
    step_filter = models.JSONField(default=dict, blank=True)
    n_samples = models.PositiveSmallIntegerField(default=TEACHER.n_samples)  # K
    temperature = models.FloatField(default=TEACHER.temperature)
    top_p = models.FloatField(default=TEACHER.top_p)
    max_new_tokens = models.PositiveIntegerField(default=TEACHER.max_new_tokens)
    seed = models.IntegerField(null=True, blank=True)
    batch_size = models.PositiveSmallIntegerField(default=8, help_text="Steps per backend call.")

    steps_total = models.PositiveIntegerField(default=0)
    steps_done = models.PositiveIntegerField(default=0)
    critiques_done = models.PositiveIntegerField(default=0)
    tokens_generated = models.BigIntegerField(default=0)
    backend_seconds = models.FloatField(default=0)
    orchestration_seconds = models.FloatField(default=0)
    # Summary written as the run goes: parse rate, agreement overall/correct/incorrect.
    summary = models.JSONField(default=dict, blank=True)
    error_detail = models.TextField(blank=True)  # staff only: traceback and upstream body, truncated
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(n_samples__gte=1), name="generationrun_n_samples_positive"),
            models.CheckConstraint(
                condition=Q(top_p__gt=0) & Q(top_p__lte=1), name="generationrun_top_p_range"
            ),
            models.CheckConstraint(condition=Q(temperature__gte=0), name="generationrun_temperature_nonneg"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} run {self.pk} on {self.dataset}"

    def get_absolute_url(self) -> str:
        return reverse("inference:run_detail", args=[self.uuid])

    @property
    def tokens_per_second(self) -> float | None:
        return self.tokens_generated / self.backend_seconds if self.backend_seconds else None

    def sampling(self) -> Sampling:
        return Sampling(
            temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens, seed=self.seed
        )


class CritiqueQuerySet(models.QuerySet):
    def sft_eligible(self) -> CritiqueQuerySet:
        """The method's keep rule: a verdict the authors' filter accepts (strict or not,
        see inference.core.verdict) that agrees with the label. Gold copies never count."""
        return self.filter(verdict__in=("yes", "no"), matches_label=True, gold_copy=False)


class Critique(models.Model):
    class Verdict(models.TextChoices):
        YES = "yes"
        NO = "no"
        UNPARSEABLE = "unparseable"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    run = models.ForeignKey(GenerationRun, on_delete=models.PROTECT, related_name="critiques")
    step = models.ForeignKey(Step, on_delete=models.PROTECT, related_name="critiques")
    sample_index = models.PositiveSmallIntegerField()
    text = models.TextField()
    sections = models.JSONField(default=dict, blank=True)
    missing_sections = models.JSONField(default=list, blank=True)
    # Strict R-PRM reading; `lenient_verdict` is reported separately, never used as the verdict.
    verdict = models.CharField(max_length=11, choices=Verdict.choices)
    strict = models.BooleanField()
    lenient_verdict = models.CharField(max_length=3, blank=True)
    format_problem = models.CharField(max_length=200, blank=True)
    p_yes = models.FloatField(null=True, blank=True)
    p_yes_source = models.CharField(max_length=10, blank=True)
    # null when the step has no yes/no label or the verdict is unparseable.
    matches_label = models.BooleanField(null=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    # Model text PostgreSQL/UTF-8 cannot hold (NUL, lone surrogates) was replaced by U+FFFD.
    text_repaired = models.BooleanField(default=False)
    # The backend stopped at the token limit (finish reason "length"): the critique is cut.
    truncated = models.BooleanField(default=False)
    # A copy made to measure a reviewer against a known answer (review/gold.py), possibly
    # with a planted flaw: never training data, exports, agreement or dashboards.
    gold_copy = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CritiqueQuerySet.as_manager()

    class Meta:
        ordering = ["run_id", "step_id", "sample_index"]
        constraints = [
            # A gold copy keeps its source's sample number (it must look like any other item).
            models.UniqueConstraint(
                fields=["run", "step", "sample_index"],
                condition=models.Q(gold_copy=False),
                name="critique_unique_sample",
            ),
        ]
        indexes = [
            # All critiques of a step across runs (review screen's "other samples").
            models.Index(fields=["step", "run"], name="critique_step_run_idx"),
            # Run summaries: agreement and parse rate aggregated per run.
            models.Index(fields=["run", "matches_label", "verdict"], name="critique_run_match_idx"),
        ]

    def __str__(self) -> str:
        return f"critique {self.pk} ({self.verdict}) of {self.step}"


# --- scoring API tokens ---------------------------------------------------------
# Benchmark evaluations and guidance runs live in the evaluation app.


class ApiToken(models.Model):
    """A bearer token for the scoring API. Only its sha256 is stored; the token is
    shown once, when it is created (tokens are 256-bit random, so no salt is needed)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=12, help_text="First characters, to tell tokens apart.")
    token_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Also the index of the per-request lookup by hash.
            models.UniqueConstraint(fields=["token_hash"], name="apitoken_unique_hash"),
        ]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _lease_key() -> str:
    return uuid.uuid4().hex


class ApiLease(models.Model):
    """One admitted scoring API request, for the rate and concurrency limits when there
    is no Redis (see inference/api_limits.py). Rows older than the rate window are
    deleted at the token's next request."""

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=32, unique=True, default=_lease_key, editable=False)
    started_at = models.DateTimeField()
    # Holds a concurrency slot until then; None once released.
    running_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["token", "started_at"], name="apilease_token_started")]

    def __str__(self) -> str:
        return f"API request {self.key} of token {self.token_id}"
