"""Retry and archive, the kernel's hand-operated actions (rprm_web.runs.retry, set_archived)
over the run types, through the function, the command and the run pages' buttons.

A generation run cancelled half way and an evaluation run failed half way are retried and
finish with exactly one run's worth of critiques: the backend is asked only for what was
missing (zero regenerated)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from annotations.actions import import_file
from annotations.demo import write_demo_processbench
from annotations.models import Step
from evaluation.models import EvaluationRun, SolutionScore
from evaluation.workflow import create_evaluation, process_evaluation
from inference.models import Critique, GenerationRun, ModelEndpoint
from inference.runner import process_run
from rprm_web import runs
from tests.conftest import PASSWORD
from tests.evaluation.conftest import (
    GSM8K_ROWS,
    MATH_ROWS,
    PB_SCORES,
    ScriptedScorer,
    import_processbench,
    write_scores,
)
from tests.evaluation.test_evaluation_processbench import p_of
from tests.inference.test_runner import ScriptedBackend, _run


@pytest.fixture
def demo(db, tmp_path):
    return import_file(
        write_demo_processbench(tmp_path / "demo.json"), dataset_name="demo", fmt="processbench"
    ).dataset


@pytest.fixture
def pb_datasets(db, tmp_path):
    return [import_processbench(tmp_path, GSM8K_ROWS, "pb-gsm8k", "gsm8k"),
            import_processbench(tmp_path, MATH_ROWS, "pb-math", "math")]  # fmt: skip


def _cancel_after_first_batch(run: GenerationRun) -> None:
    runs.request_cancel(GenerationRun, run.id)


def test_it_retries_a_cancelled_generation_run_without_regenerating(demo):
    run = _run(demo, batch_size=3)
    n_steps = Step.objects.filter(solution__dataset=demo).count()
    assert n_steps > 3
    first = ScriptedBackend()
    process_run(run.id, backend=first, progress=_cancel_after_first_batch)
    run.refresh_from_db()
    stored = Critique.objects.filter(run=run).count()
    assert run.status == "cancelled" and stored == 3 * 2 == run.critiques_done

    assert runs.retry(GenerationRun, run.id)
    run.refresh_from_db()
    assert (run.status, run.cancel_requested, run.error, run.finished_at) == ("queued", False, "", None)
    assert run.attempts_at_retry == run.attempts == 1

    second = ScriptedBackend()
    process_run(run.id, backend=second)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert len(second.prompts) == n_steps - 3  # only the missing steps were asked for
    assert Critique.objects.filter(run=run).count() == 2 * n_steps == run.critiques_done
    assert run.steps_done == n_steps and run.summary["critiques"] == 2 * n_steps


def test_it_retries_a_failed_evaluation_run_without_rescoring(pb_datasets):
    endpoint = ModelEndpoint.objects.create(
        name="scripted", role="scorer", backend="transformers", path_or_url="x"
    )
    run = create_evaluation(benchmark="processbench", datasets=pb_datasets, endpoint=endpoint, n_samples=4,
                            batch_size=2, queue=False)  # fmt: skip

    class DiesAfterTwoCalls(ScriptedScorer):
        def generate(self, prompts, n, sampling):
            if self.calls == 2:
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
            return super().generate(prompts, n, sampling)

    process_evaluation(run.id, backend=DiesAfterTwoCalls(p_of))
    run.refresh_from_db()
    assert run.status == "failed" and "illegal memory access" in run.error and run.error_detail
    stored = list(SolutionScore.objects.filter(run=run).values_list("solution__source_id", flat=True))
    assert len(stored) == 4 == run.solutions_done
    steps_before = run.steps_done

    assert runs.retry(EvaluationRun, run.id)
    run.refresh_from_db()
    assert (run.status, run.error, run.error_detail) == ("queued", "", "")
    backend = ScriptedScorer(p_of)
    process_evaluation(run.id, backend=backend)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    asked = [p for call in backend.prompts for p in call]
    # The retry scored only the 5 solutions left: none of the 4 stored was asked again.
    assert not [sid for sid in stored for p in asked if f"({sid})" in p]
    assert any("(math-3)" in p for p in asked)  # the look-up above can see a solution
    assert len(asked) == run.steps_done - steps_before and run.solutions_done == 9
    rows = SolutionScore.objects.filter(run=run)
    assert run.steps_done == sum(len(r.step_scores) for r in rows)
    # One run's worth of critiques: K=4 for every scored step, none twice.
    assert sum(len(s) for r in rows for s in r.samples) == 4 * run.steps_done
    assert run.results["critiques"]["samples"] == 4 * run.steps_done


def test_it_refuses_to_retry_active_succeeded_and_external_runs(demo, pb_datasets, tmp_path):
    run = _run(demo)
    assert not runs.retry(GenerationRun, run.id)  # queued
    process_run(run.id, backend=ScriptedBackend())
    assert not runs.retry(GenerationRun, run.id)  # succeeded
    GenerationRun.objects.filter(id=run.id).update(status="running")
    assert not runs.retry(GenerationRun, run.id)
    external = create_evaluation(benchmark="processbench", datasets=pb_datasets,
                                 scores_path=write_scores(tmp_path / "s.jsonl", PB_SCORES))  # fmt: skip
    EvaluationRun.objects.filter(id=external.id).update(status="failed")
    external.refresh_from_db()
    assert not external.can_retry and not runs.retry(EvaluationRun, external.id)
    assert EvaluationRun.objects.get(id=external.id).status == "failed"


def test_it_starts_the_crash_count_again_on_retry(demo):
    run = _run(demo)
    stale = timezone.now() - runs.STALE_AFTER - timedelta(seconds=5)
    GenerationRun.objects.filter(id=run.id).update(status="failed", attempts=2, error="died twice")
    assert runs.retry(GenerationRun, run.id)
    assert runs.claim(GenerationRun, run.id, "w1").attempts == 3
    GenerationRun.objects.filter(id=run.id).update(heartbeat_at=stale)
    # The first takeover since the retry: claimed again, not failed as a crash loop.
    assert runs.claim(GenerationRun, run.id, "w2").attempts == 4
    GenerationRun.objects.filter(id=run.id).update(heartbeat_at=stale)
    assert runs.claim(GenerationRun, run.id, "w3") is None
    assert GenerationRun.objects.get(id=run.id).status == "failed"


def test_it_archives_only_finished_runs_and_unarchives(demo):
    run = _run(demo)
    assert not runs.set_archived(GenerationRun, run.id)  # queued
    process_run(run.id, backend=ScriptedBackend())
    assert runs.set_archived(GenerationRun, run.id)
    assert not runs.set_archived(GenerationRun, run.id)  # already
    assert list(runs.listed(GenerationRun.objects.all(), show_archived=False)) == []
    assert list(runs.listed(GenerationRun.objects.all(), show_archived=True)) == [run]
    assert runs.set_archived(GenerationRun, run.id, False)
    assert GenerationRun.objects.get(id=run.id).archived is False
    assert Critique.objects.filter(run=run).exists()  # never deleted


def test_it_names_every_run_type():
    assert sorted(runs.kind_of(m) for m in runs.run_models()) == [
        "dashboard",
        "evaluation",
        "export",
        "generation",
        "guidance",
        "import",
        "training",
    ]
    assert runs.model_for("evaluation") is EvaluationRun
    with pytest.raises(LookupError):
        runs.model_for("audit")


def test_it_retries_and_archives_from_the_command_line(demo, capsys):
    run = _run(demo)
    with pytest.raises(CommandError, match="only a failed or cancelled run"):
        call_command("retry_run", "generation", str(run.id))
    with pytest.raises(CommandError, match="no run type"):
        call_command("retry_run", "nonsense", str(run.id))
    with pytest.raises(CommandError, match="no generation run"):
        call_command("retry_run", "generation", "999999")
    runs.request_cancel(GenerationRun, run.id)
    call_command("retry_run", "generation", str(run.id))
    assert "queued again" in capsys.readouterr().out
    assert GenerationRun.objects.get(id=run.id).status == "queued"
    with pytest.raises(CommandError, match="only a finished run"):
        call_command("archive_run", "generation", str(run.id))
    process_run(run.id, backend=ScriptedBackend())
    call_command("archive_run", "generation", str(run.id))
    assert GenerationRun.objects.get(id=run.id).archived
    call_command("archive_run", "generation", str(run.id), "--undo")
    assert not GenerationRun.objects.get(id=run.id).archived


def test_it_retries_and_archives_from_the_run_page(client, admin, reviewer, demo):
    run = _run(demo)
    runs.request_cancel(GenerationRun, run.id)
    retry_url = reverse("run_retry", args=["generation", run.uuid])
    archive_url = reverse("run_archive", args=["generation", run.uuid])
    client.login(username="reviewer", password=PASSWORD)
    assert client.post(retry_url).status_code == 403
    assert client.post(archive_url).status_code == 403
    page = client.get(run.get_absolute_url()).content.decode()
    assert 'id="retry-run"' not in page  # reviewers do not see the buttons

    client.login(username="admin", password=PASSWORD)
    page = client.get(run.get_absolute_url()).content.decode()
    assert 'id="retry-run"' in page and 'id="archive-run"' in page
    assert client.get(retry_url).status_code == 405
    assert client.post(reverse("run_retry", args=["audit", run.uuid])).status_code == 404
    response = client.post(retry_url)
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    assert GenerationRun.objects.get(id=run.id).status == "queued"

    process_run(run.id, backend=ScriptedBackend())
    client.post(archive_url)
    assert GenerationRun.objects.get(id=run.id).archived
    listing = client.get(reverse("inference:run_list")).content.decode()
    assert run.get_absolute_url() not in listing and "Show archived" in listing
    assert (
        run.get_absolute_url() in client.get(reverse("inference:run_list") + "?archived=1").content.decode()
    )
    client.post(archive_url, {"archived": "0"})
    assert not GenerationRun.objects.get(id=run.id).archived


def test_it_retries_an_import_only_while_its_file_is_there(demo, tmp_path):
    from annotations.actions import create_import_job
    from annotations.models import ImportJob

    path = write_demo_processbench(tmp_path / "again.json")
    job = create_import_job(path, "again", "processbench")
    ImportJob.objects.filter(id=job.id).update(status="failed", error="disk full")
    assert ImportJob.objects.get(id=job.id).can_retry and runs.retry(ImportJob, job.id)
    ImportJob.objects.filter(id=job.id).update(status="failed")
    path.unlink()
    assert not ImportJob.objects.get(id=job.id).can_retry
    assert not runs.retry(ImportJob, job.id)
    assert ImportJob.objects.get(id=job.id).status == "failed"
