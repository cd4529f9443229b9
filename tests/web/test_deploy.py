"""The deployment files, checked without docker: compose parsed with PyYAML, the Dockerfile
and .dockerignore read as text, and `check --deploy` run with compose's environment."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = ("web", "worker", "gpu-worker")


def gpu_services() -> list[str]:
    out = []
    for name, svc in SERVICES.items():
        devices = svc.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
        if any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices):
            out.append(name)
    return out


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} / ${VAR:?error} with an empty environment."""
    return re.sub(r"\$\{[A-Z_]+(?::-([^}]*)|:\?[^}]*)?\}", lambda m: m.group(1) or "", str(value))


def test_compose_has_the_stack_and_every_service_a_healthcheck():
    assert set(SERVICES) == {"postgres", "redis", "vllm", "vllm-model", "web", "worker", "gpu-worker"}
    for name, svc in SERVICES.items():
        test = svc.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
    declared = set(COMPOSE["volumes"])
    for name, svc in SERVICES.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            assert source in declared, f"{name} mounts undeclared volume {source}"


def test_vllm_is_an_openai_server_on_the_gpu_with_its_model_volume():
    vllm = SERVICES["vllm"]
    assert vllm["image"].startswith("vllm/vllm-openai:") and not vllm["image"].endswith(":latest")
    assert "/health" in " ".join(vllm["healthcheck"]["test"])
    assert vllm["healthcheck"].get("start_period"), "model loading needs a start period"
    assert any(v.startswith("models:/models") for v in vllm["volumes"])
    args = [interpolate(a) for a in vllm["command"]]
    assert args[0].startswith("/models/")
    assert "--port=8000" in args and "--host=0.0.0.0" in args
    served = next(a.split("=", 1)[1] for a in args if a.startswith("--served-model-name="))
    # Every app service reaches it by service name and asks for the model it serves.
    for name in APP_SERVICES:
        env = SERVICES[name]["environment"]
        assert env["VLLM_URL"] == "http://vllm:8000/v1"
        assert interpolate(env["VLLM_SERVED_MODEL"]) == served
        assert env["DEFAULT_TEACHER_ENDPOINT"] and env["DEFAULT_SCORER_ENDPOINT"]
        assert env["RPRM_SCORING_ENDPOINT"] == env["VLLM_URL"]  # the scoring API calls it too
        assert interpolate(env["RPRM_SCORING_MODEL"]) == served


def test_a_model_version_is_served_on_demand_and_may_be_registered():
    served = SERVICES["vllm-model"]
    assert served["profiles"] == ["serve-model"]  # not started by a plain `docker compose up`
    assert served["image"] == SERVICES["vllm"]["image"]
    assert any(v.startswith("models:/models") for v in served["volumes"])
    args = served["command"]
    assert args[0].startswith("/models/${SERVE_MODEL:?") and "--port=8001" in args
    assert any(a.startswith("--served-model-name=${SERVE_MODEL_NAME:?") for a in args)
    assert "8001" in " ".join(served["healthcheck"]["test"])
    for name in APP_SERVICES:  # "use as scorer" with http://vllm-model:8001/v1 passes the host check
        assert "vllm-model:8001" in SERVICES[name]["environment"]["MODEL_ENDPOINT_ALLOWED_HOSTS"].split(",")


def test_gpu_services_share_memory_with_ipc_host():
    gpus = gpu_services()
    assert set(gpus) == {"vllm", "vllm-model", "gpu-worker"}
    for name in gpus:
        assert SERVICES[name].get("ipc") == "host", f"{name} needs ipc: host"
    for name in set(SERVICES) - set(gpus):
        assert "deploy" not in SERVICES[name], f"{name} must not reserve a GPU"


def test_dependencies_wait_for_healthy_services():
    for name in APP_SERVICES:
        deps = SERVICES[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["redis"]["condition"] == "service_healthy"
        assert "vllm" in deps
    assert SERVICES["worker"]["depends_on"]["vllm"]["condition"] == "service_healthy"
    assert SERVICES["gpu-worker"]["depends_on"]["vllm"]["condition"] == "service_healthy"
    for name, svc in SERVICES.items():  # no dependency on a service that does not exist
        assert set(svc.get("depends_on", {})) <= set(SERVICES), name


def test_web_is_the_base_install_and_registers_the_endpoints_before_serving():
    web = SERVICES["web"]
    assert web["build"]["args"]["EXTRAS"] == "", "the web never loads a model: no ml extra"
    command = web["command"]
    assert command.index("migrate") < command.index("register_endpoints") < command.index("gunicorn")
    # The healthcheck says https the way the proxy does, or SECURE_SSL_REDIRECT answers 301.
    assert "X-Forwarded-Proto" in " ".join(web["healthcheck"]["test"])
    assert SERVICES["gpu-worker"]["build"]["args"]["EXTRAS"] == "ml"
    assert "cu" in SERVICES["gpu-worker"]["build"]["args"]["TORCH_INDEX"]


def test_dockerfile_is_multi_stage_with_node_only_in_the_first_and_a_non_root_user():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]
    assert len(stages) == 3
    assert stages[0].startswith("node:") and "vendor_static.sh" in stages[0]
    runtime = stages[-1]
    assert runtime.startswith("python:")
    for stage in stages[1:]:
        code = "\n".join(line for line in stage.splitlines() if not line.lstrip().startswith("#"))
        assert not re.search(r"\b(nodejs|npm)\b", code), "node must stay in the static stage"
    assert "COPY --from=static" in runtime and "collectstatic" in runtime
    users = re.findall(r"^USER\s+(\S+)", runtime, flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0"), "the runtime runs as a non-root user"
    assert "constraints.txt" in stages[1], "dependencies come from the lock"


def test_dockerignore_keeps_environments_and_data_out_of_the_context():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".venv", "var", "node_modules", ".git", "static/vendor"} <= ignored


# The HTTPS settings (SECURE_SSL_REDIRECT, HSTS, secure cookies) come from the environment
# once branch `inputs` lands in settings.py; until then Django warns about them (4 warnings).
def test_check_deploy_is_clean_with_the_compose_environment(tmp_path):
    env = {k: interpolate(v) for k, v in SERVICES["web"]["environment"].items()}
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    env.update(PATH=os.environ["PATH"], RPRM_VAR_DIR=str(tmp_path), MEDIA_ROOT=str(tmp_path / "media"),
               MODELS_DIR=str(tmp_path / "models"))
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
