"""The README's main job on the embedded default (SQLite + filesystem broker).

Creates the database, the demo users and the demo dataset, builds the tiny
model, then (with --serve) starts the web server, both Celery workers and a local
`transformers serve` of the tiny model (the scoring API's endpoint: the web
process loads no model), runs the pipeline's jobs through them, scores a demo
solution through the API, prints the URL and a login, and keeps serving until
Ctrl-C. Every step is idempotent: running it again reuses what exists.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from annotations.actions import import_file
from annotations.demo import write_demo_processbench
from annotations.models import Dataset
from studio.quickstart_pipeline import (
    register_scoring_endpoint,
    run_pipeline,
    start_scoring_server,
    try_scoring_api,
)

DEMO_PASSWORD = "rprm-demo"
_R = TypeVar("_R")


def _free_port(preferred: int) -> int:
    for port in [preferred, *range(preferred + 1, preferred + 50)]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port near {preferred}")


def _process_commands(port: int) -> dict[str, list[str]]:
    """The web server's and both workers' command lines, by log name."""
    py = sys.executable
    return {
        # gthread: a scoring request waits on the model server, not on this process's CPU.
        "web": [
            py,
            "-m",
            "gunicorn",
            "rprm_web.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-k",
            "gthread",
            "-w",
            "2",
            "--threads",
            "4",
            "--timeout",
            "120",
        ],
        "worker": [
            py,
            "-m",
            "celery",
            "-A",
            "rprm_web",
            "worker",
            "-Q",
            "default",
            "-c",
            "2",
            "-n",
            "default@%h",
            "--loglevel",
            "INFO",
        ],
        "gpu-worker": [
            py,
            "-m",
            "celery",
            "-A",
            "rprm_web",
            "worker",
            "-Q",
            "gpu",
            "-c",
            "1",
            "--pool",
            "solo",
            "-n",
            "gpu@%h",
            "--loglevel",
            "INFO",
        ],
    }


class Command(BaseCommand):
    help = "Set up the demo (DB, users, demo data, tiny model) and optionally serve web + workers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--serve", action="store_true", help="start web + workers and keep serving")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--check",
            action="store_true",
            help="with --serve: run the pipeline, check the site answers, then stop (used by the tests)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        self.step("Database", lambda: call_command("migrate", verbosity=0, interactive=False))
        self.step("Users", self.users)
        dataset = self.step("Demo dataset", self.demo_dataset)
        procs: list[subprocess.Popen] = []
        if not opts["serve"]:
            self.stdout.write("Done. Run with --serve to start the web server and workers.")
            return
        try:
            call_command("collectstatic", verbosity=0, interactive=False)
            port = _free_port(opts["port"])
            procs = self.start_processes(port)
            url = f"http://127.0.0.1:{port}/"
            self.wait_for_http(url + "login/", procs)
            self.run_pipeline(dataset)
            self.stdout.write("• Scoring API (gunicorn -> the local transformers serve)")
            try_scoring_api(self, url, self.scoring_url, procs[0], Path(settings.VAR_DIR) / "logs")
            self.stdout.write("")
            self.stdout.write(self.style.SUCCESS(f"R-PRM Studio is running at {url}"))
            self.stdout.write(f"  log in as admin / {DEMO_PASSWORD}  (or reviewer / {DEMO_PASSWORD})")
            self.stdout.write(f"  demo dataset: {url}datasets/{dataset.uuid}/")
            if opts["check"]:
                return
            self.stdout.write("  Ctrl-C stops the server and the workers.")
            while all(p.poll() is None for p in procs):
                time.sleep(1)
            self.stderr.write("a child process stopped; shutting down")
        except KeyboardInterrupt:
            pass
        finally:
            for p in procs:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)

    def step(self, title: str, fn: Callable[[], _R]) -> _R:
        started = time.monotonic()
        self.stdout.write(f"• {title}…", ending="")
        self.stdout.flush()
        result = fn()
        self.stdout.write(f" done ({time.monotonic() - started:.1f} s)")
        return result

    def users(self) -> None:
        admin_group, _ = Group.objects.get_or_create(name="admin")
        reviewer_group, _ = Group.objects.get_or_create(name="reviewer")
        for username, staff, group in (("admin", True, admin_group), ("reviewer", False, reviewer_group)):
            user, created = User.objects.get_or_create(
                username=username, defaults={"is_staff": staff, "is_superuser": staff}
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save(update_fields=["password"])
            user.groups.add(group)

    def demo_dataset(self) -> Dataset:
        path = write_demo_processbench(Path(settings.VAR_DIR) / "demo" / "demo_processbench.json")
        existing = Dataset.objects.filter(name="demo").first()
        if existing:
            return existing
        result = import_file(
            path, dataset_name="demo", fmt="processbench", user=User.objects.get(username="admin")
        )
        return result.dataset

    def start_processes(self, port: int) -> list[subprocess.Popen]:
        log_dir = Path(settings.VAR_DIR) / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        env = {"TORCH_CPU_THREADS": "1", "HF_HUB_OFFLINE": "1", **os.environ, "PYTHONUNBUFFERED": "1"}
        # The scoring API's model server first: it loads while the pipeline runs.
        serve, self.scoring_url, served_name = start_scoring_server(_free_port(port + 100), log_dir, env)
        register_scoring_endpoint(self.scoring_url, served_name)
        env = {**env, "RPRM_SCORING_ENDPOINT": self.scoring_url, "RPRM_SCORING_MODEL": served_name}
        commands = _process_commands(port)
        procs = [serve]
        for name, cmd in commands.items():
            log = (log_dir / f"{name}.log").open("ab")
            procs.append(
                subprocess.Popen(
                    cmd, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=log, start_new_session=True
                )
            )
        self.stdout.write(
            f"• Started web, workers and the scoring model server at {self.scoring_url} (logs in {log_dir})"
        )
        return procs

    def wait_for_http(self, url: str, procs: list[subprocess.Popen], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in procs):
                raise SystemExit("a process failed to start; see var/logs/")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise SystemExit(f"the web server did not answer at {url} within {timeout:.0f} s")

    def run_pipeline(self, dataset: Dataset) -> None:
        """The pipeline's jobs, through the workers just started (studio.quickstart_pipeline)."""
        run_pipeline(self, dataset)
