"""`manage.py register_endpoints`: compose's vllm service becomes the default teacher and scorer."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from inference.forms import RunForm
from inference.models import ModelEndpoint


@pytest.fixture
def vllm_env(settings):
    settings.VLLM_URL = "http://vllm:8000/v1"
    settings.VLLM_SERVED_MODEL = "r-prm"
    settings.DEFAULT_TEACHER_ENDPOINT = "vllm-teacher"
    settings.DEFAULT_SCORER_ENDPOINT = "vllm-scorer"
    return settings


@pytest.mark.django_db
def test_it_registers_a_teacher_and_a_scorer_idempotently(vllm_env):
    out = io.StringIO()
    call_command("register_endpoints", "--json", stdout=out)
    registered = json.loads(out.getvalue().strip().splitlines()[-1])["registered"]
    assert [(r["name"], r["role"]) for r in registered] == [("vllm-teacher", "teacher"), ("vllm-scorer", "scorer")]
    teacher = ModelEndpoint.objects.get(name="vllm-teacher")
    assert teacher.backend == "openai" and teacher.backend_kwargs() == {
        "base_url": "http://vllm:8000/v1", "model": "r-prm",
        # The default deadlines of every model call (settings MODEL_CALL_*).
        "connect_timeout_s": 10.0, "timeout_s": 300.0, "total_timeout_s": 600.0,
    }  # fmt: skip
    # A second start with a new model name updates in place.
    vllm_env.VLLM_SERVED_MODEL = "r-prm-v2"
    call_command("register_endpoints", stdout=io.StringIO())
    assert ModelEndpoint.objects.filter(name__startswith="vllm-").count() == 2
    assert ModelEndpoint.objects.get(name="vllm-scorer").served_model_name == "r-prm-v2"


@pytest.mark.django_db
def test_without_a_server_it_registers_nothing_and_bad_urls_are_refused(settings):
    settings.VLLM_URL = ""
    call_command("register_endpoints", stdout=io.StringIO())
    assert not ModelEndpoint.objects.exists()
    settings.VLLM_URL, settings.VLLM_SERVED_MODEL = "vllm:8000", "r-prm"
    with pytest.raises(CommandError, match="VLLM_URL must be an http"):
        call_command("register_endpoints", stdout=io.StringIO())
    assert not ModelEndpoint.objects.exists()


@pytest.mark.django_db
def test_the_forms_preselect_the_registered_defaults(vllm_env, client, admin):
    call_command("register_endpoints", stdout=io.StringIO())
    assert RunForm()["endpoint"].initial.name == "vllm-teacher"
    client.force_login(admin)
    page = client.get(reverse("evaluation:evaluation_new")).content.decode()
    scorer = ModelEndpoint.objects.get(name="vllm-scorer")
    assert f'<option value="{scorer.pk}" selected>' in page
