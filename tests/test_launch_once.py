"""One submit, one run: every launch form carries a hidden launch key, and a second POST
with the same key (a double click, a browser resubmit) gets the first run
(rprm_web.runs.launch_once), even when the two POSTs race."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from annotations.actions import import_file
from annotations.demo import write_demo_processbench
from annotations.models import ImportJob
from inference.actions import create_run, default_template, endpoint_for
from inference.models import GenerationRun
from rprm_web import runs
from tests.conftest import PASSWORD
from training.models import ExportJob


@pytest.fixture
def demo(db, tmp_path):
    return import_file(
        write_demo_processbench(tmp_path / "demo.json"), dataset_name="demo", fmt="processbench"
    ).dataset


def _run_form(dataset, key: str, tmp_path) -> dict:
    return {"dataset": dataset.id, "new_model": str(tmp_path / "some-model"), "new_backend": "transformers",
            "n_samples": 2, "temperature": 0.4, "top_p": 0.95, "max_new_tokens": 256, "batch_size": 4,
            "launch_key": key}  # fmt: skip


def test_it_starts_one_run_for_two_posts_of_the_same_form(client, admin, demo, tmp_path):
    client.login(username="admin", password=PASSWORD)
    page = client.get(reverse("inference:run_new")).content.decode()
    assert 'type="hidden" name="launch_key"' in page
    key = str(uuid.uuid4())
    first = client.post(reverse("inference:run_new"), _run_form(demo, key, tmp_path))
    second = client.post(reverse("inference:run_new"), _run_form(demo, key, tmp_path))
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert GenerationRun.objects.count() == 1
    assert str(GenerationRun.objects.get().launch_key) == key
    # A new form (a new key) is a new run.
    client.post(reverse("inference:run_new"), _run_form(demo, str(uuid.uuid4()), tmp_path))
    assert GenerationRun.objects.count() == 2


def test_it_imports_one_upload_posted_twice(client, admin, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    client.login(username="admin", password=PASSWORD)
    key = str(uuid.uuid4())
    body = write_demo_processbench(tmp_path / "up.json").read_bytes()
    for _ in range(2):
        upload = SimpleUploadedFile("up.json", body, content_type="application/json")
        response = client.post(reverse("annotations:import_new"),
                               {"file": upload, "rating0": "correct", "launch_key": key})  # fmt: skip
        assert response.status_code == 302
    assert ImportJob.objects.count() == 1
    assert len(list((tmp_path / "media" / "uploads").iterdir())) == 1  # the twin's copy went


def test_it_exports_one_snapshot_for_two_posts(client, admin, demo):
    client.login(username="admin", password=PASSWORD)
    key = str(uuid.uuid4())
    form = {"sft": "on", "val_fraction": 0.05, "dpo_pairs_per_step": 2, "seed": 0, "launch_key": key}
    assert client.post(reverse("training:export_list"), form).status_code == 302
    assert client.post(reverse("training:export_list"), form).status_code == 302
    assert ExportJob.objects.count() == 1


def test_it_gives_every_launch_form_a_key(client, admin, demo):
    client.login(username="admin", password=PASSWORD)
    for url in [reverse("inference:run_new"), reverse("annotations:import_new"), reverse("training:export_list"),
                reverse("evaluation:results"), reverse("evaluation:guidance_list"),
                reverse("training:run_new", args=["sft"]), reverse("training:run_new", args=["dpo"])]:  # fmt: skip
        page = client.get(url).content.decode()
        assert page.count('name="launch_key"') == 1, url
        assert "Launch key" not in page, url  # hidden, never a labelled field


@pytest.mark.django_db(transaction=True)
def test_it_starts_one_run_when_two_posts_race(tmp_path):
    """Both twins pass the "already launched?" look-up, both create a run; the unique key
    makes the second wait for the first's commit, fail, roll back and return the first."""
    from django.conf import settings

    if not settings.USING_POSTGRES:
        pytest.skip("needs Postgres: the race is decided by its unique index")
    dataset = import_file(
        write_demo_processbench(tmp_path / "d.json"), dataset_name="d", fmt="processbench"
    ).dataset
    endpoint = endpoint_for("race-model", backend="transformers")
    template = default_template()  # made here: the twins would wait on each other's insert of it
    key, results, errors = uuid.uuid4(), [], []
    barrier = threading.Barrier(2)

    def create():
        run = create_run(dataset=dataset, endpoint=endpoint, template=template, queue=False)
        barrier.wait(timeout=10)  # both have created a run before either sets the key
        return run

    def twin():
        try:
            results.append(runs.launch_once(GenerationRun, key, create))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=twin) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert GenerationRun.objects.count() == 1
    (a, created_a), (b, created_b) = results
    assert a.id == b.id and sorted([created_a, created_b]) == [False, True]
