"""Apps in pipeline order: no import cycles, no upward imports, tasks found by autodiscovery."""

from __future__ import annotations

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
