"""The run processor (Django shell around the core): resume, cancel, failure, summary, SFT pool."""

from __future__ import annotations

import pytest
from django.utils import timezone

from annotations.actions import import_file
from annotations.demo import write_demo_processbench
from annotations.models import Step
from inference.actions import create_run, endpoint_for
from inference.core.backends.base import Completion
from inference.models import Critique, GenerationRun
from inference.pools import build_sft_pool, eligible_critiques
from inference.runner import process_run

SECTIONS = (
    "Previous Steps Analysis: fine.\nNow Step Analysis: adds.\nData Source Analysis: ok.\n"
    "Consistency Analysis: ok.\nCalculation Analysis: {calc}\nConclusion: done.\n"
)


class ScriptedBackend:
    """A test double with fixed answers, to check the orchestration's bookkeeping exactly."""

    name = "scripted"

    def __init__(self, answer=lambda prompt, i: "Yes", fail_after: int | None = None, exc=RuntimeError):
        self.answer, self.fail_after, self.exc, self.calls, self.prompts = answer, fail_after, exc, 0, []

    def generate(self, prompts, n, sampling):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise self.exc("backend went away")
        self.calls += 1
        self.prompts += prompts
        out = []
        for p in prompts:
            out.append(
                [
                    Completion(
                        text=SECTIONS.format(calc="checked") + f"Verification: Is the step correct (Yes/No)? "
                        f"{self.answer(p, i)}",
                        prompt_tokens=10,
                        completion_tokens=20,
                        p_yes=0.9 if self.answer(p, i) == "Yes" else 0.1,
                        p_yes_source="inline",
                        latency_s=0.01,
                    )
                    for i in range(n)
                ]
            )
        return out

    def close(self):
        pass


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing records a failure."""


@pytest.fixture
def demo(db, tmp_path):
    return import_file(
        write_demo_processbench(tmp_path / "demo.json"), dataset_name="demo", fmt="processbench"
    ).dataset


def _run(demo, **kw):
    endpoint = endpoint_for("scripted-teacher", backend="transformers")
    return create_run(dataset=demo, endpoint=endpoint, queue=False, n_samples=kw.pop("n_samples", 2), **kw)


def test_it_writes_critiques_and_a_summary(demo):
    run = _run(demo, batch_size=4)
    result = process_run(run.id, backend=ScriptedBackend())
    assert result.status == GenerationRun.Status.SUCCEEDED
    n_steps = Step.objects.filter(solution__dataset=demo).count()
    assert Critique.objects.filter(run=run).count() == 2 * n_steps == result.critiques_done
    n_correct = Step.objects.filter(solution__dataset=demo, label="correct").count()
    n_incorrect = Step.objects.filter(solution__dataset=demo, label="incorrect").count()
    s = result.summary
    assert s["parse_rate"] == 1.0 and s["agreement_correct"] == 1.0 and s["agreement_incorrect"] == 0.0
    assert s["agreement"] == round(n_correct / (n_correct + n_incorrect), 4)
    assert s["sft_eligible"] == 2 * n_correct
    critique = Critique.objects.filter(run=run).first()
    assert critique.strict and critique.verdict == "yes" and not critique.missing_sections
    assert critique.sections["calculation_analysis"] == "checked"


def test_it_renders_previous_steps_in_order(demo):
    run = _run(demo, step_filter={"limit": 3}, n_samples=1)
    backend = ScriptedBackend()
    process_run(run.id, backend=backend)
    # Chat messages reach the backend (it applies the model's chat template).
    assert [m["role"] for m in backend.prompts[2]] == ["system", "user"]
    user = backend.prompts[2][-1]["content"]
    # Third step of demo-0: both earlier steps, 1-based, in order; the Now Step numbered;
    # the first step has the authors' sentence.
    assert "Step 1: In the morning" in user and "Step 2: The total is $210 + 91 = 300$" in user
    assert "Now Step:\nStep 3: " in user
    assert "Since the Now Step is the first step, there are no Previous Steps." in backend.prompts[0][-1]["content"]


def test_it_resumes_after_a_kill_without_duplicates(demo):
    run = _run(demo, batch_size=5)
    with pytest.raises(Killed):
        process_run(run.id, backend=ScriptedBackend(fail_after=3, exc=Killed))
    half = GenerationRun.objects.get(id=run.id)
    assert half.status == GenerationRun.Status.RUNNING and half.steps_done == 15
    assert Critique.objects.filter(run=run).count() == 30
    backend = ScriptedBackend()
    result = process_run(run.id, backend=backend)
    assert result.status == GenerationRun.Status.SUCCEEDED
    assert backend.calls == 5  # only the 21 missing steps, in batches of 5
    assert Critique.objects.filter(run=run).count() == 72 == result.critiques_done
    assert result.steps_done == 36


def test_it_does_not_claim_a_finished_or_live_run(demo):
    run = _run(demo)
    process_run(run.id, backend=ScriptedBackend())
    assert process_run(run.id, backend=ScriptedBackend()) is None
    other = _run(demo)
    GenerationRun.objects.filter(id=other.id).update(
        status="running", worker="gpu@elsewhere", heartbeat_at=timezone.now()
    )
    assert process_run(other.id, backend=ScriptedBackend()) is None


def test_it_records_a_failure_with_the_error(demo):
    run = _run(demo, batch_size=10)
    result = process_run(run.id, backend=ScriptedBackend(fail_after=1))
    assert result.status == GenerationRun.Status.FAILED
    assert "RuntimeError: backend went away" in result.error
    assert Critique.objects.filter(run=run).count() == 20  # the first batch is kept


def test_it_cancels_between_batches(demo):
    run = _run(demo, batch_size=4)

    def cancel_after_first(r):
        GenerationRun.objects.filter(id=r.id).update(cancel_requested=True)

    result = process_run(run.id, backend=ScriptedBackend(), progress=cancel_after_first)
    assert result.status == GenerationRun.Status.CANCELLED
    assert result.steps_done == 4 and Critique.objects.filter(run=run).count() == 8


def test_it_stores_unparseable_output_as_such(demo):
    run = _run(demo, step_filter={"limit": 2}, n_samples=1)
    process_run(run.id, backend=ScriptedBackend(answer=lambda p, i: "yes."))
    critiques = list(Critique.objects.filter(run=run))
    assert all(c.verdict == "unparseable" and not c.strict and c.lenient_verdict == "yes" for c in critiques)
    assert all(c.matches_label is None for c in critiques)


def test_it_builds_a_balanced_sft_pool_split_by_problem(demo):
    # Alternate answers so both verdicts occur; "Yes" on even samples, "No" on odd.
    run = _run(demo, n_samples=4)
    process_run(run.id, backend=ScriptedBackend(answer=lambda p, i: "Yes" if i % 2 == 0 else "No"))
    eligible = eligible_critiques(runs=[run])
    assert eligible.count() == eligible.filter(strict=True, matches_label=True).count() > 0
    pool = build_sft_pool(eligible, val_fraction=0.3, seed=1)
    train = Critique.objects.filter(id__in=pool.train_ids)
    val = Critique.objects.filter(id__in=pool.val_ids)
    assert train.filter(verdict="yes").count() == train.filter(verdict="no").count() > 0
    assert val.filter(verdict="yes").count() == val.filter(verdict="no").count()
    train_problems = set(train.values_list("step__solution__problem_id", flat=True))
    val_problems = set(val.values_list("step__solution__problem_id", flat=True))
    assert not train_problems & val_problems
    # Same question text under two solution ids never straddles the split either.
    assert not set(train.values_list("step__solution__problem__question", flat=True)) & set(
        val.values_list("step__solution__problem__question", flat=True)
    )
    again = build_sft_pool(eligible, val_fraction=0.3, seed=1)
    assert again.train_ids == pool.train_ids and again.val_ids == pool.val_ids
