"""Apps in pipeline order: no import cycles, no upward imports, tasks found by autodiscovery."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
import_graph = importlib.util.module_from_spec(spec)
spec.loader.exec_module(import_graph)


def test_no_import_cycles_and_no_upward_imports():
    edges = import_graph.graph(ROOT)
    assert len(edges) > 100  # the scan found the project
    assert import_graph.cycles(edges) == []
    assert import_graph.upward(edges) == []


def test_the_checker_finds_a_planted_cycle_and_an_upward_import(tmp_path):
    for app in import_graph.ORDER:
        (tmp_path / app).mkdir()
        (tmp_path / app / "__init__.py").write_text("")
    (tmp_path / "review" / "a.py").write_text("from . import b\n")
    (tmp_path / "review" / "b.py").write_text("def f():\n    from review.a import x\n")
    (tmp_path / "annotations" / "c.py").write_text("from training import models\n")
    (tmp_path / "training" / "models.py").write_text("")
    edges = import_graph.graph(tmp_path)
    assert import_graph.cycles(edges) == [["review.a", "review.b"]]
    assert ("annotations.c", "training.models") in import_graph.upward(edges)
    assert {a for a, _ in import_graph.upward(edges)} == {"annotations.c"}


def test_no_star_imports_and_no_task_registration_from_models():
    offenders = []
    for app in import_graph.ORDER:
        for path in (ROOT / app).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if re.search(r"^\s*from \S+ import \*", text, re.M):
                offenders.append(f"{path}: star import")
            if path.name == "models.py" and re.search(r"^from \.\s*import tasks|^from \.tasks", text, re.M):
                offenders.append(f"{path}: imports tasks")
    assert offenders == []


def test_celery_autodiscovery_registers_every_task_once():
    from rprm_web.celery import app

    app.loader.import_default_modules()
    names = [n for n in app.tasks if not n.startswith("celery.")]
    expected = {
        "annotations.tasks.import_dataset_task",
        "inference.tasks.process_generation_run",
        "review.tasks.audit_run_task",
        "training.tasks.run_training",
        "training.tasks.export_task",
        "evaluation.tasks.process_evaluation_run",
        "evaluation.tasks.process_guidance_run",
        "dashboards.tasks.refresh_dashboards_task",
    }
    assert expected <= set(names)
    assert len(names) == len(set(names))
    assert app.amqp.router.route({}, "training.tasks.export_task")["queue"].name == "default"
    assert app.amqp.router.route({}, "evaluation.tasks.process_evaluation_run")["queue"].name == "gpu"


# --- one run lifecycle: nothing outside rprm_web/runs.py claims, beats or loops by hand ---

KERNEL = ROOT / "rprm_web" / "runs.py"
LIFECYCLE_NAMES = {"claim", "heartbeat", "beat"}  # rprm_web.runs' own, used through execute


def _mentions_running(node: ast.AST) -> bool:
    return any(
        (isinstance(n, ast.Attribute) and n.attr == "RUNNING") or (isinstance(n, ast.Constant) and n.value == "running")
        for n in ast.walk(node)
    )


def _called_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def lifecycle_violations(path: Path, rel: str) -> list[str]:
    """A conditional UPDATE to running, a hand-driven heartbeat (a `heartbeat`/`beat` call,
    `__enter__`/`__exit__` by hand, `heartbeat_at=` written), or an own claim/execute
    (a `claim` call or an `execute` defined) in one module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        where = f"{rel}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "execute":
            found.append(f"{where}: defines its own execute (use rprm_web.runs.execute)")
        if not isinstance(node, ast.Call):
            continue
        name = _called_name(node)
        if name == "update" and any(k.arg == "status" and _mentions_running(k.value) for k in node.keywords):
            found.append(f"{where}: conditional UPDATE to running (claim through runs.execute)")
        if name in LIFECYCLE_NAMES or name in ("__enter__", "__exit__"):
            found.append(f"{where}: calls {name}() by hand (runs.execute claims and beats)")
        if any(k.arg == "heartbeat_at" for k in node.keywords):
            found.append(f"{where}: writes heartbeat_at by hand (runs.progress does)")
    return found


def _app_modules(root: Path):
    for app in import_graph.ORDER:
        for path in sorted((root / app).rglob("*.py")):
            if "migrations" not in path.parts and path != KERNEL:
                yield path, str(path.relative_to(root))


def test_every_run_goes_through_the_one_lifecycle():
    offenders = [v for path, rel in _app_modules(ROOT) for v in lifecycle_violations(path, rel)]
    assert offenders == []


def test_the_lifecycle_check_finds_planted_violations(tmp_path):
    (tmp_path / "training").mkdir()
    planted = tmp_path / "training" / "tasks.py"
    planted.write_text(
        "from rprm_web import runs\n"
        "from training.models import TrainingRun\n"
        "def execute(run_id):\n"
        "    TrainingRun.objects.filter(id=run_id, status='queued').update(status=TrainingRun.Status.RUNNING)\n"
        "    run = runs.claim(TrainingRun, run_id, 'w')\n"
        "    beating = runs.heartbeat(run).__enter__()\n"
        "    TrainingRun.objects.filter(id=run_id).update(step=1, heartbeat_at=None)\n"
        "def other(run_id):\n"
        "    TrainingRun.objects.filter(id=run_id).update(status='running')\n"
        "    TrainingRun.objects.filter(id=run_id).update(status='failed')\n"
    )
    found = lifecycle_violations(planted, "training/tasks.py")
    lines = sorted(int(v.split(":")[1]) for v in found)
    assert lines == [3, 4, 5, 6, 6, 7, 9], found
    assert any("own execute" in v for v in found) and any("__enter__" in v for v in found)
