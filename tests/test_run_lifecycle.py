"""The one run lifecycle (rprm_web.runs), tested once over every run type."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from annotations.models import Dataset, ImportJob
from dashboards.models import DashboardRefresh
from evaluation.models import EvaluationRun, GuidanceRun
from inference.actions import default_template
from inference.models import GenerationRun, ModelEndpoint
from rprm_web import runs
from training.models import ExportJob, TrainingRun


def _endpoint(name="m", role=ModelEndpoint.Role.TEACHER):
    return ModelEndpoint.objects.get_or_create(
        name=name, defaults={"backend": "transformers", "path_or_url": "/models/x", "role": role}
    )[0]


def _dataset():
    return Dataset.objects.get_or_create(name="d", defaults={"source_format": "processbench"})[0]


MAKERS = {
    "generation": lambda: GenerationRun.objects.create(
        endpoint=_endpoint(), template=default_template(), dataset=_dataset()
    ),
    "evaluation": lambda: EvaluationRun.objects.create(
        name="e", benchmark="processbench", source="model", endpoint=_endpoint(), template=default_template()
    ),
    "guidance": lambda: GuidanceRun.objects.create(
        kind=GuidanceRun.Kind.BEST_OF_N, dataset=_dataset(), policy=_endpoint(), scorer=_endpoint(),
        template=default_template(),
    ),
    "training": lambda: TrainingRun.objects.create(kind=TrainingRun.Kind.SFT, base_model="x", output_dir="/tmp/x"),
    "import": lambda: ImportJob.objects.create(dataset_name="d", file_path="/tmp/f.jsonl", file_name="f.jsonl"),
    "export": lambda: ExportJob.objects.create(),
    "dashboard": lambda: DashboardRefresh.objects.create(),
}

pytestmark = pytest.mark.django_db


@pytest.fixture(params=sorted(MAKERS))
def row(request):
    return MAKERS[request.param]()


def fresh(run):
    return type(run).objects.get(id=run.id)


def test_every_run_type_is_a_run_base(row):
    assert isinstance(row, runs.RunBase) and row.status == runs.RunStatus.QUEUED and row.attempts == 0


def test_cancel_of_a_queued_run_is_settled_at_once(row):
    assert runs.request_cancel(type(row), row.id) == "cancelled"
    row = fresh(row)
    assert row.status == "cancelled" and row.finished_at is not None and row.is_finished
    assert runs.claim(type(row), row.id, "w1") is None


def test_cancel_of_a_running_run_is_seen_at_the_next_checkpoint(row):
    run = runs.claim(type(row), row.id, "w1")
    runs.checkpoint(run)  # nothing asked yet
    assert runs.request_cancel(type(row), row.id) == "requested"
    assert fresh(row).status == "running"
    with pytest.raises(runs.RunCancelled):
        runs.checkpoint(run)
    assert runs.finish(run, runs.RunStatus.CANCELLED)
    assert fresh(row).status == "cancelled" and fresh(row).finished_at is not None


def test_cancel_of_a_run_whose_worker_died_is_settled(row):
    runs.claim(type(row), row.id, "w1")
    type(row).objects.filter(id=row.id).update(heartbeat_at=timezone.now() - runs.STALE_AFTER - timedelta(seconds=1))
    assert runs.request_cancel(type(row), row.id) == "cancelled"
    row = fresh(row)
    assert row.status == "cancelled" and row.finished_at is not None


def test_a_cancel_left_for_a_dead_worker_is_settled_by_the_next_claim(row):
    runs.claim(type(row), row.id, "w1")
    runs.request_cancel(type(row), row.id)  # live then: only the flag
    type(row).objects.filter(id=row.id).update(heartbeat_at=timezone.now() - runs.STALE_AFTER * 2)
    assert runs.claim(type(row), row.id, "w2") is None
    assert fresh(row).status == "cancelled" and fresh(row).finished_at is not None


def test_a_stale_heartbeat_is_taken_over_and_a_live_one_is_not(row):
    first = runs.claim(type(row), row.id, "w1")
    assert first.attempts == 1 and first.worker == "w1" and first.started_at is not None
    assert runs.claim(type(row), row.id, "w2") is None  # w1 is alive
    type(row).objects.filter(id=row.id).update(heartbeat_at=timezone.now() - runs.STALE_AFTER * 2)
    second = runs.claim(type(row), row.id, "w2")
    assert second.worker == "w2" and second.attempts == 2 and second.started_at == first.started_at


def test_a_restarted_worker_takes_back_its_own_run(row):
    runs.claim(type(row), row.id, "gpu@host")
    again = runs.claim(type(row), row.id, "gpu@host")
    assert again is not None and again.attempts == 2


def test_two_claimers_one_winner(row):
    assert runs.claim(type(row), row.id, "w1") is not None
    assert runs.claim(type(row), row.id, "w2") is None
    assert fresh(row).worker == "w1"


@pytest.mark.django_db(transaction=True)
def test_two_claimers_racing_in_threads_one_winner(row):
    from django.db import connection

    won, barrier = [], threading.Barrier(4)

    def attempt(name):
        barrier.wait()
        try:
            if runs.claim(type(row), row.id, name) is not None:
                won.append(name)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and fresh(row).worker == won[0] and fresh(row).attempts == 1


def test_a_finish_after_losing_the_lease_writes_nothing(row):
    old = runs.claim(type(row), row.id, "w1")
    type(row).objects.filter(id=row.id).update(heartbeat_at=timezone.now() - runs.STALE_AFTER * 2)
    new = runs.claim(type(row), row.id, "w2")
    assert not runs.beat(old)
    with pytest.raises(runs.LeaseLost):
        runs.checkpoint(old)
    assert runs.finish(old, runs.RunStatus.SUCCEEDED) is False
    assert fresh(row).status == "running" and fresh(row).worker == "w2"
    assert runs.finish(new, runs.RunStatus.SUCCEEDED, error="")
    assert fresh(row).status == "succeeded" and fresh(row).percent == 100


def test_a_job_that_killed_its_worker_twice_fails_with_the_reason(row):
    for worker in ("w1", "w2"):
        assert runs.claim(type(row), row.id, worker) is not None
        type(row).objects.filter(id=row.id).update(heartbeat_at=timezone.now() - runs.STALE_AFTER * 2)
    assert runs.claim(type(row), row.id, "w3") is None
    row = fresh(row)
    assert row.status == "failed" and row.finished_at is not None
    assert "died 2 times" in row.error and "w2" in row.error


def test_execute_runs_the_body_once_and_records_a_failure(row):
    seen = []
    done = runs.execute(type(row), row.id, lambda run: seen.append(run.id), worker="w1")
    assert seen == [row.id] and done.status == "succeeded" and fresh(row).status == "succeeded"
    assert runs.execute(type(row), row.id, lambda run: seen.append(run.id), worker="w1") is None
    assert seen == [row.id]
    other = MAKERS_BY_MODEL[type(row)]()

    def boom(run):
        raise ValueError("bad input on line 3")

    failed = runs.execute(type(other), other.id, boom, worker="w1")
    assert failed.status == "failed" and "ValueError: bad input on line 3" in fresh(other).error


def test_execute_sends_run_finished(row):
    got = []

    def listener(sender, run, status, **kwargs):
        got.append((sender, run.id, status))

    runs.run_finished.connect(listener)
    try:
        runs.execute(type(row), row.id, lambda run: None, worker="w1")
    finally:
        runs.run_finished.disconnect(listener)
    assert got == [(type(row), row.id, "succeeded")]


def test_the_heartbeat_survives_a_transient_database_error(row, monkeypatch):
    run = runs.claim(type(row), row.id, "w1")
    calls = []

    def flaky(r):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return True  # the thread's own connection cannot see this test's transaction

    monkeypatch.setattr(runs, "beat", flaky)
    beat = runs.heartbeat(run, every_s=0.01)
    with beat:
        deadline = timezone.now() + timedelta(seconds=5)
        while len(calls) < 3 and timezone.now() < deadline:
            threading.Event().wait(0.01)
    assert len(calls) >= 3 and beat.errors == 1 and not beat.lost.is_set()


def test_resume_requeues_own_runs_and_stale_ones_on_the_filesystem_broker(row, monkeypatch):
    sent = []
    entry = runs._registered(type(row))
    monkeypatch.setattr(entry.task, "delay", lambda run_id: sent.append(run_id))
    runs.claim(type(row), row.id, "gpu@a")
    assert runs.resume("gpu@b", {entry.queue}, stale_too=False) == []
    assert runs.resume("gpu@a", {"nothing"}, stale_too=False) == []
    assert runs.resume("gpu@a", {entry.queue}, stale_too=False) == [(type(row).__name__, row.id)]
    type(row).objects.filter(id=row.id).update(heartbeat_at=timezone.now() - runs.STALE_AFTER * 2)
    assert runs.resume("gpu@b", {entry.queue}, stale_too=True) == [(type(row).__name__, row.id)]
    assert sent == [row.id, row.id]


def test_a_starting_worker_requeues_stale_runs_on_every_broker(row, monkeypatch, settings):
    """Redis gives an unacked message back only after its 12 h visibility timeout: a
    worker with another name must pick up a dead worker's stale run at start on Redis too."""
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"
    sent = []
    entry = runs._registered(type(row))
    monkeypatch.setattr(entry.task, "delay", lambda run_id: sent.append(run_id))
    runs.claim(type(row), row.id, "gpu@dead")
    assert runs.resume("gpu@new", {entry.queue}) == []  # its heartbeat is fresh: alive
    type(row).objects.filter(id=row.id).update(heartbeat_at=timezone.now() - runs.STALE_AFTER * 2)
    assert runs.resume("gpu@new", {entry.queue}) == [(type(row).__name__, row.id)] and sent == [row.id]


