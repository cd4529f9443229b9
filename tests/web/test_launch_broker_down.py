"""Launching with the broker away: a closed port (refused) and a port that accepts and never
answers (a silent broker). The request answers an error page within seconds, the run is
failed with the message, and its upload is deleted; nothing waits for a message never sent."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotations.actions import import_file
from annotations.demo import DEMO_ROWS, write_demo_processbench
from annotations.models import ImportJob
from inference.models import GenerationRun
from rprm_web.celery import app
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)  # launches publish on commit
# A silent broker is given up on after the socket timeout (and the connect retry): seconds, not minutes.
BOUND_S = settings.BROKER_SOCKET_TIMEOUT_S * (settings.BROKER_PUBLISH_RETRIES + 1) + 3


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connections are refused
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A server that accepts connections and never answers a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    server.close()


@pytest.fixture
def broker_at():
    """Point the web's Celery app at another broker for one test (its pools are rebuilt)."""
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL: the broker-timeout settings are Redis transport options")
    before = app.conf.broker_url

    def point(url: str) -> None:
        app.conf.broker_url = url
        app._pool = None
        app.amqp._producer_pool = None

    yield point
    point(before)


def _upload() -> SimpleUploadedFile:
    rows = [{"id": r[0], "generator": "g", "problem": r[1], "steps": r[2], "final_answer_correct": r[4],
             "label": r[3]} for r in DEMO_ROWS]  # fmt: skip
    return SimpleUploadedFile("bench.json", json.dumps(rows).encode())


def _uploads() -> list[str]:
    folder = Path(settings.MEDIA_ROOT) / "uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.mark.parametrize("broker", ["closed", "silent"])
def test_it_answers_an_upload_with_an_error_page_and_keeps_nothing(broker, client, admin, media, broker_at,
                                                                  silent_port):  # fmt: skip
    port = _closed_port() if broker == "closed" else silent_port
    broker_at(f"redis://127.0.0.1:{port}/1")
    client.login(username="admin", password=PASSWORD)
    t0 = time.monotonic()
    response = client.post(reverse("annotations:import_new"), {"file": _upload(), "name": "up", "rating0": "correct"})
    took = time.monotonic() - t0
    assert response.status_code == 503 and took < BOUND_S, (response.status_code, took)
    body = response.content.decode()
    assert "The job was not started" in body and "job queue did not take" in body
    job = ImportJob.objects.get()
    assert job.status == "failed" and job.finished_at is not None and "Not started" in job.error
    assert _uploads() == []  # the upload of a job that never ran is deleted
    print(f"[broker {broker}] upload answered 503 in {took:.2f} s")


@pytest.mark.parametrize("broker", ["closed", "silent"])
def test_it_answers_a_run_launch_with_an_error_page_and_a_json_error(broker, client, admin, media, broker_at,
                                                                    silent_port, tmp_path):  # fmt: skip
    dataset = import_file(write_demo_processbench(tmp_path / "demo.json"), dataset_name="demo",
                          fmt="processbench").dataset  # fmt: skip
    port = _closed_port() if broker == "closed" else silent_port
    broker_at(f"redis://127.0.0.1:{port}/1")
    client.login(username="admin", password=PASSWORD)
    form = {"dataset": dataset.id, "new_model": "some/model", "new_backend": "transformers", "n_samples": 2,
            "temperature": 0.4, "top_p": 0.95, "max_new_tokens": 64, "batch_size": 4}  # fmt: skip
    t0 = time.monotonic()
    response = client.post(reverse("inference:run_new"), form)
    took = time.monotonic() - t0
    assert response.status_code == 503 and took < BOUND_S, (response.status_code, took)
    assert "The job was not started" in response.content.decode()
    run = GenerationRun.objects.get()
    assert run.status == "failed" and "Not started" in run.error and run.finished_at is not None
    # The same refusal as JSON for a client that asks for it.
    api = client.post(reverse("inference:run_new"), form, HTTP_ACCEPT="application/json")
    assert api.status_code == 503 and api.json()["error"] == "queue_unavailable"
    assert "job queue did not take" in api.json()["detail"]
    assert GenerationRun.objects.filter(status="failed").count() == 2
    print(f"[broker {broker}] run launch answered 503 in {took:.2f} s")
