"""Smoke test of the base install (no `ml` extra): check, migrate, every main page.

Run by scripts/check_base_install.sh with the base venv's python, on a throw-away
SQLite database and var/ folder. It fails when an ML package is importable (the
check would prove nothing) or when any argument-free page does not answer 200/302.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rprm_web.settings")

# The base install must really be the base: with torch present a missing lazy
# import would go unnoticed.
leaked = [m for m in ("torch", "transformers", "trl", "peft", "datasets", "vllm") if importlib.util.find_spec(m)]
if leaked:
    sys.exit(f"base smoke: ML packages are installed in this venv: {', '.join(leaked)}")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.urls import URLPattern, URLResolver, get_resolver, reverse  # noqa: E402

assert settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"), "base smoke runs on SQLite"
call_command("check", fail_level="ERROR")
call_command("migrate", interactive=False, verbosity=0)

# Every module of the project's apps imports (the worker and commands load them):
# ML packages may only be imported inside the functions that use them.
broken = []
local_apps = ["rprm_web"] + [a for a in settings.INSTALLED_APPS if (ROOT / a).is_dir()]
for app in local_apps:
    package = importlib.import_module(app)
    for module in pkgutil.walk_packages(package.__path__, app + "."):
        if ".migrations." in module.name:
            continue
        try:
            importlib.import_module(module.name)
        except Exception as exc:  # noqa: BLE001 - report them all
            broken.append(f"{module.name}: {type(exc).__name__}: {exc}")
if broken:
    sys.exit("base smoke: modules fail to import without the ml extra:\n  " + "\n  ".join(broken))


def plain_urls(resolver: URLResolver, namespace: str = "") -> list[str]:
    """Names of every URL pattern that takes no argument (the app's main pages)."""
    names = []
    for p in resolver.url_patterns:
        if isinstance(p, URLResolver):
            if p.pattern.regex.groups or p.namespace == "admin":
                continue
            ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
            names += plain_urls(p, ns)
        elif isinstance(p, URLPattern) and p.name and not p.pattern.regex.groups:
            names.append(namespace + p.name)
    return names


setup_test_environment()
User = get_user_model()
admin = User.objects.filter(username="base-smoke").first() or User.objects.create_superuser(
    "base-smoke", "smoke@example.com", "smoke-pass-123"
)
client = Client()
client.force_login(admin)
failures, seen = [], 0
for name in sorted(set(plain_urls(get_resolver()))):
    if name in ("logout",):
        continue
    url = reverse(name)
    response = client.get(url)
    seen += 1
    if not (200 <= response.status_code < 400 or response.status_code == 405):
        failures.append(f"{name} {url} -> {response.status_code}")
if seen < 10:
    failures.append(f"only {seen} pages found: the URL walk is broken")
if failures:
    sys.exit("base smoke: pages failed:\n  " + "\n  ".join(failures))
print(f"base smoke: check, migrate and {seen} pages OK without the ml extra")
