"""End to end on real services: upload page → Redis → Celery worker → Postgres."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotations.demo import DEMO_ROWS
from annotations.models import Dataset, ImportJob, Step, WorkerHeartbeat
from tests.conftest import PASSWORD, wait_for

pytestmark = pytest.mark.integration


def _processbench_bytes(rows) -> bytes:
    return json.dumps([{"id": r[0], "generator": "g", "problem": r[1], "steps": r[2], "final_answer_correct": r[4],
                        "label": r[3]} for r in rows]).encode()


def test_it_imports_an_upload_through_a_real_worker(client, admin, start_worker):
    worker = start_worker("default")
    client.login(username="admin", password=PASSWORD)
    upload = SimpleUploadedFile("bench.json", _processbench_bytes(DEMO_ROWS))
    response = client.post(reverse("annotations:import_new"), {"file": upload, "name": "uploaded", "rating0": "correct"})
    assert response.status_code == 302
    job = ImportJob.objects.get()
    wait_for(lambda: ImportJob.objects.get(id=job.id).is_finished, what="the import job")
    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    dataset = Dataset.objects.get(name="uploaded")
    assert dataset.n_solutions == 12 and Step.objects.filter(solution__dataset=dataset).count() == 36
    # The progress partial tells htmx to stop polling once the job is done (286).
    poll = client.get(reverse("annotations:import_detail", args=[job.uuid]), HTTP_HX_REQUEST="true")
    assert poll.status_code == 286
    # The worker's heartbeat clears the "no worker" banner for its queue.
    wait_for(lambda: WorkerHeartbeat.objects.filter(queues__contains="default").exists(), what="a heartbeat")
    body = client.get(reverse("annotations:dataset_list")).content.decode()
    assert "<strong>default</strong>" not in body and "<strong>gpu</strong>" in body
    assert worker.proc.poll() is None


def test_it_refuses_a_bad_upload_and_writes_nothing(client, admin, start_worker):
    start_worker("default")
    client.login(username="admin", password=PASSWORD)
    rows = json.loads(_processbench_bytes(DEMO_ROWS))
    rows[5]["label"] = "two"
    upload = SimpleUploadedFile("bad.json", json.dumps(rows).encode())
    client.post(reverse("annotations:import_new"), {"file": upload, "name": "bad", "rating0": "correct"})
    job = ImportJob.objects.get()
    wait_for(lambda: ImportJob.objects.get(id=job.id).is_finished, what="the import job")
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert "bad.json" in job.error and "label" in job.error and "5" in job.error
    assert not Dataset.objects.filter(name="bad").exists() and Step.objects.count() == 0