def test_a_live_worker_sweeps_stale_runs_once_per_stale_period(row, monkeypatch):
    """No worker restarts after the dead one: a live one's periodic sweep re-queues the
    run, at most once per STALE_AFTER (the claim is conditional, duplicates do nothing)."""
    sent = []
    entry = runs._registered(type(row))
    monkeypatch.setattr(entry.task, "delay", lambda run_id: sent.append(run_id))
    runs.claim(type(row), row.id, "gpu@dead")
    requeued: dict = {}
    assert runs.sweep("gpu@live", {entry.queue}, requeued) == []
    type(row).objects.filter(id=row.id).update(heartbeat_at=timezone.now() - runs.STALE_AFTER * 2)
    assert runs.sweep("gpu@live", {"nothing"}, requeued) == []
    assert runs.sweep("gpu@live", {entry.queue}, requeued) == [(type(row).__name__, row.id)]
    assert runs.sweep("gpu@live", {entry.queue}, requeued) == [] and sent == [row.id]
    # The re-queued message is taken by the live worker: a takeover of the stale run.
    taken = runs.claim(type(row), row.id, "gpu@live")
    assert taken is not None and taken.worker == "gpu@live" and taken.attempts == 2


def test_the_stale_timeout_and_heartbeat_come_from_settings():
    from django.conf import settings

    assert runs.STALE_AFTER == timedelta(seconds=settings.RUN_STALE_AFTER_S)
    assert runs.HEARTBEAT_EVERY_S == settings.RUN_HEARTBEAT_EVERY_S
    assert settings.FAULT_KILL_ON_CLAIM == []  # the test-only kill hook is off unless set


