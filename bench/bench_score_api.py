"""Scoring API benchmark: latency, and small requests next to a big one, on a real stack.

    .venv/bin/python bench/bench_score_api.py                 # tiny model (~2-4 min on 2 cores)
    .venv/bin/python bench/bench_score_api.py --timeout 6 --big-steps 24

The stack the quickstart runs: a local `transformers serve` of the tiny model (CPU, the
R-PRM decision config, p_yes through /v1/systemone) registered as an OpenAI-compatible
scorer endpoint, and `gunicorn rprm_web.wsgi` (gthread) on a scratch SQLite database in a
temporary folder (the embedded default: no Redis, so the database limiter). The web
process loads no model. Three measurements:

* small alone: `--smalls` sequential requests of 1 step, K=1, 8 new tokens;
* big + small: one request of `--big-steps` steps x K=4 x 48 new tokens (more than
  `--timeout` seconds of work), then, 1 s later, 3 small requests at once: the big one's
  status and time, and the small ones' latencies;
* load: `--requests` requests of 2 steps, K=2, 16 new tokens, `--concurrency` at a time.

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from inference.core import local_server  # noqa: E402  (plain Python: no Django needed)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(log.read_text()[-2000:]) from None
            time.sleep(0.3)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run(args, work: Path) -> dict:
    import httpx

    from inference.core.tiny_model import build_tiny_model

    model = local_server.prepare_served_copy(build_tiny_model(work / "tiny"), work / "served")
    serve_port, web_port = _free_port(), _free_port()
    serve = local_server.start_transformers_serve(model, serve_port, work / "serve.log")
    serve_url = f"http://127.0.0.1:{serve_port}"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{work / 'api.sqlite3'}", "RPRM_VAR_DIR": str(work / "var"),
           "REDIS_URL": "", "DEBUG": "false", "SCORING_API_TIMEOUT_S": str(args.timeout),
           "SCORING_API_MAX_CONCURRENT": "8", "SCORING_API_RATE_PER_MINUTE": "10000", "PYTHONUNBUFFERED": "1"}  # fmt: skip
    py = sys.executable
    web = None
    try:
        local_server.wait_ready(serve_url, serve, work / "serve.log")
        subprocess.run([py, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        setup = (
            "import django; django.setup();"
            "from django.contrib.auth.models import Group, User; from inference.models import ModelEndpoint;"
            "from inference.scorers import create_api_token;"
            # A token acts only for a user who holds a role.
            "u = User.objects.create_user('bench'); u.groups.add(Group.objects.get_or_create(name='reviewer')[0]);"
            f"ModelEndpoint.objects.create(name='served', role='scorer', backend='openai', path_or_url={serve_url!r},"
            f" served_model_name={str(model)!r}, default_sampling={{'max_new_tokens': 48}},"
            " options={'p_yes_via': 'systemone', 'max_concurrency': 1});"
            "print(create_api_token(u, 'bench')[1])"
        )
        token = subprocess.run([py, "-c", setup], cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "rprm_web.settings"},
                               check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]  # fmt: skip
        log = open(work / "gunicorn.log", "wb")  # noqa: SIM115
        web = subprocess.Popen(
            [py, "-m", "gunicorn", "rprm_web.wsgi", "-b", f"127.0.0.1:{web_port}", "-k", "gthread", "-w", "2",
             "--threads", "8", "--timeout", "120"], cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        base = f"http://127.0.0.1:{web_port}"
        _wait_http(base + "/login/", web, work / "gunicorn.log")
        url, headers = base + "/api/v1/score", {"Authorization": f"Bearer {token}"}
        question = "Natalia sold clips to 48 friends in April and half as many in May. How many in all?"
        small = {"question": question, "steps": ["In May she sold 48 / 2 = 24."], "K": 1, "max_new_tokens": 8,
                 "model": "served"}  # fmt: skip
        big = {**small, "steps": [f"Step {i}: 48 + 24 = 72." for i in range(args.big_steps)], "K": 4,
               "max_new_tokens": 48}  # fmt: skip
        load = {**small, "steps": ["48 / 2 = 24.", "48 + 24 = 72."], "K": 2, "max_new_tokens": 16}

        def call(body):
            t0 = time.perf_counter()
            r = httpx.post(url, json=body, headers=headers, timeout=300)
            return r.status_code, t0, time.perf_counter(), r.headers.get("content-type")

        for _ in range(4):  # warm both workers (imports, backend pools, /systemone check)
            assert call(small)[0] == 200, (work / "gunicorn.log").read_text()[-2000:]
        alone = [(lambda c: c[2] - c[1])(call(small)) for _ in range(args.smalls)]

        with ThreadPoolExecutor(4) as pool:
            big_f = pool.submit(call, big)
            time.sleep(1.0)
            small_fs = [pool.submit(call, small) for _ in range(3)]
            big_code, big_t0, big_end, big_type = big_f.result()
            smalls = [f.result() for f in small_fs]
        time.sleep(2)  # let the big request's last round of calls end before the load test

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(lambda _: call(load), range(args.requests)))
        wall = time.perf_counter() - t0
    finally:
        if web is not None:
            _stop(web)
        _stop(serve)
    ok = [end - start for code, start, end, _ in results if code == 200]
    return {
        "timeout_s": args.timeout,
        "small_alone": {"n": len(alone), "p50_s": statistics.median(alone), "max_s": max(alone)},
        "big_plus_small": {
            "big": {
                "steps": args.big_steps,
                "k": 4,
                "max_new_tokens": 48,
                "status": big_code,
                "content_type": big_type,
                "seconds": big_end - big_t0,
            },
            "small": [
                {"status": c, "seconds": end - start, "before_big_ended": end < big_end}
                for c, start, end, _ in smalls
            ],
        },  # fmt: skip
        "load": {
            "requests": args.requests,
            "concurrency": args.concurrency,
            "steps": 2,
            "k": 2,
            "errors": sum(code != 200 for code, *_ in results),
            "statuses": sorted(code for code, *_ in results),
            "p50_s": statistics.median(ok) if ok else None,
            "p95_s": statistics.quantiles(ok, n=20, method="inclusive")[-1] if len(ok) > 1 else None,
            "requests_per_s": len(ok) / wall,
        },  # fmt: skip
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--timeout", type=int, default=20, help="SCORING_API_TIMEOUT_S for the server")
    p.add_argument("--big-steps", type=int, default=24)
    p.add_argument("--smalls", type=int, default=5)
    p.add_argument("--requests", type=int, default=8)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--smoke", action="store_true", help="the whole stack, fewest requests (tests)")
    args = p.parse_args()
    if args.smoke:
        args.timeout, args.big_steps, args.smalls, args.requests, args.concurrency = 3, 2, 1, 1, 1
    with tempfile.TemporaryDirectory(prefix="bench-score-api-") as tmp:
        result = run(args, Path(tmp))
    s, b = result["small_alone"], result["big_plus_small"]
    print(f"small alone: p50 {s['p50_s']:.2f} s, max {s['max_s']:.2f} s")
    print(f"big ({b['big']['steps']} steps x K=4): HTTP {b['big']['status']} {b['big']['content_type']} after "
          f"{b['big']['seconds']:.1f} s; small next to it: " + ", ".join(
              f"HTTP {x['status']} in {x['seconds']:.2f} s" for x in b["small"]))  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
