"""OpenAIBackend against a live `transformers serve` and a scripted in-process fake server.

The live server shows the real wire format and that p_yes read through /v1/systemone
equals a local forward pass; the fake shows what a live server cannot do on demand
(errors, timeouts, log-prob layouts of vLLM-style servers).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from inference.core.backends.base import Backend, Sampling
from inference.core.backends.openai_backend import OpenAIBackend
from inference.core.backends.openai_p_yes import write_decision_config
from inference.core.backends.openai_transport import OpenAIBackendError, normalise_base_url
from inference.core.scoring import FALLBACK_SUFFIX
from inference.core.verdict import VERDICT_QUESTION, verdict_question_end

PROMPT = "<|im_start|>user\nQuestion: 2+2?\nNow Step: 2+2=4.<|im_end|>\n<|im_start|>assistant\n"


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# ----- fake OpenAI-compatible server ---------------------------------------------------


class FakeServer:
    """ThreadingHTTPServer on 127.0.0.1; ``app(path, body, count)`` returns (status, payload[, delay, headers])."""

    def __init__(self, app):
        self.app = app
        self.requests: list[tuple[str, dict]] = []
        self.headers: list[dict[str, str]] = []  # lower-cased, one per request
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server API)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                with fake._lock:
                    fake.requests.append((self.path, body))
                    fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                    count = len(fake.requests)
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                counted = True
                try:
                    reply = fake.app(self.path, body, count)
                    status, payload, delay, headers = (
                        (*reply, 0.0, {})[:4] if len(reply) == 2 else (*reply, {})[:4]
                    )
                    time.sleep(delay)
                    data = json.dumps(payload).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    # Uncounted before the body: the client cannot have the whole answer (and
                    # send its next request) while this one still counts as in flight.
                    with fake._lock:
                        fake.in_flight -= 1
                    counted = False
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout tests)
                finally:
                    if counted:
                        with fake._lock:
                            fake.in_flight -= 1

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def paths(self) -> list[str]:
        return [p for p, _ in self.requests]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake():
    servers = []

    def start(app) -> FakeServer:
        servers.append(FakeServer(app))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def backend(url: str, **kwargs) -> OpenAIBackend:
    kwargs = {"timeout_s": 5.0, **kwargs}
    return OpenAIBackend(url, "fake-model", **kwargs)


def completion_choice(tokens, tops, index=0):
    """A vLLM-style /v1/completions choice with log-probs."""
    offsets = [sum(len(t) for t in tokens[:i]) for i in range(len(tokens))]
    return {
        "index": index,
        "text": "".join(tokens),
        "finish_reason": "stop",
        "logprobs": {
            "tokens": tokens,
            "token_logprobs": [-0.5] * len(tokens),
            "top_logprobs": tops,
            "text_offset": offsets,
        },
    }


def completions_reply(choices, prompt_tokens=7, completion_tokens=None):
    if completion_tokens is None:
        completion_tokens = sum(len(c["logprobs"]["tokens"]) for c in choices if c.get("logprobs"))
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    return {"object": "text_completion", "choices": choices, "usage": usage}


VERDICT_TOKENS = ["Verification", ":", " Is", " the", " step", " correct", " (", "Yes", "/", "No", ")?"]


def critique_tokens(answer: str = " Yes") -> list[str]:
    return ["Analysis", ":", " Yes", " fine", ".\n", *VERDICT_TOKENS, answer]


def decoy_tops(tokens: list[str], at_verdict: dict) -> list[dict]:
    """Top log-probs with Yes/No everywhere, but only the verdict position has ``at_verdict``."""
    tops = [{" Yes": -3.0, " No": -0.1, t: -0.2} for t in tokens]
    tops[-1] = {**at_verdict, tokens[-1]: at_verdict.get(tokens[-1], -9.0)}
    return tops


# ----- fake server: p_yes ---------------------------------------------------------------


def test_it_reads_p_yes_at_the_token_after_the_verdict_question(fake):
    tokens = critique_tokens()
    top = {" Yes": -0.2, " No": -1.9, " Maybe": -4.0}
    server = fake(
        lambda path, body, i: (200, completions_reply([completion_choice(tokens, decoy_tops(tokens, top))]))
    )
    with backend(server.url) as b:
        [[c]] = b.generate([PROMPT], 1, Sampling(max_new_tokens=64))
    assert isinstance(b, Backend)
    assert c.text.endswith(f"{VERDICT_QUESTION} Yes")
    assert c.p_yes == pytest.approx(sigmoid(-0.2 + 1.9))
    assert c.p_yes_source == "inline"
    assert (c.prompt_tokens, c.completion_tokens) == (7, len(tokens))
    assert c.latency_s > 0
    assert server.paths() == ["/v1/completions"]  # no extra request
    sent = server.requests[0][1]
    assert sent["prompt"] == PROMPT and sent["logprobs"] == 20 and sent["max_tokens"] == 64
    assert (sent["n"], sent["temperature"], sent["top_p"]) == (1, 0.4, 0.95)


def test_it_bounds_the_missing_token_by_the_kth_top_logprob(fake):
    tokens = critique_tokens(" Yes")
    # top_logprobs=2 asked; the server adds the sampled token as a third entry.
    tops = [{t: -0.1} for t in tokens]
    tops[-1] = {" Yes": -0.3, " Sure": -1.0, " Nah": -6.0}
    server = fake(lambda path, body, i: (200, completions_reply([completion_choice(tokens, tops)])))
    with backend(server.url, top_logprobs=2) as b:
        [[c]] = b.generate([PROMPT], 1, Sampling())
    assert c.p_yes == pytest.approx(sigmoid(-0.3 + 1.0))  # No <= -1.0, so a lower bound
    assert c.extra["p_yes_bound"] == "lower" and c.p_yes_source == "inline"


def test_it_accepts_yes_no_tokens_without_the_space(fake):
    tokens = [*critique_tokens()[:-1], "Yes"]
    tops = decoy_tops(tokens, {"Yes": -1.0, "No": -0.5})
    server = fake(lambda path, body, i: (200, completions_reply([completion_choice(tokens, tops)])))
    with backend(server.url) as b:
        [[c]] = b.generate([PROMPT], 1, Sampling())
    assert c.p_yes == pytest.approx(sigmoid(-0.5))
    assert (c.extra["yes_token"], c.extra["no_token"]) == ("Yes", "No")


def test_it_falls_back_to_an_appended_verdict_question(fake):
    tokens = ["The", " step", " is", " fine", "."]

    def app(path, body, i):
        if body["max_tokens"] == 1:
            tops = [{" No": -0.1, " Yes": -2.3}]
            return 200, completions_reply([completion_choice([" No"], tops)], prompt_tokens=30)
        return 200, completions_reply([completion_choice(tokens, [{t: -0.1} for t in tokens])])

    server = fake(app)
    with backend(server.url) as b:
        [[c]] = b.generate([PROMPT], 1, Sampling())
    second = server.requests[1][1]
    assert second["prompt"] == PROMPT + "The step is fine." + FALLBACK_SUFFIX
    assert second["max_tokens"] == 1 and second["logprobs"] == 20
    assert c.p_yes == pytest.approx(sigmoid(-2.3 + 0.1))
    assert c.p_yes_source == "fallback"
    assert c.extra["p_yes_position"] == "appended_question" and c.extra["p_yes_prompt_tokens"] == 30
    assert c.completion_tokens == len(tokens)  # the extra pass is not counted in the critique


def test_it_rereads_at_the_question_when_tokens_do_not_line_up(fake):
    # A server whose token strings do not concatenate to the text (e.g. byte pieces).
    tokens = critique_tokens()
    choice = completion_choice(tokens, decoy_tops(tokens, {" Yes": -0.1, " No": -0.2}))
    choice["logprobs"]["tokens"] = [t.replace(" ", "Ġ") for t in tokens]

    def app(path, body, i):
        if body["max_tokens"] == 1:
            return 200, completions_reply([completion_choice([" No"], [{" Yes": -1.0, " No": -2.0}])])
        return 200, completions_reply([choice])

    server = fake(app)
    with backend(server.url) as b:
        [[c]] = b.generate([PROMPT], 1, Sampling())
    text = "".join(tokens)
    assert server.requests[1][1]["prompt"] == PROMPT + text[: verdict_question_end(text)]
    assert c.p_yes == pytest.approx(sigmoid(1.0))
    assert (c.p_yes_source, c.extra["p_yes_position"]) == ("fallback", "verdict_question")


def test_it_reads_chat_completions_top_logprobs(fake):
    tokens = critique_tokens(" No")

    def entry(t, top):
        return {
            "token": t,
            "logprob": -0.1,
            "bytes": list(t.encode()),
            "top_logprobs": [{"token": k, "logprob": v, "bytes": list(k.encode())} for k, v in top.items()],
        }

    content = [entry(t, {" Yes": -5.0, t: -0.1}) for t in tokens[:-1]] + [
        entry(" No", {" No": -0.4, " Yes": -1.4})
    ]
    reply = {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(tokens)},
                "logprobs": {"content": content},
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": len(tokens)},
    }
    server = fake(
        lambda path, body, i: (
            (200, reply) if path == "/v1/chat/completions" else (404, {"detail": "Not Found"})
        )
    )
    with backend(server.url, mode="auto") as b:
        [[c]] = b.generate([PROMPT], 1, Sampling())
    assert server.paths() == ["/v1/completions", "/v1/chat/completions"]  # auto: switched after the 404
    sent = server.requests[1][1]
    assert sent["messages"] == [{"role": "user", "content": PROMPT}]
    assert sent["logprobs"] is True and sent["top_logprobs"] == 20
    assert c.p_yes == pytest.approx(sigmoid(-1.0)) and c.p_yes_source == "inline"
    assert (c.prompt_tokens, c.completion_tokens, c.extra["mode"]) == (12, len(tokens), "chat")


def test_it_gives_no_p_yes_when_systemone_wraps_the_text(fake):
    """A server without log-probs whose /systemone is not set up the R-PRM way: None, with the reason."""

    def app(path, body, i):
        if path == "/v1/systemone":
            return 200, {"answers": {"verdict": {"type": "noul", "noul": 0.7}}, "usage": {"input_tokens": 40}}
        return 200, {
            "choices": [{"index": 0, "text": "abc", "finish_reason": "length"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3},
        }

    server = fake(app)
    with backend(server.url) as b:
        [[c]] = b.generate([PROMPT], 1, Sampling())
        assert c.p_yes is None and c.p_yes_source is None
        assert "--decision-config" in c.extra["p_yes_error"]
    with (
        backend(server.url, p_yes_via="systemone") as b,
        pytest.raises(OpenAIBackendError, match="decision-config"),
    ):
        b.read_p_yes([(PROMPT, "critique")])  # before any generate: the check runs first


# ----- fake server: n, usage, transport ------------------------------------------------


def test_it_asks_again_when_the_server_ignores_n_and_splits_usage(fake):
    def app(path, body, i):
        if body["prompt"] == "one":  # ignores n, like transformers serve
            return 200, {
                "choices": [{"index": 0, "text": f"s{i}", "finish_reason": "length"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 4},
            }
        choices = [
            {"index": 1, "text": "bbbbbbb", "finish_reason": "stop"},
            {"index": 0, "text": "aaa", "finish_reason": "stop"},
        ]
        return 200, {"choices": choices, "usage": {"prompt_tokens": 5, "completion_tokens": 10}}

    server = fake(app)
    with backend(server.url, p_yes_via="none") as b:
        one, two = b.generate(["one", "two"], 2, Sampling(seed=7))
    assert len(one) == 2 and [c.completion_tokens for c in one] == [4, 4]
    assert sorted(body["seed"] for _, body in server.requests if body["prompt"] == "one") == [7, 8]
    assert [c.text for c in two] == ["aaa", "bbbbbbb"]  # by choice index
    assert [c.completion_tokens for c in two] == [3, 7] and all(c.prompt_tokens == 5 for c in two)
    assert two[0].extra["completion_tokens_estimated"] is True
    assert all(c.p_yes is None and c.p_yes_source is None for c in one + two)


def ok_reply(path, body, i):
    return 200, completions_reply([completion_choice(["x"], [{"x": -0.1}])])


def test_the_sdk_waits_the_retry_after_of_a_429_then_succeeds(fake):
    replies = [(429, {"error": "slow down"}, 0.0, {"Retry-After": "1.5"})]
    server = fake(lambda path, body, i: replies[i - 1] if i <= len(replies) else ok_reply(path, body, i))
    started = time.perf_counter()
    with backend(server.url, p_yes_via="none") as b:
        [[c]] = b.generate([PROMPT], 1, Sampling())
    # The SDK's own backoff for a first retry is at most 0.5 s: 1.5 s is the server's Retry-After.
    assert time.perf_counter() - started >= 1.5
    assert len(server.requests) == 2 and c.extra["attempts"] == 2 and c.text == "x"
    assert [h["x-stainless-retry-count"] for h in server.headers] == ["0", "1"]


def test_it_retries_503_with_backoff_and_gives_up_after_max_retries(fake):
    server = fake(lambda path, body, i: (503, {"error": "busy"}) if i <= 2 else ok_reply(path, body, i))
    with backend(server.url, p_yes_via="none", max_retries=2) as b:
        [[c]] = b.generate([PROMPT], 1, Sampling())
    assert len(server.requests) == 3 and c.extra["attempts"] == 3 and c.text == "x"

    busy = fake(lambda path, body, i: (429, {"error": "slow down"}, 0.0, {"Retry-After": "0.1"}))
    with backend(busy.url, p_yes_via="none", max_retries=1) as b, pytest.raises(OpenAIBackendError) as info:
        b.generate([PROMPT], 1, Sampling())
    assert len(busy.requests) == 2 and info.value.status == 429  # the scoring API answers 503 for it
    assert "2 attempt(s)" in str(info.value) and "HTTP 429" in str(info.value)


def test_it_does_not_retry_a_400_and_names_status_and_url(fake):
    server = fake(lambda path, body, i: (400, {"error": {"message": "max_tokens too large"}}))
    with backend(server.url) as b, pytest.raises(OpenAIBackendError) as info:
        b.generate([PROMPT], 1, Sampling())
    assert len(server.requests) == 1  # 4xx other than 408/409/429: no retry
    message = str(info.value)
    assert (
        "HTTP 400" in message
        and f"{server.url}/v1/completions" in message
        and "max_tokens too large" in message
    )
    assert info.value.status == 400


def test_it_times_out_retries_and_gives_up_naming_the_url(fake):
    server = fake(lambda path, body, i: (*ok_reply(path, body, i), 3.0 if i == 1 else 0.0))
    with backend(server.url, timeout_s=0.3, max_retries=1, p_yes_via="none") as b:
        [[c]] = b.generate([PROMPT], 1, Sampling())
    assert c.extra["attempts"] == 2 and c.latency_s >= 0.3

    slow = fake(lambda path, body, i: (*ok_reply(path, body, i), 3.0))
    with backend(slow.url, timeout_s=0.2, max_retries=1) as b, pytest.raises(OpenAIBackendError) as info:
        b.generate([PROMPT], 1, Sampling())
    assert "timed out after 0.2 s" in str(info.value) and f"{slow.url}/v1/completions" in str(info.value)
    assert "2 attempt(s)" in str(info.value)


def test_it_retries_connection_errors_and_names_the_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with backend(f"http://127.0.0.1:{port}", max_retries=1) as b, pytest.raises(OpenAIBackendError) as info:
        b.generate([PROMPT], 1, Sampling())
    assert f"http://127.0.0.1:{port}/v1/completions" in str(info.value) and "ConnectError" in str(info.value)


def test_it_honours_the_concurrency_limit(fake):
    server = fake(lambda path, body, i: (*ok_reply(path, body, i), 0.1))
    with backend(server.url, max_concurrency=3, p_yes_via="none") as b:
        out = b.generate([f"p{i}" for i in range(12)], 1, Sampling())
    assert len(out) == 12 and len(server.requests) == 12
    assert server.max_in_flight == 3


def test_it_is_a_blocking_call_from_threads_and_from_inside_a_running_event_loop(fake):
    """The scoring API calls it from request threads, Celery synchronously, notebooks from a loop."""
    server = fake(lambda path, body, i: (*ok_reply(path, body, i), 0.1))
    with backend(server.url, max_concurrency=2, p_yes_via="none") as b:

        async def inside_a_loop():
            return b.generate(["in-loop"], 1, Sampling())

        # In a thread of its own: the browser tests' Playwright keeps a loop running in the
        # main thread of the same session, where asyncio.run() is refused.
        with ThreadPoolExecutor(1) as one:
            [[c]] = one.submit(asyncio.run, inside_a_loop()).result()
        assert c.text == "x"
        with ThreadPoolExecutor(4) as pool:
            outs = list(pool.map(lambda i: b.generate([f"t{i}a", f"t{i}b"], 1, Sampling()), range(4)))
    assert [len(o) for o in outs] == [2, 2, 2, 2] and len(server.requests) == 9
    assert server.max_in_flight == 2  # one cap across all calling threads


def test_it_sends_the_endpoint_key_and_never_the_environment_one(fake, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-from-the-environment")
    server = fake(ok_reply)
    with backend(server.url, p_yes_via="none") as b:
        b.generate([PROMPT], 1, Sampling())
    with backend(server.url, p_yes_via="none", api_key="endpoint-key") as b:
        b.generate([PROMPT], 1, Sampling())
    without, with_key = server.headers
    assert "authorization" not in without and "openai-organization" not in without
    assert with_key["authorization"] == "Bearer endpoint-key" and "openai-organization" not in with_key


def test_backoff_options_are_gone():
    """The SDK backs off by itself; the parameters it used to accept and ignore are gone."""
    with pytest.raises(TypeError, match="backoff"):
        OpenAIBackend("http://127.0.0.1:9", "m", backoff=60.0)


def test_it_normalises_base_urls():
    assert normalise_base_url("http://h:8000") == "http://h:8000/v1"
    assert normalise_base_url("http://h:8000/v1/") == "http://h:8000/v1"
    assert normalise_base_url("https://h/openai/v1") == "https://h/openai/v1"
    with pytest.raises(ValueError):
        OpenAIBackend("http://h", "m", mode="grpc")


# ----- live `transformers serve` ---------------------------------------------------------


def _transformers_cli() -> str | None:
    local = Path(sys.executable).with_name("transformers")
    return str(local) if local.exists() else shutil.which("transformers")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tiny_model_dir, tmp_path_factory):
    """`transformers serve` on loopback with the tiny model and the R-PRM decision config."""
    cli = _transformers_cli()
    if cli is None:
        pytest.skip("the `transformers` CLI is not installed (pip install 'transformers[serving]')")
    tmp = tmp_path_factory.mktemp("serve")
    model_dir = tmp / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    # transformers serve never sets do_sample itself: without it, every sample is greedy.
    gen_config = model_dir / "generation_config.json"
    gen_config.write_text(json.dumps({**json.loads(gen_config.read_text()), "do_sample": True}))
    decision = write_decision_config(tmp / "decision.json")
    port = _free_port()
    log = (tmp / "serve.log").open("w")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [cli, "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    proc = subprocess.Popen(
        [*cmd, "--decision-config", str(decision)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"transformers serve exited with {proc.returncode}:\n{(tmp / 'serve.log').read_text()[-3000:]}"
                )
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"transformers serve not ready in 90 s:\n{(tmp / 'serve.log').read_text()[-3000:]}"
                )
            time.sleep(0.3)
        yield url, str(model_dir)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.mark.slow  # the first live test pays for the tiny model and the server start (~10 s)
def test_it_generates_n_completions_from_transformers_serve(served):
    url, model = served
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    prompts = [PROMPT, "Question: 12 * 3?\nNow Step: 36."]
    with OpenAIBackend(url, model, tokenizer_path=model, max_concurrency=2, timeout_s=60) as b:
        out = b.generate(prompts, 3, Sampling(temperature=1.0, max_new_tokens=6, seed=1))
    assert [len(cs) for cs in out] == [3, 3]
    for prompt, completions in zip(prompts, out, strict=True):
        assert len({c.text for c in completions}) > 1  # really sampled
        for c in completions:
            assert c.prompt_tokens == len(tokenizer(prompt)["input_ids"])
            assert 1 <= c.completion_tokens <= 6 and c.latency_s > 0
            assert c.finish_reason in ("stop", "length")
            assert c.p_yes is not None and 0.0 <= c.p_yes <= 1.0
            # no log-probs from transformers serve: read by one extra pass on /v1/systemone
            assert (c.p_yes_source, c.extra["p_yes_via"]) == ("fallback", "systemone")


@pytest.mark.slow
def test_it_reads_the_same_p_yes_as_a_local_forward_pass(served):
    url, model = served
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from inference.core.scoring import p_yes_from_logits, verdict_token_ids

    with_question = f"Analysis: the sum is right.\n{VERDICT_QUESTION} Yes"
    items = [(PROMPT, with_question), (PROMPT, "Analysis: nothing asked."), ("Question: x\n", "ok")]
    with OpenAIBackend(url, model, timeout_s=60) as b:
        readings = b.read_p_yes(items)

    tokenizer = AutoTokenizer.from_pretrained(model)
    lm = AutoModelForCausalLM.from_pretrained(model)
    yes_id, no_id = verdict_token_ids(tokenizer)
    expected = []
    for prompt, critique in items:
        end = verdict_question_end(critique)
        text = prompt + (critique[:end] if end is not None else critique + FALLBACK_SUFFIX)
        with torch.no_grad():
            logits = lm(**tokenizer(text, return_tensors="pt")).logits[0, -1]
        expected.append(p_yes_from_logits(logits[yes_id].item(), logits[no_id].item()))
    positions = [r.detail["p_yes_position"] for r in readings]
    assert positions == ["verdict_question", "appended_question", "appended_question"]
    assert all(r.source == "fallback" for r in readings)
    assert [r.p_yes for r in readings] == pytest.approx(expected, abs=1e-4)
    assert len({round(p, 4) for p in expected}) > 1  # the contexts really differ
