"""A local ``transformers serve`` of a model: the quickstart's scoring endpoint.

The web process never loads a model: the scoring API calls an OpenAI-compatible server.
In production that is ``vllm serve``; on the embedded default it is this one, started
next to the workers, with the R-PRM decision config so p_yes is read through
``/v1/systemone`` (see :mod:`inference.core.backends.openai_backend`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from .backends.openai_p_yes import write_decision_config


def transformers_cli() -> str | None:
    local = Path(sys.executable).with_name("transformers")
    return str(local) if local.exists() else shutil.which("transformers")


def prepare_served_copy(model_dir: str | Path, dest: str | Path) -> Path:
    """A copy of the model whose generation config samples: ``transformers serve`` sets
    temperature/top_p but never ``do_sample``, so without it all K critiques are greedy."""
    model_dir, dest = Path(model_dir), Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(model_dir, dest)
    config = dest / "generation_config.json"
    data = json.loads(config.read_text()) if config.exists() else {}
    config.write_text(json.dumps({**data, "do_sample": True}, indent=2) + "\n")
    return dest


def start_transformers_serve(model_dir: str | Path, port: int, log_path: str | Path,
                             env: dict[str, str] | None = None, extra_args: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:  # fmt: skip
    """Start ``transformers serve MODEL`` on loopback (its own process group), CPU, offline."""
    cli = transformers_cli()
    if cli is None:
        raise RuntimeError("the `transformers` CLI is not installed (pip install 'transformers[serving]')")
    log_path = Path(log_path)
    decision = write_decision_config(log_path.parent / "decision_config.json")
    env = {**(env if env is not None else os.environ), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [cli, "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
           "--decision-config", str(decision), *extra_args]  # fmt: skip
    with log_path.open("ab") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_ready(url: str, proc: subprocess.Popen[Any], log_path: str | Path, timeout_s: float = 120) -> None:
    """Wait for ``GET {url}/health`` to answer 200; raise with the log's tail if it dies or times out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            tail = Path(log_path).read_text(errors="replace")[-3000:]
            raise RuntimeError(f"transformers serve exited with {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            tail = Path(log_path).read_text(errors="replace")[-3000:]
            raise RuntimeError(f"transformers serve not ready at {url} in {timeout_s:.0f} s:\n{tail}")
        time.sleep(0.3)
