"""The actions every run page shares, for every run type: retry and archive.

Admins only (as launching is). The run type comes from the URL (`runs.kind_of`), the
row from its uuid; both views redirect back to the run's page."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_POST

from . import runs
from .access import AppRequest, require_admin


def _run(kind: str, run_uuid: uuid.UUID) -> tuple[Any, Any]:
    try:
        model = runs.model_for(kind)
    except LookupError as exc:
        raise Http404(str(exc)) from exc
    return model, get_object_or_404(model, uuid=run_uuid)


@require_POST
def run_retry(request: AppRequest, kind: str, run_uuid: uuid.UUID) -> HttpResponseRedirect:
    require_admin(request)
    model, run = _run(kind, run_uuid)
    if runs.retry(model, run.id):
        messages.success(
            request, "Queued again: it resumes from what it stored and does only what is missing."
        )
    else:
        messages.error(request, "Only a failed or cancelled run can be retried.")
    return HttpResponseRedirect(run.get_absolute_url())


@require_POST
def run_archive(request: AppRequest, kind: str, run_uuid: uuid.UUID) -> HttpResponseRedirect:
    require_admin(request)
    model, run = _run(kind, run_uuid)
    archive = request.POST.get("archived", "1") != "0"
    if runs.set_archived(model, run.id, archive):
        messages.success(request, "Archived: hidden from the lists, kept here." if archive else "Unarchived.")
    elif archive and not run.is_finished:
        messages.error(request, "A run still queued or running cannot be archived.")
    return HttpResponseRedirect(run.get_absolute_url())