MAKERS_BY_MODEL = {
    GenerationRun: MAKERS["generation"],
    EvaluationRun: MAKERS["evaluation"],
    GuidanceRun: MAKERS["guidance"],
    TrainingRun: MAKERS["training"],
    ImportJob: MAKERS["import"],
    ExportJob: MAKERS["export"],
    DashboardRefresh: MAKERS["dashboard"],
}


def test_a_lost_database_connection_reruns_the_body_and_succeeds(row, monkeypatch):
    monkeypatch.setattr(runs, "TRANSIENT_BACKOFF_S", 0)
    tries = []

    def body(run):
        tries.append(run.id)
        if len(tries) < 3:
            raise OperationalError("terminating connection due to administrator command")
        return {}

    done = runs.execute(type(row), row.id, body, worker="w1")
    assert tries == [row.id] * 3 and done.status == "succeeded" and fresh(row).status == "succeeded"
    assert fresh(row).attempts == 1  # one claim: a retry is not a crash


def test_a_database_that_stays_away_fails_the_run_with_the_reason(row, monkeypatch):
    from django.db import InterfaceError

    monkeypatch.setattr(runs, "TRANSIENT_BACKOFF_S", 0)
    tries = []

    def body(run):
        tries.append(1)
        raise InterfaceError("connection already closed")

    runs.execute(type(row), row.id, body, worker="w1", retries=2)
    row = fresh(row)
    assert len(tries) == 3 and row.status == "failed"
    assert "DatabaseUnavailable" in row.error and "3 times in a row" in row.error and "2 retries" in row.error


def test_a_retry_stops_when_another_worker_took_the_run(row, monkeypatch):
    monkeypatch.setattr(runs, "TRANSIENT_BACKOFF_S", 0)

    def body(run):
        type(run).objects.filter(id=run.id).update(worker="w2")  # taken over meanwhile
        raise OperationalError("server closed the connection unexpectedly")

    runs.execute(type(row), row.id, body, worker="w1")
    assert fresh(row).status == "running" and fresh(row).worker == "w2"


def test_progress_is_fenced_by_the_holder(row):
    run = runs.claim(type(row), row.id, "w1")
    runs.progress(run)  # held: a fresh heartbeat
    assert fresh(row).heartbeat_at >= run.heartbeat_at
    type(row).objects.filter(id=row.id).update(worker="w2")
    with pytest.raises(runs.LeaseLost):
        runs.progress(run)


def test_a_broker_error_at_launch_fails_the_run_with_the_message(row, monkeypatch):
    entry = runs._registered(type(row))

    def refused(run_id):
        raise OSError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(entry.task, "delay", refused)
    with pytest.raises(runs.EnqueueError):
        runs.enqueue(type(row), row.id, on_commit=False)
    row = fresh(row)
    assert row.status == "failed" and row.finished_at is not None
    assert "Connection refused" in row.error and "Not started" in row.error


def test_the_sweep_requeues_a_run_queued_too_long_once_per_period(row, monkeypatch):
    sent = []
    entry = runs._registered(type(row))
    monkeypatch.setattr(entry.task, "delay", lambda run_id: sent.append(run_id))
    requeued: dict = {}
    assert runs.sweep("w@live", {entry.queue}, requeued) == []  # just queued: its message is on the way
    type(row).objects.filter(id=row.id).update(created_at=timezone.now() - runs.QUEUED_REQUEUE_AFTER * 2)
    assert runs.sweep("w@live", {entry.queue}, requeued) == [(type(row).__name__, row.id)]
    assert runs.sweep("w@live", {entry.queue}, requeued) == [] and sent == [row.id]
    assert runs.resume("w@new", {entry.queue}) == [(type(row).__name__, row.id)]  # a starting worker too
