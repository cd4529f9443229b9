from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef
from django.http import HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseStopPolling

from rprm_web import runs
from rprm_web.access import AppRequest, require_admin, require_reviewer
from rprm_web.inputs import short_upload_name

from .actions import create_import_job
from .forms import ImportForm, SolutionFilterForm
from .models import Dataset, ErrorType, ImportJob, Solution, Step


def dataset_list(request: AppRequest) -> HttpResponse:
    require_reviewer(request)
    datasets = Dataset.objects.select_related("created_by")
    show_archived = request.GET.get("archived") == "1"
    imports = runs.listed(ImportJob.objects.select_related("dataset", "created_by"), show_archived)[:20]
    context = {"datasets": datasets, "imports": imports, "show_archived": show_archived}
    return render(request, "annotations/dataset_list.html", context)


def dataset_detail(request: AppRequest, dataset_uuid: uuid.UUID) -> HttpResponse:
    require_reviewer(request)
    dataset = get_object_or_404(Dataset, uuid=dataset_uuid)
    form = SolutionFilterForm(request.GET or None)
    solutions = Solution.objects.filter(dataset=dataset).select_related("problem", "error_type")
    if form.is_valid():
        data = form.cleaned_data
        if data["error"] == "error":
            solutions = solutions.filter(first_error_index__gte=0)
        elif data["error"] == "correct":
            solutions = solutions.filter(first_error_index=-1)
        elif data["error"] == "unknown":
            solutions = solutions.filter(first_error_index__isnull=True)
        if data["first_error"] is not None:
            solutions = solutions.filter(first_error_index=data["first_error"])
        if data["generator"]:
            solutions = solutions.filter(generator=data["generator"])
        if data["label"]:
            solutions = solutions.filter(
                Exists(Step.objects.filter(solution=OuterRef("pk"), label=data["label"]))
            )
        if data["q"]:
            solutions = solutions.filter(problem__question__icontains=data["q"])
    page = Paginator(solutions.order_by("id"), 50).get_page(request.GET.get("page"))
    generators = (
        Solution.objects.filter(dataset=dataset)
        .exclude(generator="")
        .values_list("generator", flat=True)
        .distinct()
        .order_by("generator")[:50]
    )
    context = {"dataset": dataset, "form": form, "page": page, "generators": generators}
    template = "annotations/dataset_detail.html"
    if request.htmx and request.htmx.target == "solutions":
        template += "#solutions"
    return render(request, template, context)


def solution_detail(request: AppRequest, solution_uuid: uuid.UUID) -> HttpResponse:
    require_reviewer(request)
    solution = get_object_or_404(
        Solution.objects.select_related("dataset", "problem", "error_type"), uuid=solution_uuid
    )
    steps = list(solution.steps.all())
    neighbours = Solution.objects.filter(dataset=solution.dataset)
    context = {
        "solution": solution,
        "steps": steps,
        "previous": neighbours.filter(id__lt=solution.id).order_by("-id").only("uuid").first(),
        "next": neighbours.filter(id__gt=solution.id).order_by("id").only("uuid").first(),
        "error_types": {e.slug: e for e in ErrorType.objects.all()},
        # PRMBench: the model sees modified_question; show the original when it differs.
        "original_question": _original_question(solution),
    }
    return render(request, "annotations/solution_detail.html", context)


def _original_question(solution: Solution) -> str:
    meta = solution.metadata or {}
    original = meta.get("original_question") or meta.get("question")
    if isinstance(original, str) and original.strip() != solution.problem.question.strip():
        return original
    return ""


@require_http_methods(["GET", "POST"])
def import_new(request: AppRequest) -> HttpResponseBase:
    require_admin(request)
    form = ImportForm(
        request.POST or None, request.FILES or None, refused_upload=getattr(request, "upload_refused", None)
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        saved: list[tuple[Path, str]] = []

        def start() -> ImportJob:
            saved.extend(_save_upload(upload) for upload in data["file"])
            job = create_import_job(
                saved,
                dataset_name=data["name"] or None,
                fmt=data["format"] or None,
                options={"rating0": data["rating0"]},
                user=request.user,
                split=data["split"],
            )
            runs.enqueue(ImportJob, job.id)  # a broker error fails the job and answers 503 (EnqueueError)
            return job

        # A second POST of the same form gets the first job; the copies it wrote go.
        job, created = runs.launch_once(ImportJob, form.launch_key_value(), start)
        if not created:
            for path, _ in saved:
                path.unlink(missing_ok=True)
        return redirect("annotations:import_detail", job_uuid=job.uuid)
    return render(request, "annotations/import_new.html", {"form": form})


def _save_upload(upload: UploadedFile) -> tuple[Path, str]:
    """The upload on disk under MEDIA_ROOT/uploads (its job deletes it when it ends)."""
    name = short_upload_name(upload.name or "upload")
    target = Path(settings.MEDIA_ROOT) / "uploads" / f"{uuid.uuid4().hex}-{name}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return target, name


def import_detail(request: AppRequest, job_uuid: uuid.UUID) -> HttpResponse:
    require_admin(request)
    job = get_object_or_404(ImportJob.objects.select_related("dataset"), uuid=job_uuid)
    if request.htmx:
        response = render(request, "annotations/import_detail.html#progress", {"job": job})
        if job.is_finished:
            # 286 tells htmx to stop polling; the final state is in this response.
            stop = HttpResponseStopPolling(response.content)
            return stop
        return response
    return render(request, "annotations/import_detail.html", {"job": job})
