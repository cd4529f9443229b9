"""Named write actions for the inference app; views and commands call these."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from annotations.models import Dataset
from inference.core.generation import TEACHER
from inference.core.prompts import DEFAULT_TEMPLATE, load_template_file
from inference.core.prompts import PromptTemplate as CoreTemplate
from rprm_web import runs

from .models import GenerationRun, ModelEndpoint, PromptTemplate
from .runner import select_steps
from .trust import check_endpoint

# The method's defaults: seed run T=0.4, top_p=0.95, up to 8,192 new tokens, 4 samples.
TEACHER_DEFAULTS = {k: v for k, v in TEACHER.fields().items() if v is not None}


def register_server_endpoints(url: str, served_model: str) -> list[ModelEndpoint]:
    """The deployment's OpenAI-compatible server as the default teacher and scorer endpoints
    (names from settings DEFAULT_TEACHER_ENDPOINT / DEFAULT_SCORER_ENDPOINT); idempotent."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"VLLM_URL must be an http(s) URL, got {url!r}")
    if not served_model:
        raise ValueError("VLLM_SERVED_MODEL must name the model the server serves")
    out = []
    for name, role in (
        (settings.DEFAULT_TEACHER_ENDPOINT, ModelEndpoint.Role.TEACHER),
        (settings.DEFAULT_SCORER_ENDPOINT, ModelEndpoint.Role.SCORER),
    ):
        endpoint, _ = ModelEndpoint.objects.update_or_create(
            name=name,
            defaults={
                "role": role,
                "backend": ModelEndpoint.Backend.OPENAI,
                "path_or_url": url,
                "served_model_name": served_model,
            },
        )
        out.append(endpoint)
    return out


def default_endpoint(role: str) -> ModelEndpoint | None:
    """The endpoint the forms preselect for a role (teacher, scorer), if it is registered."""
    name = (
        settings.DEFAULT_SCORER_ENDPOINT
        if role == ModelEndpoint.Role.SCORER
        else settings.DEFAULT_TEACHER_ENDPOINT
    )
    return ModelEndpoint.objects.filter(name=name).first() if name else None


def default_template() -> PromptTemplate:
    """Our own R-PRM-structured template, stored once per distinct content."""
    core = DEFAULT_TEMPLATE
    existing = PromptTemplate.objects.filter(name=core.name, content_hash=core.content_hash).first()
    if existing:
        return existing
    return save_template(core, source="built-in")


def save_template(
    core: CoreTemplate, *, source: str = "", user: User | None = None, notes: str = ""
) -> PromptTemplate:
    """Store a core template as a new version of its name (or reuse identical content)."""
    same = PromptTemplate.objects.filter(name=core.name, content_hash=core.content_hash).first()
    if same:
        return same
    with transaction.atomic():
        last = PromptTemplate.objects.select_for_update().filter(name=core.name).order_by("-version").first()
        version = max(core.version, (last.version + 1) if last else 1)
        return PromptTemplate.objects.create(
            name=core.name,
            version=version,
            system=core.system,
            user_template=core.user,
            few_shot=[list(p) for p in core.few_shot],
            chat=core.chat,
            style=core.style,
            rendering=core.rendering,
            source=source or core.source,
            source_sha256=core.source_sha256,
            notes=notes,
            created_by=user,
        )


def import_template_file(
    path: str | Path, *, name: str | None = None, user: User | None = None
) -> PromptTemplate:
    core = load_template_file(path, name=name)
    return save_template(core, source=core.source or Path(path).name, user=user)


def guess_backend(model: str) -> str:
    return (
        ModelEndpoint.Backend.OPENAI
        if model.startswith(("http://", "https://"))
        else ModelEndpoint.Backend.TRANSFORMERS
    )


def endpoint_for(
    model: str,
    *,
    backend: str | None = None,
    role: str = ModelEndpoint.Role.TEACHER,
    served_model_name: str = "",
) -> ModelEndpoint:
    """An endpoint by name, or one registered on the fly for a path or URL."""
    found = ModelEndpoint.objects.filter(name=model).first()
    if found:
        return found
    backend = backend or guess_backend(model)
    check_endpoint(backend, model, {})  # raises EndpointRejected (e.g. a host not allowed)
    endpoint, _ = ModelEndpoint.objects.get_or_create(
        name=model,
        defaults={
            "backend": backend,
            "path_or_url": model,
            "role": role,
            "served_model_name": served_model_name,
        },
    )
    return endpoint


def create_run(
    *,
    dataset: Dataset,
    endpoint: ModelEndpoint,
    template: PromptTemplate | None = None,
    kind: str = GenerationRun.Kind.TEACHER_SEED,
    step_filter: dict[str, Any] | None = None,
    user: User | None = None,
    queue: bool = True,
    **params: Any,
) -> GenerationRun:
    """Create a run and (by default) queue it on the gpu queue once the transaction commits."""
    values = {
        **TEACHER_DEFAULTS,
        **endpoint.default_sampling,
        **{k: v for k, v in params.items() if v is not None},
    }
    run = GenerationRun.objects.create(
        kind=kind,
        dataset=dataset,
        endpoint=endpoint,
        template=template or default_template(),
        step_filter=step_filter or {},
        created_by=user,
        **values,
    )
    run.steps_total = _count_steps(run)
    run.save(update_fields=["steps_total"])
    if queue:
        runs.enqueue(GenerationRun, run.id)
    return run


def _count_steps(run: GenerationRun) -> int:
    return select_steps(run).count()


def request_cancel(run: GenerationRun) -> bool:
    """Cooperative: the worker stops between batches. A queued run, or one whose worker
    died, is cancelled at once."""
    return runs.request_cancel(GenerationRun, run.id) != "finished"
