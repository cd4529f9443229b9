"""Review fixtures: the demo dataset, runs written by a test-double teacher, audits.

Test data comes through the project's own importer, run processor and audit.
"""

from __future__ import annotations

import json
import re

import pytest

from annotations.actions import import_file
from annotations.demo import write_demo_processbench
from inference.actions import create_run, endpoint_for
from inference.core.backends.base import Completion
from inference.runner import process_run
from review.models import ReviewItem

CRITIQUE = (
    "Previous Steps Analysis: {prev}\nNow Step Analysis: The Now Step {now}\n"
    "Data Source Analysis: The numbers come from the problem.\nConsistency Analysis: Consistent.\n"
    "Calculation Analysis: {calc}\nConclusion: {conclusion}\nVerification: Is the step correct (Yes/No)? {verdict}"
)


def critique(
    verdict="Yes", *, prev="Fine.", now="adds the numbers.", calc="Checked again.", conclusion=None
) -> str:
    if conclusion is None:
        conclusion = "The Now Step is correct." if verdict == "Yes" else "The Now Step is incorrect."
    return CRITIQUE.format(prev=prev, now=now, calc=calc, conclusion=conclusion, verdict=verdict)


class WriterBackend:
    """A teacher double: `write(now_step_text, sample_index) -> (text, p_yes)`."""

    name = "writer"

    def __init__(self, write):
        self.write = write

    def generate(self, prompts, n, sampling):
        out = []
        for prompt in prompts:
            # Chat templates arrive as messages: read the user message, like a chat server.
            text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
            # The Now Step carries its number ("Step k: <text>"), as in the authors' rows.
            now = re.sub(r"^Step \d+: ", "", text.rsplit("Now Step:\n", 1)[-1].strip())
            row = []
            for i in range(n):
                text, p_yes = self.write(now, i)
                row.append(
                    Completion(
                        text=text,
                        prompt_tokens=10,
                        completion_tokens=20,
                        p_yes=p_yes,
                        p_yes_source="inline",
                        latency_s=0.0,
                    )
                )
            out.append(row)
        return out

    def close(self):
        pass


def always_yes(now, i):
    return critique("Yes"), 0.9


def split_teacher(now, i):
    """Even samples say Yes, odd say No: each labelled step gets agreeing and disagreeing critiques."""
    verdict = "Yes" if i % 2 == 0 else "No"
    return critique(verdict), 0.9 if verdict == "Yes" else 0.1


def ensure_taxonomy() -> None:
    """Transactional tests (live server, threads) flush the migration-seeded error types."""
    from annotations.models import ErrorType
    from annotations.taxonomy import ERROR_TYPES

    for order, row in enumerate(ERROR_TYPES):
        ErrorType.objects.get_or_create(slug=row["slug"], defaults={**row, "order": order})


@pytest.fixture
def demo(db, tmp_path):
    ensure_taxonomy()
    return import_file(
        write_demo_processbench(tmp_path / "demo.json"), dataset_name="demo", fmt="processbench"
    ).dataset


@pytest.fixture
def make_run(demo):
    """Process a run with a writer teacher and audit it (items land in the queues)."""
    from review.audit import audit_run

    def make(write=always_yes, *, n_samples=2, dataset=None, audit=True, **kw):
        run = create_run(
            dataset=dataset or demo,
            endpoint=endpoint_for("writer-teacher", backend="transformers"),
            queue=False,
            n_samples=n_samples,
            **kw,
        )
        process_run(run.id, backend=WriterBackend(write))
        if audit:
            audit_run(run.id)
        run.refresh_from_db()
        return run

    return make


XSS_ROWS = [
    {
        "id": "xss-0",
        "generator": "evil",
        "label": 0,
        "final_answer_correct": False,
        "problem": 'What is $1+1$? <script>window.__xss = "problem"</script>',
        "steps": ['<img src=x onerror="window.__xss=1"> So $1+1=3$.', "Done <b>bold</b>."],
    }
]


def evil_teacher(now, i):
    """Critiques carrying HTML and math, to check the pages render them inert."""
    return critique(
        "Yes",
        now='<script>window.__xss="critique"</script> checks $x^2$.',
        calc='<img src=y onerror="window.__xss=2"> $1+1=2$.',
    ), 0.8


@pytest.fixture
def xss_item(tmp_path, make_run):
    path = tmp_path / "xss.json"
    path.write_text(json.dumps(XSS_ROWS))
    dataset = import_file(path, dataset_name="xss", fmt="processbench").dataset
    run = make_run(evil_teacher, n_samples=2, dataset=dataset)
    return ReviewItem.objects.filter(run=run).select_related("critique").order_by("step__index").first()


def decide(item, user, decision, **kwargs):
    """Take the item as `user` (deciding needs the lease), then decide it."""
    from review.queue import take_item
    from review.reviews import submit_review

    take_item(item.critique_id, user)
    return submit_review(item, user, decision, **kwargs)
