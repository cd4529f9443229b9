"""Imported critiques reach the review queue by themselves: `import_critiques` of a
1,000-critique file, a real default worker on Postgres + Redis, no other command."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from annotations.actions import import_file
from annotations.demo import write_demo_processbench
from annotations.models import Step
from inference.models import Critique
from review.audit import AUDIT_VERSION
from review.models import CritiqueAudit, ReviewEvent, ReviewItem
from review.queue import QueueFilter, open_items
from tests.conftest import wait_for
from tests.training_web.conftest import critique_text

pytestmark = pytest.mark.integration

N = 1000


def write_critiques(path, steps: list[Step], n: int) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            step = steps[i % len(steps)]
            verdict = "Yes" if (i // len(steps)) % 3 else "No"
            row = {
                "solution_id": step.solution.source_id,
                "step_index": step.index,
                "text": critique_text(verdict),
            }
            fh.write(json.dumps(row) + "\n")


def test_it_audits_and_queues_1000_imported_critiques_with_no_other_command(start_worker, tmp_path):
    dataset = import_file(
        write_demo_processbench(tmp_path / "demo.json"), dataset_name="demo", fmt="processbench"
    ).dataset
    steps = list(Step.objects.filter(solution__dataset=dataset).select_related("solution").order_by("id"))
    write_critiques(tmp_path / "critiques.jsonl", steps, N)
    start_worker("default")

    call_command(
        "import_critiques", str(tmp_path / "critiques.jsonl"), dataset="demo", model="cluster-teacher"
    )

    wait_for(lambda: CritiqueAudit.objects.count() == N, timeout=120, what="1,000 audits")
    wait_for(lambda: ReviewItem.objects.count() == N, timeout=60, what="1,000 review items")
    assert set(CritiqueAudit.objects.values_list("version", flat=True)) == {AUDIT_VERSION}
    assert Critique.objects.filter(audit__isnull=True).count() == 0
    labelled = Critique.objects.exclude(matches_label=None).count()
    queued = sum(open_items(QueueFilter(queue=q)).count() for q in ("matched", "disagreed"))
    assert labelled > 0 and queued == labelled  # teacher critiques with a label: in the two queues
    assert ReviewEvent.objects.filter(kind=ReviewEvent.Kind.AUDITED).count() == 1

    # Importing the same file again is a no-op; auditing the run again adds nothing.
    call_command(
        "import_critiques", str(tmp_path / "critiques.jsonl"), dataset="demo", model="cluster-teacher"
    )
    assert Critique.objects.count() == N and CritiqueAudit.objects.count() == N == ReviewItem.objects.count()
