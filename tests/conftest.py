"""The fixed cast and shared fixtures.

Users: `admin` (staff, group admin), `reviewer`, `reviewer2` (group reviewer),
`outsider` (logged in, no group). Test data comes through the project's own
importers wherever possible.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

PASSWORD = "pw-for-tests-only"
pytest_plugins = ["tests.browser_fixtures"]


def _user(username: str, *, staff: bool = False, groups: tuple[str, ...] = ()) -> User:
    user = User.objects.create_user(username, f"{username}@example.org", PASSWORD, is_staff=staff)
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


@pytest.fixture(autouse=True)
def _no_gold_by_chance(settings):
    """Gold items are served at random (REVIEW_GOLD_RATE of the claims, review/gold.py):
    tests that want them set the rate themselves."""
    settings.REVIEW_GOLD_RATE = 0.0


@pytest.fixture
def admin(db) -> User:
    return _user("admin", staff=True, groups=("admin",))


@pytest.fixture
def reviewer(db) -> User:
    return _user("reviewer", groups=("reviewer",))


@pytest.fixture
def reviewer2(db) -> User:
    return _user("reviewer2", groups=("reviewer",))


@pytest.fixture
def outsider(db) -> User:
    return _user("outsider")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A random-initialised Qwen2 model with a locally trained tokenizer, built once."""
    from inference.core.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


# --- real services --------------------------------------------------------------


def _needs_real_services() -> None:
    from django.conf import settings

    if not settings.USING_POSTGRES or not settings.REDIS_URL:
        pytest.skip("needs Postgres (DATABASE_URL) and Redis (REDIS_URL): run `make test`")


class Worker:
    """A real `celery worker` subprocess against the test database and Redis."""

    def __init__(self, queues: str, name: str, env: dict, log_path):
        self.queues, self.name, self.env, self.log_path = queues, name, env, log_path
        self.proc = None

    def start(self):
        import subprocess
        import sys

        from django.conf import settings

        pool = ["--pool", "solo"] if "gpu" in self.queues else ["--pool", "threads", "-c", "2"]
        self.log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "rprm_web",
                "worker",
                "-Q",
                self.queues,
                "-n",
                self.name,
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                *pool,
            ],
            cwd=settings.BASE_DIR,
            env=self.env,
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log_text()[-3000:]}")
            if "ready." in self.log_text():
                return
            time.sleep(0.3)
        raise RuntimeError(f"worker not ready: {self.log_text()[-3000:]}")

    def log_text(self) -> str:
        return open(self.log_path, encoding="utf-8", errors="replace").read()

    def kill(self, sig=None) -> None:
        import os
        import signal

        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig or signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        import os
        import signal
        import subprocess

        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def worker_env(transactional_db, tmp_path):
    """Environment for worker subprocesses: same test database, a purged Redis db."""
    import os

    import redis
    from django.conf import settings
    from django.db import connection

    _needs_real_services()
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",
        "TORCH_CPU_THREADS": "1",
        "RPRM_VAR_DIR": str(settings.VAR_DIR),
        "WORKER_STALE_AFTER_S": "45",
    }


@pytest.fixture
def start_worker(worker_env, tmp_path):
    workers: list[Worker] = []

    def start(queues: str = "default", name: str | None = None) -> Worker:
        name = name or f"{queues.replace(',', '-')}@test"
        worker = Worker(queues, name, worker_env, tmp_path / f"{name}.log").start()
        workers.append(worker)
        return worker

    yield start
    for w in workers:
        w.stop()


def wait_for(predicate, timeout: float = 60, every: float = 0.3, what: str = "condition"):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="session", autouse=True)
def _model_trust_for_the_suite(tmp_path_factory):
    """The suite's fake model servers listen on random loopback ports and its tiny models live
    under pytest's temporary folder: allow both, here and in worker subprocesses. The
    production defaults (port 8000, MODELS_DIR only) and the refusals are tested with
    explicit settings (tests/security/test_endpoint_boundaries.py)."""
    import os

    from django.conf import settings

    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    base = str(tmp_path_factory.getbasetemp())
    settings.MODEL_ENDPOINT_ALLOWED_HOSTS, settings.MODEL_PATH_ROOTS = hosts, [base]
    os.environ["MODEL_ENDPOINT_ALLOWED_HOSTS"], os.environ["MODEL_PATH_ROOTS"] = ",".join(hosts), base


# --- reports that cross processes -------------------------------------------------------


def _storable_text(text: str) -> str:
    """Lone surrogates (model text and errors quoting it, on purpose in some tests) become
    U+FFFD: pytest-xdist sends each report's captured output to the controller as UTF-8,
    and one lone surrogate there crashes the worker."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.sections = [(title, _storable_text(content)) for title, content in report.sections]
    if isinstance(report.longrepr, str):
        report.longrepr = _storable_text(report.longrepr)
