"""`manage.py score_file`: per-step rewards and per-sample verdicts for a JSONL file, in a
format `evaluate --scores` reads back."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from annotations.models import Solution


def test_it_scores_a_file_and_the_output_evaluates(pb_datasets, tiny_endpoint, tmp_path):
    rows = [{"id": s.source_id, "question": s.problem.question, "steps": [st.text for st in s.steps.all()]}
            for s in Solution.objects.filter(dataset__in=pb_datasets).select_related("problem")]  # fmt: skip
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out.jsonl"
    call_command("score_file", str(src), "--model", "tiny-scorer", "--samples", "2", "--out", str(out),
                 "--batch-size", "5", "--seed", "2", stderr=io.StringIO())  # fmt: skip
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x["id"] for x in lines] == [r["id"] for r in rows]
    for line, row in zip(lines, rows, strict=True):
        assert len(line["step_scores"]) == len(row["steps"]) == len(line["steps"])
        for step, reward in zip(line["steps"], line["step_scores"], strict=True):
            ps = [s["p_yes"] for s in step["samples"]]
            assert len(ps) == 2 and reward == pytest.approx(sum(ps) / 2) and 0 <= reward <= 1
    summary = io.StringIO()
    call_command("evaluate", "--benchmark", "processbench", "--dataset", "pb-gsm8k,pb-math", "--scores", str(out),
                 "--json", stdout=summary)  # fmt: skip
    assert json.loads(summary.getvalue().splitlines()[-1])["n_solutions"] == 9


def test_it_names_the_line_and_field_of_bad_input(tiny_endpoint, tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text(
        json.dumps({"id": 1, "question": "Q?", "steps": ["a"]}) + "\n" + json.dumps({"question": "Q?"})
    )
    with pytest.raises(CommandError, match=r"bad.jsonl, line 2: steps: expected a non-empty list"):
        call_command("score_file", str(src), "--model", "tiny-scorer")
    with pytest.raises(CommandError, match="no scorer or student model named 'nope'"):
        call_command("score_file", str(src), "--model", "nope")
