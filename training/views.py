"""Training pages: runs (list, launch, live progress, cancel) and the model registry.

Admins launch and act; reviewers may look. Every htmx request has a plain
fallback: the preview is also a submit button, the live panel is also a page.
"""

from __future__ import annotations

import tarfile
import tempfile
from uuid import UUID

from django.contrib import messages
from django.db.models import Count
from django.forms import Form
from django.http import FileResponse, Http404, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from inference.models import GenerationRun, ModelEndpoint
from rprm_web import runs
from rprm_web.access import AppRequest, require_admin, require_reviewer
from training.core.runner import DEFAULT_LEARNING_RATE

from . import actions
from .data import TrainingDataError, build_preference_pairs_for, preview_pairs, preview_sft, preview_snapshot
from .forms import (
    LAUNCH_FORMS,
    BuildPairsForm,
    RegisterBaseForm,
    SampleStudentForm,
    selection_from,
    student_runs,
)
from .models import ModelVersion, TrainingRun


def run_list(request: AppRequest) -> HttpResponse:
    require_reviewer(request)
    show_archived = request.GET.get("archived") == "1"
    rows = runs.listed(
        TrainingRun.objects.select_related("base_version", "output_version", "template"), show_archived
    )
    return render(request, "training/run_list.html", {"runs": rows[:100], "show_archived": show_archived})


def _kind_or_404(kind: str) -> str:
    if kind not in LAUNCH_FORMS:
        raise Http404("unknown training kind")
    return kind


def _preview(kind: str, selection: dict | None) -> dict:
    if selection is None:
        return {"error": "Fix the data fields to see the counts."}
    if selection.get("snapshot"):
        return preview_snapshot(kind, selection["snapshot"])
    if kind == TrainingRun.Kind.SFT:
        return preview_sft(selection)
    return preview_pairs(selection)


def run_new(request: AppRequest, kind: str) -> HttpResponse:
    require_admin(request)
    kind = _kind_or_404(kind)
    form_class = LAUNCH_FORMS[kind]
    if request.method == "POST":
        form = form_class(request.POST)
        # "Show data counts" without JavaScript: the same page, re-rendered with the counts.
        if "preview" not in request.POST and form.is_valid():
            try:
                run, _ = runs.launch_once(
                    TrainingRun,
                    form.launch_key_value(),
                    lambda: actions.launch_training(
                        kind,
                        form.base(),
                        form.data_selection(),
                        form.hyperparameters(),
                        request.user,
                        name=form.cleaned_data["name"],
                        **form.snapshot_choice(),
                    ),
                )
            except ValueError as exc:
                form.add_error(None, str(exc))
            else:
                return redirect("training:run_detail", run_uuid=run.uuid)
        preview = _preview(kind, selection_from(kind, request.POST))
    else:
        initial = {
            k: request.GET[k]
            for k in ("base_version", "base_path", "student_run", "max_pairs_per_step", "min_agree_fraction")
            if request.GET.get(k)
        }
        form = form_class(initial=initial)
        preview = _preview(kind, selection_from(kind, {**_initial_data(form), **initial}))
    return render(request, "training/run_new.html", {"form": form, "kind": kind, "preview": preview})


def _initial_data(form: Form) -> dict:
    """The form's initial values as submitted data (checkboxes: present when on)."""
    data = {}
    for name, field in form.fields.items():
        value = form.get_initial_for_field(field, name)
        if value is None or value is False:
            continue
        data[name] = "on" if value is True else value
    return data


def run_preview(request: AppRequest, kind: str) -> HttpResponse:
    """htmx: the data counts for the form as it stands (GET with the form's fields)."""
    require_admin(request)
    kind = _kind_or_404(kind)
    preview = _preview(kind, selection_from(kind, request.GET))
    return render(request, "training/run_new.html#preview", {"kind": kind, "preview": preview})


def run_detail(request: AppRequest, run_uuid: UUID) -> HttpResponse:
    require_reviewer(request)
    run = get_object_or_404(
        TrainingRun.objects.select_related("base_version", "template", "snapshot"), uuid=run_uuid
    )
    version = ModelVersion.objects.filter(training_run=run).first()
    metrics = list(run.metrics.order_by("step"))
    context = {"run": run, "version": version, "metrics": metrics, "chart": run.chart_data()}
    if request.htmx and request.htmx.target == "run-live":
        response = render(request, "training/run_detail.html#live", context)
        return HttpResponseStopPolling(response.content) if run.is_finished else response
    return render(
        request,
        "training/run_detail.html",
        {**context, "config": _config_rows(run), "tensorboard_dir": actions.tensorboard_dir(run)},
    )


def run_tensorboard(request: AppRequest, run_uuid: UUID) -> HttpResponseBase:
    """The run's TensorBoard event files as one .tar.gz, to open with `tensorboard --logdir`."""
    require_reviewer(request)
    run = get_object_or_404(TrainingRun, uuid=run_uuid)
    folder = actions.tensorboard_dir(run)
    if folder is None:
        raise Http404("this run wrote no TensorBoard logs")
    buffer = tempfile.SpooledTemporaryFile(max_size=16 << 20)  # noqa: SIM115 - FileResponse closes it
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=f"{run.uuid}/{folder.name}")
    buffer.seek(0)
    return FileResponse(buffer, as_attachment=True, filename=f"tensorboard-{run.uuid}.tar.gz")


def _config_rows(run: TrainingRun) -> list[tuple[str, object, bool]]:
    """Every TrainConfig field as the run will use it, marked when set explicitly."""
    defaults = actions.hyperparameter_fields()
    defaults["learning_rate"] = DEFAULT_LEARNING_RATE[run.kind]
    set_here = run.hyperparameters
    return [
        (k, set_here.get(k, v), k in set_here)
        for k, v in defaults.items()
        if k in set_here or not (run.kind == "sft" and k == "beta")
    ]


