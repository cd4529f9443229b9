"""Issue 11's repro on Postgres: the tiny random model over five public-like ProcessBench
solutions, `generate_critiques --samples 2 --limit 6 --wait`. A random model can emit any
byte, NUL included (the issue's run failed on one); every critique must be stored, odd
ones flagged and counted. NUL on purpose: tests/inference/test_model_text.py."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection

from annotations.actions import import_file
from inference.models import Critique, GenerationRun
from tests.annotations.factories_files import write_jsonl

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = [
    ("gsm8k-0", "Customers get $1 off for every $20 they spend. Ann spends $60. How much does she save?",
     ["She spends $60, so she gets 60 / 20 = 3 rewards.", "Each reward is $1, so she saves $3."], -1),
    ("gsm8k-1", "A pen costs $2 and a book costs $15. What do 3 pens and a book cost?",
     ["3 pens cost 3 * $2 = $6.", "With the book: $6 + $15 = $20."], 1),
    ("math-0", r"If $f(x) = x^2 + 1$, what is \(f(3)\)?", ["We have $f(3) = 3^2 + 1 = 10$."], -1),
    ("math-1", "Solve $2x + 3 = 11$.", ["Subtract 3: $2x = 8$.", "So $x = 5$."], 1),
    ("math-2", "Compute $$\\frac{6}{3}.$$", [r"\[\frac{6}{3} = 2.\]"], -1),
]


def test_a_teacher_run_over_public_like_steps_stores_every_critique(transactional_db, tiny_model_dir, tmp_path):
    assert connection.vendor == "postgresql"
    rows = [{"id": i, "generator": "m", "problem": q, "steps": s, "label": lb, "final_answer_correct": lb == -1}
            for i, q, s, lb in ROWS]  # fmt: skip
    import_file(write_jsonl(tmp_path / "pb.jsonl", rows), dataset_name="public-like", fmt="processbench")
    out = io.StringIO()
    call_command("generate_critiques", "--dataset", "public-like", "--model", str(tiny_model_dir),
                 "--backend", "transformers", "--samples", "2", "--limit", "6",
                 # The issue ran the default 8192 tokens: over 20 minutes on this shared CPU.
                 "--max-new-tokens", "512",
                 "--wait", stdout=out)  # fmt: skip
    run = GenerationRun.objects.get()
    assert run.status == GenerationRun.Status.SUCCEEDED, run.error
    critiques = Critique.objects.filter(run=run)
    assert critiques.count() == 12 == run.critiques_done == run.summary["critiques"]
    repaired = critiques.filter(text_repaired=True).count()
    assert run.summary["text_repaired"] == repaired and run.summary["truncated"] == critiques.filter(
        truncated=True).count()  # fmt: skip
    assert all("\x00" not in t for t in critiques.values_list("text", flat=True))
    assert f"{repaired} with text repaired" in out.getvalue()
    print(out.getvalue(), "repaired:", repaired, "truncated:", run.summary["truncated"])
