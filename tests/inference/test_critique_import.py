from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from annotations.actions import import_file
from annotations.demo import write_demo_processbench
from annotations.demo_critiques import DEMO_CRITIQUES, write_demo_critiques
from inference.critique_import import CritiqueImportError, import_critiques
from inference.models import Critique, GenerationRun


@pytest.fixture
def demo(db, tmp_path):
    return import_file(
        write_demo_processbench(tmp_path / "demo.json"), dataset_name="demo", fmt="processbench"
    ).dataset


def test_it_imports_the_hand_written_demo_teacher(demo, tmp_path):
    run, created = import_critiques(
        write_demo_critiques(tmp_path / "c.jsonl"), dataset=demo, model_name="demo-teacher"
    )
    assert created and run.status == GenerationRun.Status.SUCCEEDED and run.kind == "imported"
    assert Critique.objects.filter(run=run).count() == len(DEMO_CRITIQUES) == run.critiques_done
    # demo-0 step 2 is labelled incorrect: sample 0 says No (agrees), sample 1 says Yes (disagrees).
    c0, c1 = Critique.objects.filter(run=run, step__solution__source_id="demo-0").order_by("sample_index")
    assert (c0.verdict, c0.matches_label, c1.verdict, c1.matches_label) == ("no", True, "yes", False)
    assert all(c.strict and not c.missing_sections for c in Critique.objects.filter(run=run))
    again, created = import_critiques(tmp_path / "c.jsonl", dataset=demo, model_name="demo-teacher")
    assert not created and again.id == run.id and Critique.objects.count() == len(DEMO_CRITIQUES)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"solution_id": "demo-0", "step_index": 9, "text": "x"}', "line 2: field 'step_index'"),
        ('{"solution_id": "demo-0", "text": "x"}', "line 2: field 'step_index'"),
        ('{"solution_id": "demo-0", "step_index": 0, "text": "x", "p_yes": 2}', "line 2: field 'p_yes'"),
        ("not json", "line 2: not valid JSON"),
    ],
)
def test_it_refuses_bad_lines_and_writes_nothing(demo, tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"solution_id": "demo-0", "step_index": 0, "text": "ok"}) + "\n" + line + "\n")
    with pytest.raises(CritiqueImportError, match=message):
        import_critiques(path, dataset=demo, model_name="t")
    assert not GenerationRun.objects.exists() and not Critique.objects.exists()
    with pytest.raises(CommandError, match="bad.jsonl"):
        call_command("import_critiques", str(path), dataset="demo", model="t")
