from __future__ import annotations

import json

import pytest
from django.urls import reverse

from annotations.actions import import_file
from annotations.demo import write_demo_processbench
from annotations.models import Solution
from tests.conftest import PASSWORD


@pytest.fixture
def demo(db, tmp_path, admin):
    return import_file(write_demo_processbench(tmp_path / "demo.json"), dataset_name="demo", fmt="processbench",
                       user=admin).dataset


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_it_redirects_anonymous_users_to_login(client, demo):
    solution = Solution.objects.filter(dataset=demo).first()
    for url in [reverse("annotations:dataset_list"), reverse("annotations:dataset_detail", args=[demo.uuid]),
                reverse("annotations:solution_detail", args=[solution.uuid]), reverse("annotations:import_new")]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_it_forbids_outsiders(client, demo, outsider):
    login(client, outsider)
    solution = Solution.objects.filter(dataset=demo).first()
    for url in [reverse("annotations:dataset_list"), reverse("annotations:dataset_detail", args=[demo.uuid]),
                reverse("annotations:solution_detail", args=[solution.uuid])]:
        assert client.get(url).status_code == 403


def test_it_keeps_imports_for_admins(client, demo, reviewer):
    login(client, reviewer)
    assert client.get(reverse("annotations:import_new")).status_code == 403
    assert client.post(reverse("annotations:import_new"), {}).status_code == 403


def test_it_lists_datasets_with_counts(client, demo, reviewer, django_assert_max_num_queries):
    login(client, reviewer)
    with django_assert_max_num_queries(8):
        response = client.get(reverse("annotations:dataset_list"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "demo" in body
    assert demo.n_solutions == 12 and demo.n_with_error == 6
    assert ">12<" in body  # solutions column


def test_it_filters_solutions_and_renders_the_htmx_partial(client, demo, reviewer, django_assert_max_num_queries):
    login(client, reviewer)
    url = reverse("annotations:dataset_detail", args=[demo.uuid])
    with django_assert_max_num_queries(10):
        full = client.get(url)
    assert full.status_code == 200 and "<html" in full.content.decode()
    partial = client.get(url, {"error": "error"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="solutions")
    body = partial.content.decode()
    assert "<html" not in body and 'id="solutions"' in body
    assert "· 6 solutions" in body
    assert body.count('<span class="badge incorrect">step') == 6  # first-error badges
    only_step_two = client.get(url, {"first_error": 1}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="solutions")
    assert only_step_two.content.decode().count("step 2") == 2


def test_it_highlights_the_first_error_on_the_solution_page(client, demo, reviewer):
    login(client, reviewer)
    solution = Solution.objects.get(dataset=demo, source_id="demo-0")
    body = client.get(reverse("annotations:solution_detail", args=[solution.uuid])).content.decode()
    assert body.count("first-error") == 1
    assert 'id="step-1"' in body and "210 + 91 = 300" in body


def test_it_renders_html_in_step_text_inert(client, tmp_path, admin):
    rows = [{"id": "x1", "generator": "g", "problem": "<script>alert(1)</script> What is $1+1$?",
             "steps": ["<img src=x onerror=alert(2)> $1+1=2$"], "final_answer_correct": True, "label": -1}]
    path = tmp_path / "xss.json"
    path.write_text(json.dumps(rows))
    dataset = import_file(path, dataset_name="xss", fmt="processbench", user=admin).dataset
    login(client, admin)
    solution = Solution.objects.get(dataset=dataset)
    body = client.get(reverse("annotations:solution_detail", args=[solution.uuid])).content.decode()
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<img src=x" not in body and "$1+1=2$" in body


def test_it_shows_a_banner_when_no_worker_answers(client, demo, reviewer):
    login(client, reviewer)
    body = client.get(reverse("annotations:dataset_list")).content.decode()
    assert 'id="worker-banner"' in body and "<strong>default</strong>" in body
