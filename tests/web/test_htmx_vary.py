"""`Vary` on URLs that answer htmx with a partial, and pagination links by {% querystring %}."""

from __future__ import annotations

import re

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse
from django.utils.cache import has_vary_header

from annotations.actions import import_file
from rprm_web.middleware import HtmxVaryMiddleware
from tests.annotations.factories_files import processbench_row, write_processbench


def _through(view, **headers):
    """A request through django-htmx's middleware and ours, as in settings.MIDDLEWARE."""
    from django_htmx.middleware import HtmxMiddleware

    request = RequestFactory().get("/x/", headers=headers)
    return HtmxMiddleware(HtmxVaryMiddleware(view))(request)


def test_it_varies_only_on_what_the_view_read():
    def branches_on_target(request):
        return HttpResponse("partial" if request.htmx and request.htmx.target == "t" else "page")

    def ignores_htmx(request):
        return HttpResponse("page")

    def reads_boosted(request):
        return HttpResponse("x" if request.htmx.boosted else "y")

    full = _through(branches_on_target)
    assert full.content == b"page" and has_vary_header(full, "HX-Request")
    assert not has_vary_header(full, "HX-Target")  # short-circuited: target never read
    partial = _through(branches_on_target, HX_Request="true", HX_Target="t")
    assert partial.content == b"partial"
    assert has_vary_header(partial, "HX-Request") and has_vary_header(partial, "HX-Target")
    plain = _through(ignores_htmx, HX_Request="true")
    assert not plain.has_header("Vary")
    boosted = _through(reads_boosted, HX_Request="true", HX_Boosted="true")
    assert boosted.content == b"x" and has_vary_header(boosted, "HX-Boosted")


@pytest.fixture
def big_dataset(db, tmp_path):
    rows = [processbench_row(f"pb-{i}", -1, n_steps=1, problem=f"What is {i} + 1?") for i in range(55)]
    return import_file(write_processbench(tmp_path / "pb.json", rows), dataset_name="big").dataset


def test_one_url_serving_a_partial_and_a_page_sends_vary(client, reviewer, big_dataset):
    client.force_login(reviewer)
    url = reverse("annotations:dataset_detail", args=[big_dataset.uuid])
    page = client.get(url)
    assert page.status_code == 200 and b"<html" in page.content
    assert has_vary_header(page, "HX-Request")
    partial = client.get(url, headers={"HX-Request": "true", "HX-Target": "solutions"})
    assert partial.status_code == 200 and b"<html" not in partial.content
    assert has_vary_header(partial, "HX-Request") and has_vary_header(partial, "HX-Target")


def test_pagination_links_keep_the_filters_and_replace_the_page(client, reviewer, big_dataset):
    client.force_login(reviewer)
    url = reverse("annotations:dataset_detail", args=[big_dataset.uuid])
    html = client.get(url, {"q": "What", "error": "", "page": "1"}).content.decode()
    links = set(re.findall(r'href="(\?[^"]*page=\d+[^"]*)"', html))
    assert links == {"?q=What&amp;error=&amp;page=2"}, links  # one page param, filters kept
    html = client.get(url, {"q": "What", "page": "2"}).content.decode()
    assert 'href="?q=What&amp;page=1"' in html and 'hx-get="?q=What&amp;page=1"' in html
