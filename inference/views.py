from __future__ import annotations

from uuid import UUID

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from inference.core.verdict import SECTION_KEYS
from rprm_web import runs
from rprm_web.access import AppRequest, require_admin, require_reviewer

from . import actions
from .forms import RunForm
from .models import Critique, GenerationRun, PromptTemplate


def run_list(request: AppRequest) -> HttpResponse:
    require_reviewer(request)
    show_archived = request.GET.get("archived") == "1"
    rows = runs.listed(
        GenerationRun.objects.select_related("dataset", "endpoint", "template", "created_by"), show_archived
    )
    return render(request, "inference/run_list.html", {"runs": rows[:100], "show_archived": show_archived})


def run_new(request: AppRequest) -> HttpResponse:
    require_admin(request)
    form = RunForm(request.POST or None, initial=actions.TEACHER_DEFAULTS)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        endpoint = data["endpoint"] or actions.endpoint_for(
            data["new_model"], backend=data["new_backend"] or None
        )
        run, _ = runs.launch_once(GenerationRun, form.launch_key_value(), lambda: actions.create_run(
            dataset=data["dataset"], endpoint=endpoint, template=data["template"], step_filter=form.step_filter(),
            user=request.user, n_samples=data["n_samples"], temperature=data["temperature"], top_p=data["top_p"],
            max_new_tokens=data["max_new_tokens"], batch_size=data["batch_size"], seed=data["seed"],
        ))  # fmt: skip
        return redirect("inference:run_detail", run_uuid=run.uuid)
    return render(request, "inference/run_new.html", {"form": form})


def run_detail(request: AppRequest, run_uuid: UUID) -> HttpResponse:
    require_reviewer(request)
    run = get_object_or_404(
        GenerationRun.objects.select_related("dataset", "endpoint", "template"), uuid=run_uuid
    )
    critiques = (
        Critique.objects.filter(run=run).select_related("step__solution").order_by("step_id", "sample_index")
    )
    verdict = request.GET.get("verdict")
    if verdict in Critique.Verdict.values:
        critiques = critiques.filter(verdict=verdict)
    match = request.GET.get("match")
    if match in ("yes", "no"):
        critiques = critiques.filter(matches_label=(match == "yes"))
    # "strict": the exact verdict line; "lenient": a verdict only the authors' filter accepts.
    fmt = request.GET.get("format")
    if fmt == "strict":
        critiques = critiques.filter(strict=True)
    elif fmt == "lenient":
        critiques = critiques.filter(strict=False).exclude(verdict=Critique.Verdict.UNPARSEABLE)
    page = Paginator(critiques, 50).get_page(request.GET.get("page"))
    context = {"run": run, "page": page, "verdict": verdict, "match": match, "format": fmt}
    if request.htmx and request.htmx.target == "run-live":
        # The poll: the live part; once the run has ended, its final state and a stop.
        response = render(request, "inference/run_detail.html#live", context)
        return HttpResponseStopPolling(response.content) if run.is_finished else response
    return render(request, "inference/run_detail.html", context)


@require_POST
def run_cancel(request: AppRequest, run_uuid: UUID) -> HttpResponse:
    require_admin(request)
    run = get_object_or_404(GenerationRun, uuid=run_uuid)
    actions.request_cancel(run)
    return redirect("inference:run_detail", run_uuid=run.uuid)


def critique_detail(request: AppRequest, critique_uuid: UUID) -> HttpResponse:
    require_reviewer(request)
    critique = get_object_or_404(
        Critique.objects.select_related(
            "run__template", "run__endpoint", "step__solution__problem", "step__solution__dataset"
        ),
        uuid=critique_uuid,
    )
    solution = critique.step.solution
    siblings = (
        Critique.objects.filter(run=critique.run, step=critique.step)
        .exclude(id=critique.id)
        .order_by("sample_index")
    )
    sections = [(key.replace("_", " ").capitalize(), critique.sections.get(key, "")) for key in SECTION_KEYS]
    context = {
        "critique": critique,
        "solution": solution,
        "steps": list(solution.steps.all()),
        "siblings": siblings,
        "sections": sections,
    }
    return render(request, "inference/critique_detail.html", context)


def template_list(request: AppRequest) -> HttpResponse:
    require_reviewer(request)
    templates = PromptTemplate.objects.all()
    return render(request, "inference/template_list.html", {"templates": templates})
