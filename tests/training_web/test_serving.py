"""From trained to served in one action: "use as scorer" / "use as student" on the model
page register the right endpoint; the forms, the commands and POST /api/v1/score accept
the model version's own name."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from evaluation.forms import EvaluationForm, GuidanceForm
from inference.models import ApiToken, ModelEndpoint
from inference.scorers import create_api_token, scorer_endpoint
from tests.conftest import PASSWORD
from tests.evaluation.conftest import free_port, served_tiny  # noqa: F401 - a fixture, used by name
from training import actions
from training.models import ModelVersion, TrainingRun


@pytest.fixture
def version(seed_run, settings, tmp_path, tiny_model_dir) -> ModelVersion:
    settings.MODELS_DIR = tmp_path / "models"
    settings.MODEL_PATH_ROOTS = [str(tiny_model_dir)]  # the trained folder stands in for MODELS_DIR/...
    settings.MODEL_ENDPOINT_ALLOWED_HOSTS = ["127.0.0.1:*", "localhost:8001"]
    run = actions.launch_training("sft", "some/base", {"runs": [seed_run.id]}, queue=False, name="ux-sft")

    class Result:
        final_path, best_metric, train_loss, global_step, tokens_per_second, max_length = (
            str(tiny_model_dir),
            1.2,
            1.0,
            6,
            50.0,
            256,
        )

    TrainingRun.objects.filter(id=run.id).update(status="succeeded")
    return actions.register_trained_model(run, Result())


def use(client, version, role, **served):
    return client.post(
        reverse("training:model_register", args=[version.uuid]), {"role": role, **served}, follow=True
    )


def score(client, token, model):
    body = {
        "question": "What is 2 + 3?",
        "steps": ["2 + 3 = 5."],
        "K": 1,
        "max_new_tokens": 6,
        "model": model,
    }
    return client.post("/api/v1/score", data=json.dumps(body), content_type="application/json",
                       headers={"Authorization": f"Bearer {token}"})  # fmt: skip


def test_use_as_scorer_registers_a_worker_endpoint_the_forms_list(client, admin, version):
    client.login(username="admin", password=PASSWORD)
    page = client.get(reverse("training:model_detail", args=[version.uuid])).content.decode()
    assert 'id="use-as-scorer"' in page and 'id="use-as-student"' in page
    body = use(client, version, "scorer").content.decode()
    version.refresh_from_db()
    endpoint = version.scorer_endpoint
    assert (endpoint.role, endpoint.backend, endpoint.path_or_url) == ("scorer", "transformers", version.path)
    assert "the scoring API accepts “ux-sft”" in body
    assert endpoint in EvaluationForm().fields["endpoint"].queryset
    assert endpoint in GuidanceForm().fields["scorer"].queryset
    # The version's own name picks it, in the forms and wherever a scorer is named.
    assert scorer_endpoint("ux-sft") == endpoint
    evaluation = client.get(reverse("evaluation:evaluation_new"), {"model": "ux-sft"}).content.decode()
    assert f'<option value="{endpoint.id}" selected>' in evaluation
    guidance = client.get(reverse("evaluation:guidance_new"), {"model": "ux-sft"}).content.decode()
    assert f'<option value="{endpoint.id}" selected>' in guidance
    # Idempotent; the student role is its own endpoint.
    use(client, version, "scorer")
    use(client, version, "student")
    version.refresh_from_db()
    assert version.scorer_endpoint == endpoint and version.student_endpoint.role == "student"
    assert ModelEndpoint.objects.filter(name__startswith="ux-sft").count() == 2


def test_use_as_scorer_with_a_served_url_registers_the_server(client, admin, version):
    client.login(username="admin", password=PASSWORD)
    use(client, version, "scorer")
    use(client, version, "scorer", served_url="http://127.0.0.1:8000/v1")
    version.refresh_from_db()
    served = version.scorer_endpoint
    assert (served.backend, served.path_or_url, served.served_model_name) == (
        "openai",
        "http://127.0.0.1:8000/v1",
        "ux-sft",
    )
    assert served.options == {"tokenizer_path": version.path}
    body = use(client, version, "student", served_url="http://evil.example/v1").content.decode()
    version.refresh_from_db()
    assert (
        "Not registered" in body
        and "MODEL_ENDPOINT_ALLOWED_HOSTS" in body
        and version.student_endpoint is None
    )


def test_the_command_registers_a_served_version(version):
    out = io.StringIO()
    call_command(
        "use_model", "ux-sft", "--as", "scorer", "--served-url", "http://localhost:8001/v1", stdout=out
    )
    version.refresh_from_db()
    assert version.scorer_endpoint.backend == "openai" and "ux-sft · scorer · served" in out.getvalue()
    with pytest.raises(CommandError, match="no model version named"):
        call_command("use_model", "nope", stdout=io.StringIO())
    with pytest.raises(CommandError, match="MODEL_ENDPOINT_ALLOWED_HOSTS"):
        call_command("use_model", "ux-sft", "--served-url", "http://evil.example/v1", stdout=io.StringIO())


def test_the_scoring_api_accepts_the_model_versions_name(client, admin, reviewer, version):
    token = create_api_token(reviewer, "tests")[1]
    assert score(client, token, "ux-sft").status_code == 404  # not registered yet
    actions.register_endpoint(version, "scorer")
    response = score(client, token, "ux-sft")
    assert response.status_code == 422 and response.json()["error"]["code"] == "model_not_served"
    # Served (here: nothing listens): the API resolves the name to the server and calls it.
    actions.register_endpoint(version, "scorer", served_url=f"http://127.0.0.1:{free_port()}/v1")
    ModelEndpoint.objects.filter(name="ux-sft · scorer · served").update(options={"max_retries": 0})
    response = score(client, token, "ux-sft")
    assert response.status_code == 503 and response.json()["error"]["code"] == "model_unavailable"
    assert ApiToken.objects.get().last_used_at is not None


def test_the_scoring_api_scores_through_a_served_model_version(client, reviewer, version, served_tiny):  # noqa: F811
    url, model = served_tiny
    endpoint = actions.register_endpoint(version, "scorer", served_url=url, served_model_name=model)
    ModelEndpoint.objects.filter(id=endpoint.id).update(
        options={**endpoint.options, "p_yes_via": "systemone", "max_concurrency": 1, "timeout_s": 60}
    )
    token = create_api_token(reviewer, "tests")[1]
    response = score(client, token, "ux-sft")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["model"] == "ux-sft · scorer · served" and len(data["rewards"]) == 1
