"""Evaluation and guidance pages: who may see and launch, htmx progress polling, uploads."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from inference.evaluation import create_evaluation
from inference.models import EvaluationRun, GuidanceRun, ModelEndpoint
from tests.evaluation.conftest import PB_SCORES, PRM_SCORES, write_scores


@pytest.fixture
def runs(pb_datasets, prm_dataset, tmp_path):
    pb = create_evaluation(benchmark="processbench", datasets=pb_datasets, name="ext-prm",
                           scores_path=write_scores(tmp_path / "pb.jsonl", PB_SCORES))  # fmt: skip
    prm = create_evaluation(benchmark="prmbench", datasets=[prm_dataset], name="ext-prm",
                            scores_path=write_scores(tmp_path / "prm.jsonl", PRM_SCORES))  # fmt: skip
    return pb, prm


def _scores_upload(scores=PB_SCORES):
    import json

    body = "\n".join(json.dumps({"id": k, "step_scores": v}) for k, v in scores.items()).encode()
    return SimpleUploadedFile("upload.jsonl", body, content_type="application/jsonl")


def test_reviewers_see_results_with_published_numbers(client, reviewer, runs, django_assert_max_num_queries):
    client.force_login(reviewer)
    with django_assert_max_num_queries(20):
        response = client.get(reverse("evaluation:results"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "published" in html and "R-PRM-7B (DPO)" in html and "70.4" in html and "66.8" in html
    assert "ext-prm" in html and "61.9" in html  # our ProcessBench avg F1 (external scores)
    assert 'id="breakdown-table"' in html and "redundency" in html
    assert (
        reverse(
            "annotations:solution_detail", args=[runs[0].solution_scores.order_by("-loss")[0].solution.uuid]
        )
        in html
    )
    assert 'id="launch-form"' not in html  # reviewers do not launch
    # The tie rule at exactly the threshold, per benchmark, as the official code has it.
    assert 'id="tie-rules"' in html and "reward is &lt; the threshold" in html and "score is &gt; the threshold" in html


def test_access_is_refused_to_outsiders_and_anonymous_users(client, outsider, reviewer, runs):
    pb, _ = runs
    urls = [reverse("evaluation:results"), reverse("evaluation:run_detail", args=[pb.uuid]),
            reverse("evaluation:guidance_list")]  # fmt: skip
    for url in urls:
        assert client.get(url).status_code == 302 and "/login/" in client.get(url)["Location"]
    client.force_login(outsider)
    for url in [*urls, reverse("evaluation:evaluation_new"), reverse("evaluation:guidance_new")]:
        assert client.get(url).status_code == 403
    client.force_login(reviewer)
    assert client.get(reverse("evaluation:evaluation_new")).status_code == 403
    assert client.post(reverse("evaluation:evaluation_new"), {"benchmark": "processbench"}).status_code == 403
    assert client.post(reverse("evaluation:run_cancel", args=[pb.uuid])).status_code == 403
    assert client.post(reverse("evaluation:guidance_new"), {}).status_code == 403


def test_admins_launch_an_external_evaluation_by_upload(client, admin, pb_datasets):
    client.force_login(admin)
    assert (
        'id="launch-form"' in client.get(reverse("evaluation:evaluation_new")).content.decode()
    )  # no-JS page
    data = {"benchmark": "processbench", "datasets": [d.id for d in pb_datasets], "n_samples": 4, "threshold": 0.5,
            "max_new_tokens": 4096, "scores_file": _scores_upload(), "name": "uploaded"}  # fmt: skip
    response = client.post(reverse("evaluation:evaluation_new"), data)
    run = EvaluationRun.objects.get(name="uploaded")
    assert response.status_code == 302 and response["Location"] == reverse(
        "evaluation:run_detail", args=[run.uuid]
    )
    assert run.status == "succeeded" and run.scores_file == "upload.jsonl"
    page = client.get(response["Location"]).content.decode()
    assert 'id="subset-table"' in page and 'id="sweep-table"' in page and 'id="worst-table"' in page


def test_a_bad_upload_is_shown_on_the_form_with_its_line(client, admin, pb_datasets):
    client.force_login(admin)
    data = {"benchmark": "processbench", "datasets": [d.id for d in pb_datasets], "n_samples": 4, "threshold": 0.5,
            "max_new_tokens": 4096, "scores_file": _scores_upload({**PB_SCORES, "math-1": [2]})}  # fmt: skip
    response = client.post(reverse("evaluation:evaluation_new"), data, headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "upload.jsonl, line 7: step_scores" in html and 'id="launch-form"' in html
    assert not EvaluationRun.objects.exists()


def test_the_form_needs_a_model_or_a_file_and_matching_datasets(client, admin, pb_datasets, prm_dataset):
    client.force_login(admin)
    base = {"benchmark": "prmbench", "n_samples": 4, "threshold": 0.5, "max_new_tokens": 4096}
    response = client.post(reverse("evaluation:evaluation_new"), {**base, "datasets": [pb_datasets[0].id]})
    html = response.content.decode()
    assert "Choose a model or upload a scores file" in html and "not in prmbench format" in html


def test_htmx_launch_returns_a_polling_progress_panel(client, admin, pb_datasets):
    client.force_login(admin)
    endpoint = ModelEndpoint.objects.create(name="m", role="scorer", backend="transformers", path_or_url="x")
    data = {"benchmark": "processbench", "datasets": [d.id for d in pb_datasets], "endpoint": endpoint.id,
            "n_samples": 2, "threshold": 0.5, "max_new_tokens": 64}  # fmt: skip
    response = client.post(reverse("evaluation:evaluation_new"), data, headers={"HX-Request": "true"})
    html = response.content.decode()
    run = EvaluationRun.objects.get()
    assert run.status == "queued" and run.max_new_tokens == 64 and run.n_samples == 2
    assert 'hx-trigger="every 2s"' in html and reverse("evaluation:run_detail", args=[run.uuid]) in html


def test_progress_polling_stops_when_the_run_ends(client, reviewer, pb_datasets):
    endpoint = ModelEndpoint.objects.create(name="m", role="scorer", backend="transformers", path_or_url="x")
    run = create_evaluation(benchmark="processbench", datasets=pb_datasets, endpoint=endpoint, queue=False)
    client.force_login(reviewer)
    url = reverse("evaluation:run_detail", args=[run.uuid])
    headers = {"HX-Request": "true", "HX-Target": "eval-progress"}
    response = client.get(url, headers=headers)
    assert response.status_code == 200 and 'hx-trigger="every 2s"' in response.content.decode()
    assert "<html" not in response.content.decode()
    EvaluationRun.objects.filter(id=run.id).update(status="succeeded")
    response = client.get(url, headers=headers)
    assert response.status_code == 286 and "every 2s" not in response.content.decode()


def test_admins_cancel_a_queued_run(client, admin, pb_datasets):
    endpoint = ModelEndpoint.objects.create(name="m", role="scorer", backend="transformers", path_or_url="x")
    run = create_evaluation(benchmark="processbench", datasets=pb_datasets, endpoint=endpoint, queue=False)
    client.force_login(admin)
    client.post(reverse("evaluation:run_cancel", args=[run.uuid]))
    run.refresh_from_db()
    assert run.status == "cancelled"


def test_guidance_pages(client, admin, reviewer, db, tmp_path, django_assert_max_num_queries):
    from annotations.actions import import_file
    from tests.annotations.factories_files import generic_row, write_jsonl

    ds = import_file(
        write_jsonl(tmp_path / "g.jsonl", [generic_row("g1")]), dataset_name="g", fmt="generic"
    ).dataset
    endpoint = ModelEndpoint.objects.create(name="m", role="scorer", backend="transformers", path_or_url="x")
    client.force_login(admin)
    response = client.post(reverse("evaluation:guidance_new"), {
        "kind": "best_of_n", "dataset": ds.id, "policy": endpoint.id, "scorer": endpoint.id, "n_candidates": 2,
        "n_samples": 1, "max_steps": 5, "policy_max_new_tokens": 32, "max_new_tokens": 32})  # fmt: skip
    run = GuidanceRun.objects.get()
    assert response.status_code == 302 and run.problems_total == 1 and run.max_new_tokens == 32
    client.force_login(reviewer)
    with django_assert_max_num_queries(10):
        assert client.get(reverse("evaluation:guidance_list")).status_code == 200
    page = client.get(reverse("evaluation:guidance_detail", args=[run.uuid]))
    assert page.status_code == 200 and "every 2s" in page.content.decode()
    assert 'action="/guidance/new/"' not in page.content.decode()


def test_the_nav_links_to_evaluation(client, reviewer, db):
    client.force_login(reviewer)
    html = client.get(reverse("evaluation:results")).content.decode()
    assert f'<a href="{reverse("evaluation:results")}" aria-current="page">Evaluation</a>' in html
