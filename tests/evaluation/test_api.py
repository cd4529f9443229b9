"""POST /api/v1/score: bearer tokens, clear 4xx JSON errors, and a real call to a live
`transformers serve` of the tiny model (the web process loads no model)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from inference.models import ApiToken, ModelEndpoint
from inference.scorers import create_api_token

URL = "/api/v1/score"
BODY = {"question": "What is 2 + 3?", "steps": ["2 + 3 = 5.", "So the answer is 5."], "K": 2,
        "model": "tiny-served"}  # fmt: skip


@pytest.fixture
def token(reviewer):
    return create_api_token(reviewer, "tests")[1]


def post(client, body, token=None, raw=None, **headers):
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else json.dumps(body)
    return client.post(URL, data=data, content_type="application/json", headers=headers)


def error(response):
    return response.json()["error"]


def test_it_is_routed_and_needs_no_session_or_csrf(client):
    assert reverse("evaluation:api_score") == URL
    client.handler.enforce_csrf_checks = True
    response = post(client, BODY)
    assert response.status_code == 401  # not a login redirect, not a CSRF 403


def test_it_refuses_missing_and_bad_tokens(client, token):
    response = post(client, BODY)
    assert response.status_code == 401 and error(response)["code"] == "unauthorized"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert post(client, BODY, token="rprm_wrong").status_code == 401
    assert post(client, BODY, Authorization=f"Basic {token}").status_code == 401
    ApiToken.objects.update(revoked_at="2020-01-01T00:00Z")
    assert post(client, BODY, token=token).status_code == 401


def test_it_stores_only_a_hash_of_the_token(token):
    stored = ApiToken.objects.get()
    assert token not in (stored.token_hash, stored.prefix) and stored.token_hash == ApiToken.hash(token)
    assert token.startswith(stored.prefix)


def test_it_names_the_field_of_bad_input(client, token, tiny_endpoint):
    response = post(client, None, token=token, raw="{not json")
    assert response.status_code == 400 and error(response)["field"] == "body"
    assert post(client, None, token=token, raw="[1, 2]").status_code == 400
    for body, field in [
        ({**BODY, "question": ""}, "question"),
        ({k: v for k, v in BODY.items() if k != "steps"}, "steps"),
        ({**BODY, "steps": ["ok", 3]}, "steps[1]"),
        ({**BODY, "K": 0}, "K"),
        ({**BODY, "K": 33}, "K"),
        ({**BODY, "K": "4"}, "K"),
        ({**BODY, "model": None}, "model"),
        ({**BODY, "max_new_tokens": 99999}, "max_new_tokens"),
        ({**BODY, "colour": "red"}, "colour"),
    ]:
        response = post(client, body, token=token)
        assert response.status_code == 400, body
        assert error(response)["field"] == field and field.split("[")[0] in error(response)["message"]


def test_it_answers_404_for_an_unknown_model(client, token, db):
    response = post(client, {**BODY, "model": "nope"}, token=token)
    assert response.status_code == 404 and error(response) == {
        "code": "unknown_model", "field": "model", "message": "no scorer or student model named 'nope'"}  # fmt: skip
    ModelEndpoint.objects.create(name="a-teacher", role="teacher", backend="transformers", path_or_url="x")
    assert post(client, {**BODY, "model": "a-teacher"}, token=token).status_code == 404


def test_it_limits_body_size_and_step_count(client, token, settings, tiny_endpoint):
    settings.SCORING_API_MAX_BODY_BYTES = 300
    response = post(client, {**BODY, "question": "x" * 400}, token=token)
    assert response.status_code == 413 and "300 bytes" in error(response)["message"]
    settings.SCORING_API_MAX_BODY_BYTES = 256 * 1024
    settings.SCORING_API_MAX_STEPS = 3
    response = post(client, {**BODY, "steps": ["a", "b", "c", "d"]}, token=token)
    assert response.status_code == 422 and error(response)["field"] == "steps"


def test_it_refuses_other_methods(client, token):
    response = client.get(URL, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 405 and response["Allow"] == "POST"


@pytest.fixture
def no_model_loading(monkeypatch):
    """Loading any transformers model in this (web) process fails the test."""
    from transformers import PreTrainedModel

    def refuse(*args, **kwargs):
        raise AssertionError("the web process loaded a model")

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(refuse))


def test_it_scores_steps_through_a_served_tiny_model(client, token, served_endpoint, no_model_loading):
    response = post(client, {**BODY, "seed": 5}, token=token)
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["model"] == "tiny-served" and data["K"] == 2 and len(data["steps"]) == 2
    assert data["sampling"] == {"temperature": 0.95, "top_p": 0.95, "max_new_tokens": 12, "seed": 5}
    assert data["template"]["name"] == "rprm-default" and len(data["template"]["hash"]) == 64
    for step, reward in zip(data["steps"], data["rewards"], strict=True):
        ps = [s["p_yes"] for s in step["samples"]]
        assert len(ps) == 2 and all(0 <= p <= 1 for p in ps)
        # read by the server's /v1/systemone pass (transformers serve has no log-probs)
        assert {s["p_yes_source"] for s in step["samples"]} == {"fallback"}
        assert step["reward"] == reward == pytest.approx(sum(ps) / 2, abs=1e-12)
        assert 0 <= reward <= 1
        assert all(s["verdict"] in ("yes", "no", "unparseable") for s in step["samples"])
    assert data["usage"]["prompt_tokens"] > 0 and data["usage"]["completion_tokens"] > 0
    assert ApiToken.objects.get().last_used_at is not None


def test_the_default_endpoint_comes_from_the_environment(
    client, token, served_tiny, settings, no_model_loading
):
    url, model = served_tiny
    body = {k: v for k, v in BODY.items() if k != "model"}
    response = post(client, body, token=token)
    assert response.status_code == 400 and "RPRM_SCORING_ENDPOINT" in error(response)["message"]
    settings.SCORING_ENDPOINT_URL, settings.SCORING_ENDPOINT_MODEL = url, model
    response = post(client, {**body, "K": 1, "max_new_tokens": 6}, token=token)
    # The server was reached; without its tokenizer the prompt goes as chat messages, where
    # `transformers serve` gives no log-probs and /systemone is not used: no p_yes, a 422 that says so.
    assert response.status_code == 422, response.content
    assert error(response)["code"] == "p_yes_unavailable" and "log-probs" in error(response)["message"]


def test_the_default_endpoint_uses_the_registered_server_and_its_tokenizer(
    client, token, served_endpoint, settings, no_model_loading
):
    # The quickstart's case: RPRM_SCORING_ENDPOINT names a server that is also registered with
    # its options; its tokenizer renders the chat prompt, so p_yes is read (not None).
    settings.SCORING_ENDPOINT_URL = served_endpoint.path_or_url
    settings.SCORING_ENDPOINT_MODEL = served_endpoint.served_model_name
    body = {k: v for k, v in BODY.items() if k != "model"}
    response = post(client, {**body, "K": 1, "max_new_tokens": 6}, token=token)
    assert response.status_code == 200, response.content
    assert response.json()["model"] == served_endpoint.name
    assert all(r is not None and 0 <= r <= 1 for r in response.json()["rewards"])


def test_a_model_that_runs_inside_a_worker_is_refused(client, token, tiny_endpoint, no_model_loading):
    response = post(client, {**BODY, "model": "tiny-scorer"}, token=token)
    assert response.status_code == 422 and error(response)["code"] == "model_not_served"
    assert "serve it" in error(response)["message"]


def test_the_command_creates_a_working_token(client, reviewer, tiny_endpoint):
    out = io.StringIO()
    call_command("create_api_token", "reviewer", "--name", "cli", stdout=out, stderr=io.StringIO())
    raw = out.getvalue().strip()
    assert post(client, {**BODY, "model": "nope"}, token=raw).status_code == 404  # authenticated


def test_a_server_that_is_down_answers_json_503_without_internals(client, token, db, tiny_model_dir):
    from tests.evaluation.conftest import free_port, served_endpoint_for

    served_endpoint_for(f"http://127.0.0.1:{free_port()}", "m", max_retries=0, tokenizer_path=tiny_model_dir)
    response = post(client, BODY, token=token)
    assert response.status_code == 503 and response["Content-Type"] == "application/json"
    assert error(response)["code"] == "model_unavailable" and response["Retry-After"] == "5"
    assert "ConnectError" not in response.content.decode() and "127.0.0.1" not in response.content.decode()
