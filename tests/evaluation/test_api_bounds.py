"""The scoring API is bounded: a token budget, a deadline (JSON 504), per-token rate and
concurrency limits (429 with Retry-After) on Redis and on the database, and small
requests that do not wait behind a big one on a real gunicorn."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from inference import api_limits
from inference.api_limits import DatabaseLimiter, Limits, RedisLimiter, Refused, limiter
from inference.models import ApiLease
from inference.scorers import create_api_token
from tests.evaluation.conftest import served_endpoint_for

URL = "/api/v1/score"
BODY = {"question": "What is 2 + 3?", "steps": ["2 + 3 = 5.", "So the answer is 5."], "K": 1, "model": "fake"}


class ModelServer:
    """A minimal OpenAI-compatible /v1/completions server: `reply(body)` -> (status, delay)."""

    def __init__(self, reply=lambda body: (200, 0.0)):
        self.reply, self.bodies, self.lock = reply, [], threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.bodies.append(body)
                status, delay = outer.reply(body)
                time.sleep(delay)
                choices = [{"index": i, "text": "Fine.\nIs the step correct (Yes/No)? Yes", "finish_reason": "stop"}
                           for i in range(body.get("n", 1))]  # fmt: skip
                payload = {"choices": choices, "usage": {"prompt_tokens": 9, "completion_tokens": 4 * len(choices)}}
                if status != 200:
                    payload = {"error": {"message": "internal detail: /srv/models/secret-path"}}
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def model_server(tiny_model_dir):
    servers = []

    def start(reply=lambda body: (200, 0.0), **options):
        server = ModelServer(reply)
        servers.append(server)
        served_endpoint_for(server.url, "fake-model", name="fake", p_yes_via="none", max_retries=0,
                            tokenizer_path=tiny_model_dir, **options)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def token(reviewer):
    return create_api_token(reviewer, "tests")[1]


@pytest.fixture(params=["redis", "database"])
def limiter_kind(request, settings):
    """Run a test with the Redis limiter (REDIS_URL) and with the database fallback."""
    if request.param == "redis" and not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL")
    if request.param == "database":
        settings.REDIS_URL = ""
    assert api_limits.limiter().name == request.param
    return request.param


def post(client, body, token):
    return client.post(URL, data=json.dumps(body), content_type="application/json",
                       headers={"Authorization": f"Bearer {token}"})  # fmt: skip


def error(response):
    assert response["Content-Type"] == "application/json"
    return response.json()["error"]


def test_the_largest_request_is_refused_by_the_token_budget_before_any_work(client, token, model_server):
    server = model_server()
    big = {**BODY, "steps": [f"step {i}" for i in range(64)], "K": 32, "max_new_tokens": 4096}
    response = post(client, big, token)
    assert response.status_code == 413 and error(response)["code"] == "over_budget"
    message = error(response)["message"]
    assert "64 steps x K=32 x 4096 max_new_tokens = 8,388,608 tokens" in message and "262,144" in message
    assert server.bodies == []
    # Just within the budget: 8 x 8 x 4,096 = 262,144.
    ok = {**BODY, "steps": [f"step {i}" for i in range(8)], "K": 8, "max_new_tokens": 4096}
    assert post(client, ok, token).status_code == 200


def test_a_slow_model_gives_a_json_504_at_the_deadline_and_the_work_stops(client, token, model_server, settings):
    settings.SCORING_API_TIMEOUT_S = 1
    server = model_server(lambda body: (200, 2.5), max_concurrency=2)
    started = time.monotonic()
    response = post(client, {**BODY, "steps": [f"step {i}" for i in range(8)]}, token)
    took = time.monotonic() - started
    assert response.status_code == 504 and error(response)["code"] == "timeout"
    assert "longer than 1 s" in error(response)["message"]
    assert 1 <= took < 2.4  # at the deadline, not when the model answers
    time.sleep(3)  # the first round of calls ends (each capped at the 1 s deadline); no second round
    assert len(server.bodies) == 2, "8 prompts in rounds of 2: only the first round was sent"


def test_model_server_errors_are_json_without_their_text(client, token, model_server):
    model_server(lambda body: (400, 0.0))
    response = post(client, BODY, token)
    assert response.status_code == 502 and error(response)["code"] == "model_refused"
    assert "secret-path" not in response.content.decode()


def test_the_rate_limit_answers_429_with_retry_after(client, token, model_server, settings, limiter_kind):
    model_server()
    settings.SCORING_API_RATE_PER_MINUTE = 2
    assert [post(client, BODY, token).status_code for _ in range(2)] == [200, 200]
    response = post(client, BODY, token)
    assert response.status_code == 429 and error(response)["code"] == "rate_limited"
    assert 55 <= int(response["Retry-After"]) <= 60
    other = create_api_token(token_user(token), "another")[1]
    assert post(client, BODY, other).status_code == 200  # per token


def token_user(raw):
    from inference.scorers import authenticate_token

    return authenticate_token(raw).user


def test_the_concurrency_limit_answers_429_until_a_slot_is_free(client, token, model_server, settings, limiter_kind):
    from inference.scorers import authenticate_token

    model_server()
    settings.SCORING_API_MAX_CONCURRENT = 1
    gate, api_token = api_limits.limiter(), authenticate_token(token)
    held = gate.acquire(api_token, Limits(60, 1, 60))
    response = post(client, BODY, token)
    assert response.status_code == 429 and error(response)["code"] == "too_many_concurrent"
    assert response["Retry-After"] == "1"
    gate.release(api_token, held)
    assert post(client, BODY, token).status_code == 200
    assert post(client, BODY, token).status_code == 200  # each request gave its slot back


@pytest.mark.parametrize("kind", ["redis", "database"])
def test_a_slot_that_is_never_released_expires(kind, reviewer, settings):
    if kind == "redis" and not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL")
    gate = RedisLimiter(settings.REDIS_URL) if kind == "redis" else DatabaseLimiter()
    api_token = create_api_token(reviewer, "t")[0]
    limits = Limits(rate_per_minute=10, max_concurrent=1, lease_s=0.3)
    gate.acquire(api_token, limits)  # a web process that died: never released
    with pytest.raises(Refused) as refused:
        gate.acquire(api_token, limits)
    assert refused.value.code == "too_many_concurrent"
    time.sleep(0.4)
    gate.acquire(api_token, limits)
    if kind == "database":
        assert ApiLease.objects.filter(token=api_token, running_until__isnull=False).count() == 1


@pytest.mark.parametrize("kind", ["redis", "database"])
def test_racing_requests_never_exceed_the_concurrency_limit(kind, transactional_db, settings):
    """Eight admissions at once for one token with a limit of 2: exactly 2 get in
    (Redis: one Lua script; Postgres: the token's row lock)."""
    from django.contrib.auth.models import User
    from django.db import connection

    if kind == "redis" and not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL")
    gate = RedisLimiter(settings.REDIS_URL) if kind == "redis" else DatabaseLimiter()
    api_token = create_api_token(User.objects.create_user("racer", is_staff=True), "t")[0]
    limits = Limits(rate_per_minute=100, max_concurrent=2, lease_s=60)
    barrier = threading.Barrier(8)

    def one(_):
        try:
            barrier.wait()
            gate.acquire(api_token, limits)
            return "in"
        except Refused as refused:
            return refused.code
        finally:
            connection.close()

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(one, range(8)))
    assert sorted(outcomes) == ["in", "in"] + ["too_many_concurrent"] * 6