@require_POST
def run_cancel(request: AppRequest, run_uuid: UUID) -> HttpResponse:
    require_admin(request)
    run = get_object_or_404(TrainingRun, uuid=run_uuid)
    if actions.request_cancel(run):
        messages.success(request, "Cancel requested: the trainer stops after the current step.")
    return redirect("training:run_detail", run_uuid=run.uuid)


# --- the registry ----------------------------------------------------------------------


def model_list(request: AppRequest) -> HttpResponse:
    require_reviewer(request)
    versions = ModelVersion.objects.select_related("parent", "training_run", "template").order_by(
        "-created_at"
    )
    return render(
        request, "training/model_list.html", {"versions": versions, "base_form": RegisterBaseForm()}
    )


@require_POST
def model_register_base(request: AppRequest) -> HttpResponse:
    require_admin(request)
    form = RegisterBaseForm(request.POST)
    if form.is_valid():
        version = actions.register_base_model(
            form.cleaned_data["path"], form.cleaned_data["name"], request.user
        )
        return redirect("training:model_detail", version_uuid=version.uuid)
    versions = ModelVersion.objects.select_related("parent", "training_run", "template")
    return render(request, "training/model_list.html", {"versions": versions, "base_form": form}, status=400)


def _model_context(version: ModelVersion, **forms: Form) -> dict:
    runs = student_runs(version).annotate(n_pairs=Count("preference_pairs"))
    sampling = (
        GenerationRun.objects.filter(
            kind=GenerationRun.Kind.STUDENT_SAMPLE, endpoint_id=version.student_endpoint_id
        ).select_related("dataset")
        if version.student_endpoint_id
        else GenerationRun.objects.none()
    )
    return {
        "version": version,
        "lineage": version.lineage()[1:],
        "children": version.children.all(),
        "training_runs": version.training_runs.all()[:20],
        "sampling_runs": sampling[:20],
        "student_runs": runs,
        "sample_form": forms.get("sample_form") or SampleStudentForm(),
        "pairs_form": forms.get("pairs_form") or BuildPairsForm(version=version),
    }


def model_detail(request: AppRequest, version_uuid: UUID) -> HttpResponse:
    require_reviewer(request)
    version = get_object_or_404(
        ModelVersion.objects.select_related(
            "parent", "training_run", "template", "student_endpoint", "scorer_endpoint", "snapshot"
        ),
        uuid=version_uuid,
    )
    return render(request, "training/model_detail.html", _model_context(version))


@require_POST
def model_register(request: AppRequest, version_uuid: UUID) -> HttpResponse:
    require_admin(request)
    version = get_object_or_404(ModelVersion, uuid=version_uuid)
    role = request.POST.get("role", "")
    if role not in (ModelEndpoint.Role.STUDENT, ModelEndpoint.Role.SCORER):
        messages.error(request, "Unknown role.")
        return redirect("training:model_detail", version_uuid=version.uuid)
    try:
        endpoint = actions.register_endpoint(
            version,
            role,
            served_url=request.POST.get("served_url", ""),
            served_model_name=request.POST.get("served_model_name", ""),
        )
    except ValueError as exc:  # the served URL failed the endpoint trust check
        messages.error(request, f"Not registered: {exc}")
    else:
        scorer = role == ModelEndpoint.Role.SCORER
        where = "evaluation and guidance" if scorer else "sampling, evaluation and guidance"
        messages.success(
            request,
            f"{version.name} is the {role} endpoint “{endpoint.name}” ({endpoint.get_backend_display()}); "
            f"the {where} forms list it, and the scoring API accepts “{version.name}”.",
        )
    return redirect("training:model_detail", version_uuid=version.uuid)


@require_POST
def model_sample(request: AppRequest, version_uuid: UUID) -> HttpResponse:
    require_admin(request)
    version = get_object_or_404(ModelVersion, uuid=version_uuid)
    form = SampleStudentForm(request.POST)
    if not form.is_valid():
        return render(
            request, "training/model_detail.html", _model_context(version, sample_form=form), status=400
        )
    d = form.cleaned_data
    run, created = runs.launch_once(
        GenerationRun,
        form.launch_key_value(),
        lambda: actions.sample_student(
            version,
            d["dataset"],
            d["n_samples"],
            user=request.user,
            step_filter=form.step_filter(),
            temperature=d["temperature"],
            top_p=d["top_p"],
            max_new_tokens=d["max_new_tokens"],
            seed=d["seed"],
        ),
    )
    if created:
        messages.success(
            request, f"Student sampling run #{run.id} queued: {run.steps_total} steps x {run.n_samples}."
        )
    return redirect("inference:run_detail", run_uuid=run.uuid)


@require_POST
def model_pairs(request: AppRequest, version_uuid: UUID) -> HttpResponse:
    require_admin(request)
    version = get_object_or_404(ModelVersion, uuid=version_uuid)
    form = BuildPairsForm(request.POST, version=version)
    if not form.is_valid():
        return render(
            request, "training/model_detail.html", _model_context(version, pairs_form=form), status=400
        )
    d = form.cleaned_data
    try:
        build = build_preference_pairs_for(
            d["student_run"], d["max_pairs_per_step"], d["min_agree_fraction"], balance=d["balance"]
        )
    except TrainingDataError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"{len(build.pairs)} preference pairs over {build.steps} steps from run "
            f"#{d['student_run'].id} ({build.created} new).",
        )
    return redirect("training:model_detail", version_uuid=version.uuid)
