"""Hostile model servers (issue 19, item 4): a whole-request deadline for every model call,
cancel that interrupts a call in flight, and status codes that say what happened.

Fake OpenAI-compatible servers are tiny threaded HTTP servers: one hangs, one drips its
answer one byte a second, one sends garbage, empty choices or no log-probs.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from annotations.actions import import_file
from annotations.demo import write_demo_processbench
from inference.actions import create_run, request_cancel
from inference.core.backends.base import Sampling
from inference.core.backends.openai_backend import OpenAIBackend
from inference.core.backends.openai_transport import OpenAIBackendError
from inference.models import GenerationRun, ModelEndpoint
from inference.runner import process_run
from inference.scorers import create_api_token

CRITIQUE = "Fine.\nVerification: Is the step correct (Yes/No)? Yes"


def _choices(body: dict) -> list[dict]:
    if "messages" in body:
        return [{"index": i, "message": {"role": "assistant", "content": CRITIQUE}, "finish_reason": "stop"}
                for i in range(body.get("n", 1))]  # fmt: skip
    return [{"index": i, "text": CRITIQUE, "finish_reason": "stop"} for i in range(body.get("n", 1))]


class Hostile:
    """A threaded HTTP server that misbehaves as told: hang, drip, garbage, empty, nologprobs, ok."""

    def __init__(self, how: str) -> None:
        self.how, self.requests, self.stop = how, 0, threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                outer.requests += 1
                try:
                    outer.answer(self, body)
                except OSError:
                    pass  # the client gave up: what the deadlines are for

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def answer(self, handler: BaseHTTPRequestHandler, body: dict) -> None:
        if self.how == "hang":
            self.stop.wait(120)
            return
        payload = {"choices": _choices(body), "usage": {"prompt_tokens": 9, "completion_tokens": 4}}
        data = {
            "garbage": b"<html>upstream proxy error</html>",
            "empty": json.dumps({"choices": [], "usage": {}}).encode(),
        }.get(self.how, json.dumps(payload).encode())
        if "systemone" in handler.path:
            handler.send_error(404)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if self.how == "drip":  # one byte a second: never a read timeout, only the total deadline
            for byte in data:
                if self.stop.wait(1.0):
                    return
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
            return
        handler.wfile.write(data)

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hostile():
    servers: list[Hostile] = []

    def start(how: str) -> Hostile:
        servers.append(Hostile(how))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def endpoint_at(url: str, name: str = "hostile", **options) -> ModelEndpoint:
    return ModelEndpoint.objects.create(
        name=name, role=ModelEndpoint.Role.SCORER, backend=ModelEndpoint.Backend.OPENAI, path_or_url=url,
        served_model_name="m", default_sampling={"max_new_tokens": 8},
        options={"max_retries": 0, **options},
    )  # fmt: skip


# ----- the backend: total deadline, cancel ---------------------------------------------------


def test_a_dripping_server_is_cut_at_the_total_deadline(hostile):
    server = hostile("drip")
    with OpenAIBackend(
        server.url, "m", timeout_s=30, total_timeout_s=2, max_retries=0, p_yes_via="none"
    ) as b:
        t0 = time.monotonic()
        with pytest.raises(OpenAIBackendError) as info:
            b.generate(["q"], 1, Sampling())
    took = time.monotonic() - t0
    assert info.value.kind == "timeout" and "total deadline of 2 s" in str(info.value)
    assert 1.9 <= took < 4, took  # not the ~100 s the drip would take


def test_cancel_interrupts_a_call_in_flight_within_moments(hostile):
    server = hostile("hang")
    with OpenAIBackend(server.url, "m", max_retries=0, p_yes_via="none") as b:
        threading.Timer(0.5, b.cancel).start()
        t0 = time.monotonic()
        with pytest.raises(Exception) as info:
            b.generate(["q"], 1, Sampling())
    assert type(info.value).__name__ == "BackendCancelled" and time.monotonic() - t0 < 2


# ----- generation runs: bounded, and cancel ends them cancelled ---------------------------------


@pytest.fixture
def dataset(transactional_db, tmp_path):
    path = write_demo_processbench(tmp_path / "demo.json")
    return import_file(path, dataset_name="demo", fmt="processbench").dataset


def test_a_run_against_a_dripping_server_fails_at_the_deadline(dataset, hostile):
    endpoint = endpoint_at(hostile("drip").url, total_timeout_s=2, p_yes_via="none")
    run = create_run(dataset=dataset, endpoint=endpoint, queue=False, n_samples=1, step_filter={"limit": 2})
    t0 = time.monotonic()
    process_run(run.id)
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.FAILED and "total deadline" in run.error_detail
    assert time.monotonic() - t0 < 10


def test_cancel_ends_a_run_whose_server_hangs_cancelled_within_seconds(dataset, hostile, settings):
    settings.RUN_CANCEL_POLL_S = 0.2
    server = hostile("hang")
    endpoint = endpoint_at(server.url, p_yes_via="none")
    run = create_run(dataset=dataset, endpoint=endpoint, queue=False, n_samples=1, step_filter={"limit": 2})
    worker = threading.Thread(target=process_run, args=(run.id,))
    worker.start()
    deadline = time.monotonic() + 30
    while server.requests == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.requests >= 1  # the call is in flight, the server holds it
    t0 = time.monotonic()
    assert request_cancel(run) is True
    worker.join(timeout=10)
    assert not worker.is_alive() and time.monotonic() - t0 < 3
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.CANCELLED, (run.status, run.error)


# ----- the scoring API: 504 frees the slot, and status codes -----------------------------------

URL = "/api/v1/score"
BODY = {"question": "What is 2 + 3?", "steps": ["2 + 3 = 5."], "K": 1, "model": "hostile"}


def _post(client, token: str, body: dict | None = None):
    return client.post(URL, data=json.dumps(body or BODY), content_type="application/json",
                       headers={"Authorization": f"Bearer {token}"})  # fmt: skip


@pytest.fixture
def api(db, reviewer, settings):
    settings.SCORING_API_TIMEOUT_S = 1
    settings.SCORING_API_MAX_CONCURRENT = 1
    return create_api_token(reviewer, "hostile")[1]


def test_a_504_cancels_its_upstream_calls_and_frees_the_slot(client, api, hostile):
    server = hostile("hang")
    endpoint_at(server.url)
    t0 = time.monotonic()
    first = _post(client, api)
    assert first.status_code == 504 and first.json()["error"]["code"] == "timeout"
    second = _post(client, api)  # at once: the slot is free again (not 429 too_many_concurrent)
    assert second.status_code == 504, second.content
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize(
    ("how", "status", "code"),
    [
        ("garbage", 502, "bad_upstream_answer"),
        ("empty", 502, "bad_upstream_answer"),
        ("nologprobs", 422, "p_yes_unavailable"),
        ("drip", 504, "upstream_timeout"),
    ],
)
def test_upstream_failures_answer_what_happened_with_a_json_reason(
    client, api, hostile, settings, how, status, code
):
    settings.SCORING_API_TIMEOUT_S = 10
    endpoint_at(hostile(how).url, total_timeout_s=1.5)
    response = _post(client, api)
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code and response.json()["error"]["message"]


def test_an_endpoint_blocked_at_call_time_answers_403(client, api, hostile, settings):
    endpoint_at(hostile("ok").url)
    settings.MODEL_ENDPOINT_ALLOWED_HOSTS = ["models.internal:8000"]
    response = _post(client, api)
    assert response.status_code == 403 and response.json()["error"]["code"] == "endpoint_blocked"
