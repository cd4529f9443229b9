"""Training-data export screens (admins): `training:export_*`, served under /review/exports/
(their URLs before the app split, so bookmarks keep working); templates in templates/training/."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django import forms
from django.http import FileResponse, Http404, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django_htmx.http import HttpResponseStopPolling

from annotations.models import Dataset, ErrorType
from inference.models import GenerationRun
from rprm_web import runs
from rprm_web.access import AppRequest, require_admin
from rprm_web.forms import LaunchKeyForm

from .export import create_export_job
from .models import ExportJob


class ExportForm(LaunchKeyForm):
    sft = forms.BooleanField(required=False, initial=True, label="SFT rows (prompt-completion)")
    dpo = forms.BooleanField(required=False, initial=True, label="DPO pairs (prompt/chosen/rejected)")
    datasets = forms.ModelMultipleChoiceField(Dataset.objects.order_by("name"), required=False)
    runs = forms.ModelMultipleChoiceField(GenerationRun.objects.order_by("-id"), required=False)
    error_types = forms.ModelMultipleChoiceField(ErrorType.objects.active(), required=False)
    require_review = forms.BooleanField(required=False, label="Only critiques reviewed as sound")
    balance = forms.BooleanField(required=False, initial=True, label="Balance yes/no 1:1")
    val_fraction = forms.FloatField(
        initial=0.05, min_value=0, max_value=0.5, label="Validation share (by problem)"
    )
    dpo_pairs_per_step = forms.IntegerField(initial=2, min_value=1, max_value=50, label="DPO pairs per step")
    seed = forms.IntegerField(initial=0)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or self.cleaned_data
        if not data.get("sft") and not data.get("dpo"):
            raise forms.ValidationError("Choose SFT, DPO or both.")
        return data

    def clean_val_fraction(self) -> float:
        return float(self.cleaned_data["val_fraction"])

    def filters(self) -> dict:
        d = self.cleaned_data
        return {
            "kinds": [k for k in ("sft", "dpo") if d.get(k)],
            "datasets": [x.id for x in d["datasets"]],
            "runs": [x.id for x in d["runs"]],
            "error_types": [x.slug for x in d["error_types"]],
            "require_review": bool(d.get("require_review")),
            "balance": bool(d.get("balance")),
            "val_fraction": d["val_fraction"],
            "dpo_pairs_per_step": d["dpo_pairs_per_step"],
            "seed": d["seed"],
        }


def export_list(request: AppRequest) -> HttpResponse:
    require_admin(request)
    form = ExportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        job, _ = runs.launch_once(
            ExportJob, form.launch_key_value(), lambda: create_export_job(request.user, form.filters())
        )
        return redirect("training:export_detail", export_uuid=job.uuid)
    show_archived = request.GET.get("archived") == "1"
    jobs = runs.listed(ExportJob.objects.select_related("created_by"), show_archived)[:30]
    return render(
        request, "training/exports.html", {"form": form, "jobs": jobs, "show_archived": show_archived}
    )


def export_detail(request: AppRequest, export_uuid: UUID) -> HttpResponse:
    require_admin(request)
    job = get_object_or_404(ExportJob.objects.select_related("created_by"), uuid=export_uuid)
    info = (job.manifest or {}).get("files", {})
    counts = (job.manifest or {}).get("counts", {})
    order = ["sft_eligible_in_scope", "excluded_by_review", "accepted", "sft_train", "sft_val", "dpo"]
    context = {
        "job": job,
        "files": [(name, info.get(name, {})) for name in job.files],
        "counts": [(k, counts[k]) for k in order if k in counts]
        + [(k, v) for k, v in counts.items() if k not in order],
    }
    if request.htmx and request.htmx.target == "export-progress":
        response = render(request, "training/export_detail.html#progress", context)
        return HttpResponseStopPolling(response.content) if job.is_finished else response
    return render(request, "training/export_detail.html", context)


def export_download(request: AppRequest, export_uuid: UUID, name: str) -> HttpResponseBase:
    require_admin(request)
    job = get_object_or_404(ExportJob, uuid=export_uuid, status=ExportJob.Status.SUCCEEDED)
    if name not in job.files:
        raise Http404("No such file in this export.")
    path = job.folder() / name
    if not path.is_file():
        raise Http404("The export's files are gone from disk.")
    return FileResponse(open(path, "rb"), as_attachment=True, filename=f"{job.uuid}-{name}")  # noqa: SIM115
