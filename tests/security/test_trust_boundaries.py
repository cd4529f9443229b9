"""Issue 13 part 6: endpoint hosts and options allow-listed, keys encrypted and never shown,
upstream bodies staff-only, source data read-only in the admin, ReviewEvent insert-only in
the database, error types archived rather than deleted."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from annotations.actions import import_file
from annotations.demo import write_demo_processbench
from annotations.models import Solution, Step
from inference.actions import create_run, endpoint_for
from inference.forms import RunForm
from inference.models import GenerationRun, ModelEndpoint
from inference.runner import process_run
from inference.trust import EndpointRejected, decrypt_secret
from rprm_web.runs import split_error
from tests.conftest import PASSWORD


# -- hosts and options -------------------------------------------------------------------
@pytest.mark.django_db
def test_a_host_outside_the_allow_list_is_refused_at_registration(settings):
    settings.MODEL_ENDPOINT_ALLOWED_HOSTS = ["127.0.0.1:8000", "*.models.internal:8000"]
    with pytest.raises(
        EndpointRejected, match=r"host evil.example.com:80 is not in MODEL_ENDPOINT_ALLOWED_HOSTS"
    ):
        endpoint_for("http://evil.example.com/v1")
    assert not ModelEndpoint.objects.exists()
    assert endpoint_for("http://gpu1.models.internal:8000/v1").backend == "openai"
    endpoint = ModelEndpoint(name="x", backend="openai", path_or_url="https://169.254.169.254/v1")
    with pytest.raises(ValidationError, match="169.254.169.254"):
        endpoint.full_clean()
    form = RunForm({"new_model": "http://evil.example.com/v1", "n_samples": 1, "temperature": 0.4,
                    "top_p": 0.95, "max_new_tokens": 64, "batch_size": 1})  # fmt: skip
    assert not form.is_valid()
    assert "not in MODEL_ENDPOINT_ALLOWED_HOSTS" in str(form.errors["new_model"])


@pytest.mark.django_db
def test_the_host_is_checked_again_at_call_time(settings, tmp_path):
    settings.MODEL_ENDPOINT_ALLOWED_HOSTS = ["127.0.0.1:8000", "localhost:8000", "[::1]:8000"]
    demo = import_file(
        write_demo_processbench(tmp_path / "d.json"), dataset_name="d", fmt="processbench"
    ).dataset
    endpoint = ModelEndpoint.objects.create(
        name="sneaky", backend="openai", path_or_url="http://evil.example.com/v1"
    )
    run = create_run(dataset=demo, endpoint=endpoint, queue=False, n_samples=1)
    run = process_run(run.id)
    assert run.status == GenerationRun.Status.FAILED
    assert run.error == (
        "EndpointRejected: host evil.example.com:80 is not in MODEL_ENDPOINT_ALLOWED_HOSTS "
        "(127.0.0.1:8000, localhost:8000, [::1]:8000)"
    )


@pytest.mark.django_db
def test_only_allow_listed_options_reach_a_backend(settings):
    vllm = ModelEndpoint(name="v", backend="vllm", path_or_url="org/model",
                         options={"tensor_parallel_size": 2, "trust_remote_code": True})  # fmt: skip
    with pytest.raises(EndpointRejected, match="MODEL_ALLOW_TRUST_REMOTE_CODE"):
        vllm.backend_kwargs()
    settings.MODEL_ALLOW_TRUST_REMOTE_CODE = True
    assert vllm.backend_kwargs() == {
        "model": "org/model",
        "tensor_parallel_size": 2,
        "trust_remote_code": True,
    }
    odd = ModelEndpoint(name="t", backend="transformers", path_or_url="/m", options={"device_map": "auto"})
    with pytest.raises(
        EndpointRejected, match="option 'device_map' is not allowed for the transformers backend"
    ):
        odd.backend_kwargs()
    plain = ModelEndpoint(
        name="o", backend="openai", path_or_url="http://127.0.0.1:1/v1", options={"api_key": "k"}
    )
    with pytest.raises(EndpointRejected, match="options may not hold an API key"):
        plain.backend_kwargs()


# -- keys ------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_api_keys_are_encrypted_at_rest_and_read_at_call_time(monkeypatch):
    endpoint = ModelEndpoint(name="s", backend="openai", path_or_url="http://127.0.0.1:9/v1")
    endpoint.set_api_key("sk-very-secret-123")
    endpoint.save()
    stored = ModelEndpoint.objects.values_list("api_key_encrypted", "options").get()
    assert "sk-very-secret-123" not in str(stored)
    assert ModelEndpoint.objects.get().backend_kwargs()["api_key"] == "sk-very-secret-123"
    env = ModelEndpoint(name="e", backend="openai", path_or_url="http://127.0.0.1:9/v1",
                        options={"api_key_env": "UPSTREAM_API_KEY"})  # fmt: skip
    monkeypatch.setenv("UPSTREAM_API_KEY", "from-env")
    assert env.backend_kwargs()["api_key"] == "from-env" and "api_key_env" not in env.backend_kwargs()
    env.options = {"api_key_env": "SECRET_KEY"}  # not a way to read the Django secret
    with pytest.raises(EndpointRejected, match="api_key_env must name a variable"):
        env.backend_kwargs()


@pytest.mark.django_db
def test_the_data_migration_encrypts_plain_keys():
    from importlib import import_module

    migration = import_module("inference.migrations.0010_endpoint_key_encrypted_run_error_detail")
    ModelEndpoint.objects.bulk_create([ModelEndpoint(name="old", backend="openai", path_or_url="http://127.0.0.1/v1",
                                                     options={"api_key": "sk-plain", "mode": "chat"})])  # fmt: skip
    migration.encrypt_stored_keys(apps, None)
    endpoint = ModelEndpoint.objects.get()
    assert endpoint.options == {"mode": "chat"} and "sk-plain" not in endpoint.api_key_encrypted
    assert decrypt_secret(endpoint.api_key_encrypted) == "sk-plain"


@pytest.mark.django_db
def test_the_admin_never_echoes_the_key(client):
    User.objects.create_superuser("root", "r@example.org", PASSWORD)
    client.login(username="root", password=PASSWORD)
    endpoint = ModelEndpoint(name="s", backend="openai", path_or_url="http://127.0.0.1:9/v1")
    endpoint.set_api_key("sk-very-secret-123")
    endpoint.save()
    page = client.get(reverse("admin:inference_modelendpoint_change", args=[endpoint.pk])).content.decode()
    assert "sk-very-secret-123" not in page and endpoint.api_key_encrypted not in page
    response = client.post(reverse("admin:inference_modelendpoint_change", args=[endpoint.pk]), {
        "name": "s", "role": "teacher", "backend": "openai", "path_or_url": "http://evil.example.com/v1",
        "served_model_name": "", "default_sampling": "{}", "options": "{}", "api_key": ""})  # fmt: skip
    assert response.status_code == 200 and "not in MODEL_ENDPOINT_ALLOWED_HOSTS" in response.content.decode()
    response = client.post(reverse("admin:inference_modelendpoint_change", args=[endpoint.pk]), {
        "name": "s", "role": "teacher", "backend": "openai", "path_or_url": "http://127.0.0.1:9/v1",
        "served_model_name": "", "default_sampling": "{}", "options": "{}", "api_key": ""})  # fmt: skip
    assert response.status_code == 302
    assert ModelEndpoint.objects.get().api_key() == "sk-very-secret-123"  # empty field keeps the key


# -- upstream errors -----------------------------------------------------------------------
def test_split_error_keeps_the_status_and_leaves_the_body_to_the_detail():
    exc = RuntimeError("POST http://h/v1/completions failed after 1 attempt(s): HTTP 500: internal token=abc")
    public, detail = split_error(exc, "x" * 5000)
    assert public == ("RuntimeError: POST http://h/v1/completions failed after 1 attempt(s): HTTP 500 "
                      "(the server's answer is in the staff-only detail)")  # fmt: skip
    assert len(detail) < 2100 and detail.endswith("(3,000 more characters cut)")
    public, _ = split_error(ValueError("Error code: 502 - {'error': 'secret'}"), "")
    assert "secret" not in public


class _Failing(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = b"upstream stack trace: SECRET-UPSTREAM-BODY " + b"z" * 3000
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST  # noqa: N815

    def log_message(self, *args):
        pass


@pytest.mark.django_db
def test_an_upstream_error_body_reaches_staff_only(client, reviewer, admin, tmp_path):
    server = HTTPServer(("127.0.0.1", 0), _Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        demo = import_file(
            write_demo_processbench(tmp_path / "d.json"), dataset_name="d", fmt="processbench"
        ).dataset
        endpoint = ModelEndpoint.objects.create(
            name="failing",
            backend="openai",
            path_or_url=f"http://127.0.0.1:{server.server_port}/v1",
            options={"max_retries": 0},
        )
        run = process_run(
            create_run(dataset=demo, endpoint=endpoint, queue=False, n_samples=1, limit=None).id
        )
    finally:
        server.shutdown()
    assert run.status == GenerationRun.Status.FAILED
    assert "SECRET-UPSTREAM-BODY" not in run.error and "HTTP 500" in run.error and len(run.error) <= 200
    run.refresh_from_db()
    assert "SECRET-UPSTREAM-BODY" in run.error_detail and len(run.error_detail) < 2100
    url = reverse("inference:run_detail", args=[run.uuid])
    client.force_login(reviewer)
    assert "SECRET-UPSTREAM-BODY" not in client.get(url).content.decode()
    client.force_login(admin)
    assert "SECRET-UPSTREAM-BODY" in client.get(url).content.decode()


# -- source data, history, taxonomy ------------------------------------------------------------
@pytest.mark.django_db
def test_source_data_is_read_only_in_the_admin(client, tmp_path):
    import_file(write_demo_processbench(tmp_path / "d.json"), dataset_name="d", fmt="processbench")
    User.objects.create_superuser("root", "r@example.org", PASSWORD)
    client.login(username="root", password=PASSWORD)
    solution = Solution.objects.filter(first_error_index__gte=0).first()
    step = solution.steps.order_by("index").first()
    url = reverse("admin:annotations_solution_change", args=[solution.pk])
    page = client.get(url).content.decode()
    assert 'name="steps-0-text"' not in page and 'name="first_error_index"' not in page
    assert "Save" not in page and step.text[:20] in page.replace("&#x27;", "'")  # shown, not editable
    response = client.post(url, {"first_error_index": "5", "steps-TOTAL_FORMS": "1", "steps-INITIAL_FORMS": "1",
                                 "steps-0-id": str(step.pk), "steps-0-text": "edited", "steps-0-DELETE": "on"})  # fmt: skip
    assert response.status_code == 403
    solution.refresh_from_db()
    step.refresh_from_db()
    assert step.text != "edited" and Step.objects.filter(pk=step.pk).exists()
    assert client.get(reverse("admin:annotations_solution_add")).status_code == 403
    assert (
        client.post(
            reverse("admin:annotations_solution_delete", args=[solution.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert client.get(reverse("admin:annotations_step_change", args=[step.pk])).status_code == 200


@pytest.mark.django_db
def test_review_events_are_insert_only_in_the_database(reviewer):
    if connection.vendor != "postgresql":
        pytest.skip("the trigger is Postgres-only")
    from review.models import ReviewEvent

    event = ReviewEvent.objects.create(kind="claimed", actor=reviewer, payload={"a": 1})
    table = ReviewEvent._meta.db_table
    for sql in (f"UPDATE {table} SET kind = 'released' WHERE id = %s", f"DELETE FROM {table} WHERE id = %s"):
        with (
            pytest.raises(DatabaseError, match="insert-only"),
            transaction.atomic(),
            connection.cursor() as cur,
        ):
            cur.execute(sql, [event.pk])
    assert ReviewEvent.objects.get().kind == "claimed"


@pytest.mark.django_db
def test_the_deployments_own_model_server_is_allowed(settings):
    settings.MODEL_ENDPOINT_ALLOWED_HOSTS = ["127.0.0.1:8000", "localhost:8000", "[::1]:8000"]
    settings.VLLM_URL = "http://vllm:8000/v1"
    assert endpoint_for("http://vllm:8000/v1").backend_kwargs()["base_url"] == "http://vllm:8000/v1"
    with pytest.raises(
        EndpointRejected,
        match=r"host vllm2:8000 is not in MODEL_ENDPOINT_ALLOWED_HOSTS \(127.0.0.1:8000, localhost:8000, \[::1\]:8000, vllm:8000\)",
    ):
        endpoint_for("http://vllm2:8000/v1")