# ----- small requests do not wait behind a big one, on a real gunicorn -------------------


def _serial(delay: float):
    """A model server that runs one call at a time, in arrival order (like `transformers serve`)."""
    lock = threading.Lock()

    def reply(body):
        with lock:
            time.sleep(delay)
        return 200, 0.0

    return reply


@pytest.mark.slow
def test_small_requests_do_not_wait_behind_a_big_one(worker_env, reviewer, tmp_path, tiny_model_dir):
    """The issue's case: a big request that runs out of time, and three small ones sent
    just after it. Before, the small ones waited 33 s behind it and it ended as an HTML
    500; now it ends as a JSON 504 at its deadline and they answer long before. Two model
    servers: one that runs calls concurrently (vLLM batches them), and one that runs one
    call at a time (transformers serve), registered with max_concurrency 1."""
    import subprocess
    import sys

    import httpx
    from django.conf import settings

    from tests.conftest import wait_for
    from tests.evaluation.conftest import free_port

    servers = {"batching": ModelServer(lambda body: (200, 0.5)), "serial": ModelServer(_serial(0.3))}
    for name, server in servers.items():
        served_endpoint_for(server.url, "m", name=name, p_yes_via="none", max_retries=0,
                            tokenizer_path=tiny_model_dir, max_concurrency=4 if name == "batching" else 1)  # fmt: skip
    token, raw = create_api_token(reviewer, "fairness")
    port = free_port()
    log = (tmp_path / "gunicorn.log").open("wb")
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "rprm_web.wsgi", "-b", f"127.0.0.1:{port}", "-k", "gthread",
         "-w", "1", "--threads", "8", "--timeout", "120"],
        cwd=settings.BASE_DIR, env={**worker_env, "SCORING_API_TIMEOUT_S": "4"}, stdout=log, stderr=log,
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def call(body):
        t0 = time.monotonic()
        r = httpx.post(base + URL, json=body, headers={"Authorization": f"Bearer {raw}"}, timeout=60)
        return r, t0, time.monotonic()

    results = {}
    try:
        wait_for(lambda: _up(base), timeout=60, what="gunicorn")
        for name in servers:
            # Warm: imports and first connections. On a busy machine the first call can pass the
            # deadline (its slot is freed when its thread ends): warm until one answers, then
            # start the burst with no slot held.
            warm = {**BODY, "model": name, "max_new_tokens": 4}
            wait_for(lambda w=warm: call(w)[0].status_code == 200, timeout=90, every=1, what="a warm call")
            wait_for(lambda: limiter().in_flight(token) == 0, timeout=60, what="the warm calls' slots")
            big = {**BODY, "model": name, "steps": [f"Step {i}: 2 + 3 = 5." for i in range(48)], "K": 4,
                   "max_new_tokens": 48}  # fmt: skip
            small = {**BODY, "model": name, "steps": ["2 + 3 = 5."], "K": 1, "max_new_tokens": 8}
            with ThreadPoolExecutor(4) as pool:
                big_future = pool.submit(call, big)
                time.sleep(1.0)  # the big one is busy on the model server
                small_futures = [pool.submit(call, small) for _ in range(3)]
                results[name] = (big_future.result(), [f.result() for f in small_futures])
    finally:
        web.terminate()
        web.wait(timeout=30)
        log.close()
        for server in servers.values():
            server.close()
    for name, ((big_r, big_t0, big_end), smalls) in results.items():
        assert big_r.status_code == 504 and big_r.headers["content-type"] == "application/json", big_r.text
        assert big_r.json()["error"]["code"] == "timeout"
        assert 4 <= big_end - big_t0 < 8, name
        for r, t0, end in smalls:
            assert r.status_code == 200, (name, r.text)
            assert end < big_end, name  # answered while the big one was still running
            assert end - t0 < 0.6 * (big_end - big_t0), (name, end - t0)


def _up(base: str) -> bool:
    import httpx

    try:
        return httpx.get(base + "/login/", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
