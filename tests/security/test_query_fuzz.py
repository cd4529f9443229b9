"""Every GET view's query parameters, fuzzed: no input answers 5xx (issue 19, item 6).

The URL list is enumerated from the resolver (admin, the token API and logout aside); path
arguments are real objects of the dashboards' hand-counted cast where one fits, else a
random one (a 404 is fine). Parameter names are the ones the views and their forms read.
"""

from __future__ import annotations

import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference.models import Critique
from rprm_web.inputs import MAX_PAGE
from tests.dashboards.conftest import build_cast

SKIP = ("admin/", "api/", "logout/")
PARAMS = [
    "a", "b", "basis", "benchmark", "csv", "dataset", "error_type", "format", "kind", "label", "match",
    "matches", "next", "outcome", "page", "pair", "period", "q", "queue", "reviewer", "run", "same", "shown",
    "signal", "signals", "source", "split", "state", "status", "tab", "teacher", "template", "trend", "type",
    "verdict", "week", "weeks",
]  # fmt: skip
NASTY = [
    "\x00", "a\x00b", "99999999999999999999", "-99999999999999999999", "-1", "0", "1e9", "abc", "", " ",
    "9" * 5000, "teacher:99999999999999999999,run:1", "x:1,y:2", "a,b", "2025-13-45", "../../etc/passwd",
    "<script>", "ü\u202e", "%00", "1,2,3",
]  # fmt: skip


def _walk(patterns, prefix: str = ""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p


def _fill(route: str, pattern: URLPattern, objects: dict[str, str]) -> str:
    path = route
    for name, converter in pattern.pattern.converters.items():
        kind = type(converter).__name__
        value = objects.get(name) if kind == "UUIDConverter" else None
        value = value or {"UUIDConverter": str(uuid.uuid4()), "IntConverter": "1"}.get(kind, "sft")
        path = path.replace(f"<{'uuid' if kind == 'UUIDConverter' else kind[:-9].lower()}:{name}>", value)
    return "/" + path


def get_urls(cast) -> list[str]:
    critique = Critique.objects.filter(run=cast.a1).first()
    objects = {
        "dataset_uuid": str(cast.dataset.uuid),
        "solution_uuid": str(critique.step.solution.uuid),
        "critique_uuid": str(critique.uuid),
        "run_uuid": str(cast.a1.uuid),
    }
    urls = [_fill(route, p, objects) for route, p in _walk(get_resolver().url_patterns)]
    return sorted({u for u in urls if not u.lstrip("/").startswith(SKIP) and "<" not in u})


@pytest.fixture
def fuzz(db, client, tmp_path, admin, reviewer, reviewer2):
    cast = build_cast(tmp_path, admin, reviewer, reviewer2)
    client.force_login(admin)
    return client, get_urls(cast)


def _status(client, url: str, params: dict[str, str]) -> int:
    return client.get(url, params).status_code


def test_every_get_view_survives_every_nasty_value_in_every_parameter(fuzz):
    client, urls = fuzz
    assert len(urls) >= 40  # the walk found the app
    failures = []
    for url in urls:
        for value in NASTY:
            status = _status(client, url, dict.fromkeys(PARAMS, value))
            if status >= 500 or ("\x00" in value and status != 400):
                failures.append((url, value[:20], status))
    assert failures == []


def test_nul_bytes_answer_400_and_huge_pages_clamp(fuzz):
    client, _ = fuzz
    for param in ("reviewer", "signal", "pair", "type", "page"):
        response = client.get("/dashboards/critiques/", {param: "x\x00"})
        assert response.status_code == 400 and b"NUL byte" in response.content
    response = client.get("/dashboards/critiques/", {"page": "99999999999999999999"})
    assert response.status_code == 200 and response.context["page"] == MAX_PAGE


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_query_strings_never_answer_5xx(fuzz, data):
    client, urls = fuzz
    url = data.draw(st.sampled_from(urls))
    value = st.one_of(st.sampled_from(NASTY), st.text(max_size=60), st.integers().map(str))
    params = data.draw(st.dictionaries(st.sampled_from(PARAMS), value, max_size=5))
    assert _status(client, url, params) < 500, (url, params)
