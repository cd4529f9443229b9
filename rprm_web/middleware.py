"""Request middleware: `Vary` for htmx, and a guard against NUL bytes in query strings.

`Vary` for htmx: a URL that answers htmx with a partial and a browser with the full page
must say so, or a cache (the browser's own, on back/forward) serves one for the other.

The middleware watches what a view (or its template) reads of ``request.htmx`` and adds
the matching request headers to ``Vary``: ``HX-Request`` whenever it asked whether the
request came from htmx, plus ``HX-Target``, ``HX-Boosted``... for the details it read.
Views that never look at htmx get no extra ``Vary``. Goes after django-htmx's middleware.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers

from rprm_web.runs import EnqueueError

# HtmxDetails attribute -> the request header it reads.
_HEADERS = {
    "boosted": "HX-Boosted",
    "current_url": "HX-Current-URL",
    "current_url_abs_path": "HX-Current-URL",
    "history_restore_request": "HX-History-Restore-Request",
    "prompt": "HX-Prompt",
    "target": "HX-Target",
    "trigger": "HX-Trigger",
    "trigger_name": "HX-Trigger-Name",
    "triggering_event": "Triggering-Event",
}


class _TrackedHtmx:
    """``request.htmx`` that remembers which request headers were consulted."""

    def __init__(self, details: Any) -> None:
        self._details = details
        self.headers_read: set[str] = set()

    def __bool__(self) -> bool:
        self.headers_read.add("HX-Request")
        return bool(self._details)

    def __getattr__(self, name: str) -> Any:
        self.headers_read.add("HX-Request")
        if name in _HEADERS:
            self.headers_read.add(_HEADERS[name])
        return getattr(self._details, name)


class HtmxVaryMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tracked = None
        if hasattr(request, "htmx"):
            tracked = request.htmx = _TrackedHtmx(request.htmx)
        response = self.get_response(request)
        if tracked is not None and tracked.headers_read:
            patch_vary_headers(response, sorted(tracked.headers_read))
        return response


class EnqueueErrorMiddleware:
    """A launch whose message the broker refused or never answered (`runs.EnqueueError`; the
    run was already failed with the reason) answers 503 with an error page, or a JSON error
    for the API, instead of a bare 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, EnqueueError):
            return None
        message = str(exception)
        if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
            return JsonResponse({"error": "queue_unavailable", "detail": message}, status=503)
        context = {
            "message": message,
            "what": exception.model._meta.verbose_name,
            "back": request.path,
        }
        return render(request, "enqueue_error.html", context, status=503)


class QueryStringGuardMiddleware:
    """400 for a NUL byte in a query parameter's name or value.

    Postgres refuses NUL in text (``ValueError: A string literal cannot contain NUL``), so a
    ``?reviewer=%00`` that reached a filter was a 500; no parameter of this app may hold one.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        for key, values in request.GET.lists():
            if "\x00" in key or any("\x00" in v for v in values):
                return HttpResponseBadRequest(
                    f"The query parameter {key.replace(chr(0), '')[:40]!r} holds a NUL byte.",
                    content_type="text/plain; charset=utf-8",
                )
        return self.get_response(request)
