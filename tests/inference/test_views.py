from __future__ import annotations

import pytest
from django.urls import reverse

from annotations.actions import import_file
from annotations.demo import write_demo_processbench
from annotations.demo_critiques import write_demo_critiques
from inference.critique_import import import_critiques
from inference.models import Critique, GenerationRun
from tests.conftest import PASSWORD


@pytest.fixture
def demo_run(db, tmp_path, admin):
    dataset = import_file(
        write_demo_processbench(tmp_path / "demo.json"), dataset_name="demo", fmt="processbench"
    ).dataset
    run, _ = import_critiques(
        write_demo_critiques(tmp_path / "c.jsonl"), dataset=dataset, model_name="demo-teacher"
    )
    return run


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)


def test_it_guards_every_run_page(client, demo_run, reviewer, outsider):
    critique = Critique.objects.filter(run=demo_run).first()
    pages = [
        reverse("inference:run_list"),
        reverse("inference:run_detail", args=[demo_run.uuid]),
        reverse("inference:critique_detail", args=[critique.uuid]),
        reverse("inference:template_list"),
    ]
    for url in pages + [reverse("inference:run_new")]:
        assert client.get(url).status_code == 302  # anonymous → login
    login(client, outsider)
    for url in pages:
        assert client.get(url).status_code == 403
    client.logout()
    login(client, reviewer)
    for url in pages:
        assert client.get(url).status_code == 200
    assert client.get(reverse("inference:run_new")).status_code == 403
    assert client.post(reverse("inference:run_cancel", args=[demo_run.uuid])).status_code == 403


def test_it_shows_a_run_with_its_summary_and_filters(
    client, demo_run, reviewer, django_assert_max_num_queries
):
    login(client, reviewer)
    url = reverse("inference:run_detail", args=[demo_run.uuid])
    with django_assert_max_num_queries(10):
        body = client.get(url).content.decode()
    assert 'id="run-summary"' in body and "demo-teacher" in body
    disagreeing = client.get(url, {"match": "no"}).content.decode()
    n = Critique.objects.filter(run=demo_run, matches_label=False).count()
    assert n > 0 and disagreeing.count('<span class="badge incorrect">no</span>') == n
    # A finished run tells the polling partial to stop (htmx status 286).
    poll = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="run-live")
    assert poll.status_code == 286
    # ... with the final page in it: summary and critiques, no Cancel.
    final = poll.content.decode()
    assert 'id="run-summary"' in final and 'id="critiques"' in final and "Cancel run" not in final


def test_it_renders_a_critique_in_context_with_its_sections(client, demo_run, reviewer):
    login(client, reviewer)
    critique = Critique.objects.get(run=demo_run, step__solution__source_id="demo-0", sample_index=1)
    body = client.get(reverse("inference:critique_detail", args=[critique.uuid])).content.decode()
    assert "now-step" in body and "Calculation analysis" in body and "210 + 91 = 300" in body
    assert "sample 0" in body  # the other sample of the same step


def test_it_launches_and_cancels_a_run_from_the_form(client, demo_run, admin, tmp_path):
    login(client, admin)
    response = client.post(
        reverse("inference:run_new"),
        {
            "dataset": demo_run.dataset_id,
            "new_model": str(tmp_path / "some-model"),
            "new_backend": "transformers",
            "labels": ["correct", "incorrect"],
            "up_to_first_error": "on",
            "limit": 5,
            "n_samples": 3,
            "temperature": 0.4,
            "top_p": 0.95,
            "max_new_tokens": 256,
            "batch_size": 4,
        },
    )
    assert response.status_code == 302
    run = GenerationRun.objects.exclude(id=demo_run.id).get()
    assert (run.n_samples, run.steps_total, run.status) == (3, 5, "queued")
    assert run.step_filter == {"labels": ["correct", "incorrect"], "up_to_first_error": True, "limit": 5}
    client.post(reverse("inference:run_cancel", args=[run.uuid]))
    run.refresh_from_db()
    assert run.status == "cancelled"


def test_it_refuses_a_form_without_a_model(client, demo_run, admin):
    login(client, admin)
    response = client.post(
        reverse("inference:run_new"),
        {
            "dataset": demo_run.dataset_id,
            "n_samples": 2,
            "temperature": 0.4,
            "top_p": 0.95,
            "max_new_tokens": 64,
            "batch_size": 4,
        },
    )
    assert response.status_code == 200 and "Pick a registered model" in response.content.decode()
    assert GenerationRun.objects.count() == 1


def test_reviewers_filter_critiques_by_strict_or_lenient_verdicts(client, demo_run, reviewer):
    """A verdict only the authors' filter accepts (trailing full stop) is kept, marked lenient."""
    from inference.core.backends.base import Completion
    from inference.runner import build_critique

    step = Critique.objects.filter(run=demo_run).first().step
    text = "Conclusion: fine.\nVerification: Is the step correct (Yes/No)? Yes."
    c = build_critique(demo_run, step, 99, Completion(text=text, prompt_tokens=0, completion_tokens=1, p_yes=None))
    c.save()
    assert (c.verdict, c.strict) == ("yes", False)
    login(client, reviewer)
    url = reverse("inference:run_detail", args=[demo_run.uuid])
    lenient = client.get(url, {"format": "lenient"}).content.decode()
    assert lenient.count("lenient: ") == 1 and f'href="{reverse("inference:critique_detail", args=[c.uuid])}"' in lenient
    strict = client.get(url, {"format": "strict"}).content.decode()
    assert "lenient: " not in strict
    assert Critique.objects.filter(run=demo_run, strict=True).count() > 0
