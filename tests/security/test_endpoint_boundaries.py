"""Endpoints and trust boundaries (issue 19, item 8): host:port allow-list, http(s) only,
local model paths under MODELS_DIR, provenance read-only in the admin, commands that
refuse in one line."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import RequestFactory
from django.urls import reverse

from annotations.actions import import_file
from annotations.demo import write_demo_processbench
from inference.actions import endpoint_for
from inference.critique_import import import_critiques
from inference.forms import RunForm
from inference.models import ApiToken, Critique, ModelEndpoint
from inference.trust import EndpointRejected
from rprm_web.runs import RunBase

PRODUCTION_HOSTS = ["127.0.0.1:8000", "localhost:8000", "[::1]:8000"]


@pytest.fixture
def production(settings, tmp_path):
    settings.MODEL_ENDPOINT_ALLOWED_HOSTS = PRODUCTION_HOSTS
    settings.MODEL_PATH_ROOTS = []
    settings.MODELS_DIR = tmp_path / "models"
    settings.MODELS_DIR.mkdir()
    return settings


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:5432/", "http://[::1]:6379/", "http://localhost:6379/", "http://127.0.0.1/v1",
            "ftp://127.0.0.1:8000/", "http://127.0.0.1:99999/"],
)  # fmt: skip
def test_a_url_is_refused_unless_its_host_and_port_are_allowed(production, url):
    with pytest.raises(EndpointRejected) as info:
        endpoint_for(url, backend="openai")
    assert "\n" not in str(info.value)
    assert not ModelEndpoint.objects.exists()


@pytest.mark.django_db
def test_allowed_pairs_and_wildcards_pass(production):
    assert endpoint_for("http://127.0.0.1:8000/v1").backend == "openai"
    assert endpoint_for("http://[::1]:8000/v1").backend == "openai"
    production.MODEL_ENDPOINT_ALLOWED_HOSTS = [*PRODUCTION_HOSTS, "localhost:6379", "*.models.internal:*"]
    assert endpoint_for("http://localhost:6379/").backend == "openai"  # the operator allowed that very pair
    assert endpoint_for("https://gpu7.models.internal:9443/v1").backend == "openai"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "/etc", "models/../../etc",
             "~/.ssh", "C:\\Windows"],
)  # fmt: skip
def test_auto_backend_refuses_urls_and_paths_outside_models_dir(production, path):
    with pytest.raises(EndpointRejected):
        endpoint_for(path)  # backend "auto": not http(s), so a transformers model path
    form = RunForm({"new_model": path, "n_samples": 1, "temperature": 0.4, "top_p": 0.95,
                    "max_new_tokens": 64, "batch_size": 1})  # fmt: skip
    assert not form.is_valid() and "new_model" in form.errors
    assert not ModelEndpoint.objects.exists()


@pytest.mark.django_db
def test_local_models_under_models_dir_and_hub_ids_pass(production):
    inside = production.MODELS_DIR / "tiny"
    inside.mkdir()
    assert endpoint_for(str(inside)).backend == "transformers"
    assert endpoint_for("Qwen/Qwen2.5-Math-7B-Instruct").backend == "transformers"
    # A link inside MODELS_DIR that leads out of it is judged by where it leads.
    (production.MODELS_DIR / "escape").symlink_to("/etc")
    with pytest.raises(EndpointRejected, match="not under MODELS_DIR"):
        endpoint_for(str(production.MODELS_DIR / "escape"))


# ----- admin: provenance is read-only ------------------------------------------------------------


@pytest.mark.django_db
def test_runs_and_critiques_are_read_only_in_the_admin(admin):
    request = RequestFactory().get("/admin/")
    request.user = admin
    guarded = [m for m in apps.get_models() if issubclass(m, RunBase) or m is Critique]
    registered = [m for m in guarded if m in admin_site_models()]
    assert Critique in registered and len(registered) >= 3
    for model in registered:
        model_admin = admin_site_models()[model]
        assert not model_admin.has_change_permission(request), model
        assert not model_admin.has_add_permission(request) and not model_admin.has_delete_permission(request)


def admin_site_models() -> dict:
    return admin.site._registry


@pytest.mark.django_db
def test_staff_cannot_re_point_a_critique(client, admin, tmp_path):
    dataset = import_file(
        write_demo_processbench(tmp_path / "d.json"), dataset_name="d", fmt="processbench"
    ).dataset
    lines = tmp_path / "c.jsonl"
    lines.write_text('{"solution_id": "demo-0", "step_index": 0, "sample_index": 0, '
                     '"text": "Fine.\\nVerification: Is the step correct (Yes/No)? Yes"}\n')  # fmt: skip
    import_critiques(lines, dataset=dataset, model_name="t")
    critique = Critique.objects.get()
    step_before = critique.step_id
    User.objects.filter(pk=admin.pk).update(is_superuser=True)  # the strongest case: every permission
    client.force_login(admin)
    url = reverse("admin:inference_critique_change", args=[critique.pk])
    assert client.get(url).status_code == 200  # staff may look
    response = client.post(url, {"step": step_before + 1, "run": critique.run_id, "sample_index": 3})
    assert response.status_code == 403
    critique.refresh_from_db()
    assert (critique.step_id, critique.sample_index) == (step_before, 0)


# ----- commands refuse in one line -------------------------------------------------------------


@pytest.mark.django_db
def test_generate_critiques_refuses_a_host_in_one_line(production, tmp_path):
    import_file(write_demo_processbench(tmp_path / "d.json"), dataset_name="d", fmt="processbench")
    with pytest.raises(CommandError) as info:
        call_command("generate_critiques", dataset="d", model="http://127.0.0.1:5432/v1")
    assert "127.0.0.1:5432 is not in MODEL_ENDPOINT_ALLOWED_HOSTS" in str(info.value)
    assert "\n" not in str(info.value) and info.value.__cause__ is None


@pytest.mark.django_db
def test_create_api_token_refuses_inactive_and_no_role_users(reviewer, outsider):
    with pytest.raises(CommandError, match="neither reviewer nor admin"):
        call_command("create_api_token", "outsider")
    User.objects.filter(pk=reviewer.pk).update(is_active=False)
    with pytest.raises(CommandError, match="inactive"):
        call_command("create_api_token", "reviewer")
    assert not ApiToken.objects.exists()
