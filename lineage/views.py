"""Lineage pages: a model version's chain, two versions compared, and the panel of what
stands downstream of a dataset, a generation run or a snapshot (loaded into those
pages with htmx; each is also a page of its own)."""

from __future__ import annotations

import uuid

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render

from annotations.models import Dataset
from inference.models import GenerationRun
from rprm_web.access import AppRequest, require_reviewer
from training.models import ExportJob, ModelVersion

from .compare import data_diff, result_pairs
from .graph import (
    Downstream,
    downstream_of_dataset,
    downstream_of_run,
    downstream_of_snapshot,
    version_lineage,
)


def model_lineage(request: AppRequest, version_uuid: str) -> HttpResponse:
    require_reviewer(request)
    version = get_object_or_404(
        ModelVersion.objects.select_related("parent", "training_run__snapshot", "snapshot", "template"),
        uuid=version_uuid,
    )
    others = ModelVersion.objects.exclude(id=version.id).order_by("-created_at")[:50]
    return render(request, "lineage/model.html", {"lin": version_lineage(version), "others": others})


def compare(request: AppRequest) -> HttpResponse:
    require_reviewer(request)
    versions = list(ModelVersion.objects.order_by("-created_at")[:200])
    a = _version(request.GET.get("a", ""))
    b = _version(request.GET.get("b", ""))
    context: dict[str, object] = {"versions": versions, "a": a, "b": b}
    if a is not None and b is not None:
        context.update(diff=data_diff(a, b), results=result_pairs(a, b))
    return render(request, "lineage/compare.html", context)


def _version(value: str) -> ModelVersion | None:
    """A version by uuid or by name (both come from the compare form)."""
    if not value or "\x00" in value:
        return None
    by_name = ModelVersion.objects.filter(name=value).first()
    if by_name is not None:
        return by_name
    try:
        key = uuid.UUID(value)
    except ValueError:
        return None
    return ModelVersion.objects.filter(uuid=key).first()


def _downstream(request: AppRequest, title: str, subject: object, down: Downstream) -> HttpResponse:
    template = "lineage/downstream.html#panel" if request.htmx else "lineage/downstream.html"
    return render(request, template, {"title": title, "subject": subject, "down": down})


def dataset_downstream(request: AppRequest, dataset_uuid: str) -> HttpResponse:
    require_reviewer(request)
    dataset = get_object_or_404(Dataset, uuid=dataset_uuid)
    return _downstream(
        request, f"Downstream of dataset {dataset.name}", dataset, downstream_of_dataset(dataset)
    )


def run_downstream(request: AppRequest, run_uuid: str) -> HttpResponse:
    require_reviewer(request)
    run = get_object_or_404(GenerationRun, uuid=run_uuid)
    return _downstream(request, f"Downstream of run #{run.id}", run, downstream_of_run(run))


def snapshot_downstream(request: AppRequest, export_uuid: str) -> HttpResponse:
    require_reviewer(request)
    job = get_object_or_404(ExportJob, uuid=export_uuid)
    return _downstream(request, f"Downstream of snapshot #{job.id}", job, downstream_of_snapshot(job))
