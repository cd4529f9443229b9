"""Shared fixtures for the evaluation tests: benchmark datasets made through the
importers, external score files, the tiny model as a scorer endpoint, and a
scripted backend whose p_yes are known exactly."""

from __future__ import annotations

import json

import pytest

from annotations.actions import import_file
from inference.core.backends.base import Completion
from inference.core.verdict import VERDICT_QUESTION
from inference.models import ModelEndpoint
from tests.annotations.factories_files import prmbench_row, processbench_row, write_jsonl


# ProcessBench rows per subset: (id, label, n_steps).
GSM8K_ROWS = [("gsm8k-0", -1, 3), ("gsm8k-1", 1, 4), ("gsm8k-2", 0, 3), ("gsm8k-3", -1, 2), ("gsm8k-4", 2, 3)]
MATH_ROWS = [("math-0", -1, 3), ("math-1", 0, 2), ("math-2", 1, 3), ("math-3", -1, 4)]

# External step scores: chosen so predictions are a mix of hits and misses.
PB_SCORES = {
    "gsm8k-0": [0.9, 0.8, 0.7],  # predicted -1, label -1: hit
    "gsm8k-1": [0.9, 0.2, 0.1, 0.9],  # predicted 1, label 1: hit
    "gsm8k-2": [0.6, 0.3, 0.9],  # predicted 1, label 0: miss
    "gsm8k-3": [0.9, 0.4],  # predicted 1, label -1: miss
    "gsm8k-4": [0.7, 0.8, 0.45],  # predicted 2, label 2: hit
    "math-0": [0.55, 0.6, 0.99],  # hit
    "math-1": [0.1, 0.9],  # hit
    "math-2": [0.8, 0.6, 0.2],  # predicted 2, label 1: miss
    "math-3": [0.5, 0.5, 0.5, 0.5],  # 0.5 is not < 0.5: predicted -1, hit
}

PRM_ROWS = [
    ("p0", "confidence", [2, 3], 4),
    ("p1", "redundency", [4], 4),
    ("p2", "circular", [1], 3),
    ("p3", "counterfactual", [2], 3),
    ("p4", "multi_solutions", [], 3),
    ("p5", "confidence", [1], 3),
]
PRM_SCORES = {
    "p0/confidence": [0.9, 0.3, 0.6, 0.8],
    "p1/redundency": [0.7, 0.6, 0.4, 0.2],
    "p2/circular": [0.2, 0.9, 0.7],
    "p3/counterfactual": [0.8, 0.1, 0.3],
    "p4/multi_solutions": [0.9, 0.3, 0.8],
    "p5/confidence": [0.4, 0.6, 0.5],
}


def import_processbench(tmp_path, rows, name: str, split: str, question: str = "What is 2 + 3?"):
    path = write_jsonl(tmp_path / f"{name}.jsonl",
                       [processbench_row(rid, label, n_steps, problem=f"{question} ({rid})")
                        for rid, label, n_steps in rows])  # fmt: skip
    return import_file(path, dataset_name=name, fmt="processbench", split=split).dataset


@pytest.fixture
def pb_datasets(db, tmp_path):
    """Two ProcessBench subsets, imported from two files with their split."""
    return [import_processbench(tmp_path, GSM8K_ROWS, "pb-gsm8k", "gsm8k"),
            import_processbench(tmp_path, MATH_ROWS, "pb-math", "math")]  # fmt: skip


@pytest.fixture
def prm_dataset(db, tmp_path):
    path = write_jsonl(tmp_path / "prmbench.jsonl",
                       [prmbench_row(idx, cls, errs, n_steps, question=f"Question {idx}?")
                        for idx, cls, errs, n_steps in PRM_ROWS])  # fmt: skip
    return import_file(path, dataset_name="prmbench-mini", fmt="prmbench").dataset


def write_scores(path, scores: dict[str, list], extra_lines: list[str] = ()):
    lines = [json.dumps({"id": sid, "step_scores": s}) for sid, s in scores.items()]
    path.write_text("\n".join([*lines, *extra_lines]) + "\n")
    return path


@pytest.fixture
def tiny_endpoint(db, tiny_model_dir):
    """The tiny random model as a scorer; short critiques keep CPU tests quick."""
    return ModelEndpoint.objects.create(
        name="tiny-scorer", role=ModelEndpoint.Role.SCORER, backend=ModelEndpoint.Backend.TRANSFORMERS,
        path_or_url=str(tiny_model_dir), default_sampling={"max_new_tokens": 12},
        options={"device": "cpu", "batch_size": 16},
    )  # fmt: skip


class ScriptedScorer:
    """A backend double: sample i of a prompt gets p_yes = p_of(prompt, i), verdict to match."""

    name = "scripted"

    def __init__(self, p_of):
        self.p_of, self.calls, self.prompts = p_of, 0, []

    def generate(self, prompts, n, sampling):
        self.calls += 1
        # Chat templates arrive as messages; like a chat server, read the user message.
        prompts = [p if isinstance(p, str) else p[-1]["content"] for p in prompts]
        self.prompts.append(list(prompts))
        out = []
        for prompt in prompts:
            row = []
            for i in range(n):
                p = self.p_of(prompt, i)
                verdict = "Yes" if p >= 0.5 else "No"
                row.append(Completion(text=f"Conclusion: ok.\n{VERDICT_QUESTION} {verdict}", prompt_tokens=10,
                                      completion_tokens=5, p_yes=p, p_yes_source="inline"))  # fmt: skip
            out.append(row)
        return out

    def close(self):
        pass


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def served_tiny(tiny_model_dir, tmp_path_factory):
    """A live `transformers serve` of the tiny model (the quickstart's scoring server): (url, model name)."""
    import os
    import signal
    import subprocess

    from inference.core import local_server

    if local_server.transformers_cli() is None:
        pytest.skip("the `transformers` CLI is not installed (pip install 'transformers[serving]')")
    tmp = tmp_path_factory.mktemp("served")
    model = local_server.prepare_served_copy(tiny_model_dir, tmp / "model")
    port, log = free_port(), tmp / "serve.log"
    proc = local_server.start_transformers_serve(model, port, log)
    url = f"http://127.0.0.1:{port}"
    try:
        local_server.wait_ready(url, proc, log, timeout_s=120)
        yield url, str(model)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def served_endpoint_for(url: str, model: str, name: str = "tiny-served", **options) -> ModelEndpoint:
    # max_concurrency 1: transformers serve runs one call at a time, more only queue there.
    return ModelEndpoint.objects.create(
        name=name, role=ModelEndpoint.Role.SCORER, backend=ModelEndpoint.Backend.OPENAI, path_or_url=url,
        served_model_name=model, default_sampling={"max_new_tokens": 12},
        options={"p_yes_via": "systemone", "max_concurrency": 1, "timeout_s": 60, **options},
    )  # fmt: skip


@pytest.fixture
def served_endpoint(db, served_tiny):
    return served_endpoint_for(*served_tiny)


@pytest.fixture(autouse=True)
def _fresh_api_limits():
    """Token ids restart with each test database: forget rate/concurrency keys of earlier runs."""
    from django.conf import settings

    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter("rprm:api:*"):
            client.delete(key)
