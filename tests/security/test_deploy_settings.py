"""Issue 13 part 7: `check --deploy` is clean in production, logins are throttled, a CSP
forbids inline script, and API tokens need a role."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from inference.scorers import authenticate_token, create_api_token
from tests.conftest import PASSWORD

ROOT = Path(settings.BASE_DIR)
PRODUCTION_ENV = {
    "SECRET_KEY": "x7Qp2-" + "k9vR3mZ8tL5wY1nB6cF4hJ0dS" * 3,
    "RPRM_REQUIRE_SECRET_KEY": "1",
    "DEBUG": "0",
    "ALLOWED_HOSTS": "studio.example.org",
}


def manage(*args: str, env: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SECURE_", "SESSION_", "CSRF_"))}
    for name in ("RPRM_REQUIRE_SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE", "DEBUG"):  # set by the test session
        base.pop(name, None)
    full = {**base, "RPRM_VAR_DIR": str(tmp_path), **env}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=full, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_check_deploy_is_clean_under_the_production_environment(tmp_path):
    done = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV, tmp_path=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout
    # The same check without the production marker finds the insecure defaults (the test can fail).
    dev = manage("check", "--deploy", "--fail-level", "WARNING",
                 env={k: v for k, v in PRODUCTION_ENV.items() if k != "RPRM_REQUIRE_SECRET_KEY"},
                 tmp_path=tmp_path)  # fmt: skip
    assert dev.returncode != 0
    for code in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert code in dev.stdout + dev.stderr


def test_production_settings_come_from_the_environment(tmp_path):
    script = ("from django.conf import settings as s; print(s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER, "
              "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT)")  # fmt: skip
    done = manage("shell", "-c", script, env=PRODUCTION_ENV, tmp_path=tmp_path)
    assert (
        done.stdout.strip().splitlines()[-1] == "31536000 ('HTTP_X_FORWARDED_PROTO', 'https') True True True"
    )
    done = manage("shell", "-c", script, env={**PRODUCTION_ENV, "SECURE_SSL_REDIRECT": "0",
                                              "SECURE_HSTS_SECONDS": "60"}, tmp_path=tmp_path)  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == "60 ('HTTP_X_FORWARDED_PROTO', 'https') True True False"


@pytest.mark.django_db
def test_logins_are_throttled_per_user_and_address(client, reviewer, reviewer2, settings):
    settings.AXES_FAILURE_LIMIT = 3
    url = reverse("login")
    for _ in range(3):
        response = client.post(url, {"username": "reviewer", "password": "wrong"})
        assert response.status_code in (200, 429)
    # Locked out now: even the right password is refused.
    response = client.post(url, {"username": "reviewer", "password": PASSWORD})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    # Another account from the same address is not locked.
    response = client.post(url, {"username": "reviewer2", "password": PASSWORD})
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(reviewer2.pk)


@pytest.mark.django_db
def test_a_good_login_still_works(client, reviewer):
    response = client.post(reverse("login"), {"username": "reviewer", "password": PASSWORD})
    assert response.status_code == 302


@pytest.mark.django_db
def test_pages_carry_a_csp_without_inline_script(client, reviewer):
    client.force_login(reviewer)
    response = client.get(reverse("annotations:dataset_list"))
    policy = response["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]*)", policy).group(1)
    assert script_src.strip() == "'self'"
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy


def test_no_template_has_inline_script_or_handlers():
    offenders = []
    for path in ROOT.glob("**/templates/**/*.html"):
        # The project's own templates only: not installed packages (.venv, or the base-install
        # check's var/basevenv), nor front-end libraries.
        if {".venv", "var", "node_modules"} & set(path.relative_to(ROOT).parts):
            continue
        text = path.read_text()
        for m in re.finditer(r"<script(?![^>]*\bsrc=)[^>]*>", text):
            if 'type="application/json"' not in m.group():
                offenders.append(f"{path.relative_to(ROOT)}: {m.group()}")
        for m in re.finditer(r"\son[a-z]+\s*=\s*[\"']", text):
            offenders.append(f"{path.relative_to(ROOT)}: inline handler {m.group().strip()}")
        if "javascript:" in text:
            offenders.append(f"{path.relative_to(ROOT)}: javascript: URL")
    assert offenders == []


@pytest.mark.django_db
def test_api_tokens_need_a_user_with_a_role(reviewer, outsider, admin):
    with pytest.raises(ValueError, match="neither reviewer nor admin"):
        create_api_token(outsider, "no role")  # refused up front, not only at use
    _, raw_reviewer = create_api_token(reviewer, "reviewer")
    _, raw_admin = create_api_token(admin, "admin")
    assert authenticate_token(raw_reviewer) is not None and authenticate_token(raw_admin) is not None
    reviewer.groups.clear()
    assert authenticate_token(raw_reviewer) is None


@pytest.mark.django_db
def test_the_api_answers_401_for_a_token_without_a_role(client, reviewer):
    _, raw = create_api_token(reviewer, "role taken away later")
    reviewer.groups.clear()
    response = client.post("/api/v1/score", data="{}", content_type="application/json",
                           headers={"Authorization": f"Bearer {raw}"})  # fmt: skip
    assert response.status_code == 401
