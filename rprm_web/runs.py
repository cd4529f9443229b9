"""One lifecycle for every long job: generation, evaluation, guidance, training,
import and export runs.

A run row is the job's only state. A worker takes it with a conditional UPDATE
(`claim`), keeps `heartbeat_at` fresh while it works (`heartbeat`), and writes the
outcome with `finish`, which is fenced: it writes only while this worker still holds
the run (same worker name and same claim number in `attempts`), so a worker that was
taken for dead and replaced cannot overwrite its successor's result.

* A running run whose heartbeat is older than `STALE_AFTER`, or that is recorded
  under the claiming worker's own name (it was killed and restarted), is taken over.
* Every claim counts in `attempts`. A run still running when its `MAX_CRASHES`-th
  claim is taken over killed its worker that many times: it is marked failed with
  the reason instead of being run again (no crash loop).
* `request_cancel` settles a queued run, or a running run whose worker is dead, at
  once; a live worker sees the flag at its next `checkpoint`.
* `execute(model, id, body)` is claim + heartbeat + body + finish in one place, and
  sends `run_finished` so other apps react (review audits a finished generation run)
  without being imported here.
* `register(model, task)` (in each app's tasks.py) lets `enqueue(model, id)` queue a
  run without importing its tasks module, and re-queues a model's interrupted runs
  when a worker starts (its own runs and stale ones: Redis gives an unacked message
  back only after 12 h, the filesystem broker never; `sweep` does it periodically).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from django.conf import settings
from django.db import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    models,
    transaction,
)
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.dispatch import Signal
from django.utils import timezone

log = logging.getLogger(__name__)

# Settings (env RUN_STALE_AFTER_S, RUN_HEARTBEAT_EVERY_S): the fault tests shorten them.
STALE_AFTER = timedelta(seconds=settings.RUN_STALE_AFTER_S)
HEARTBEAT_EVERY_S = float(settings.RUN_HEARTBEAT_EVERY_S)
MAX_CRASHES = 2
# A lost database connection inside a run (failover, admin shutdown, a restarted pooler) is
# retried this many times, with backoff, before the run fails (env RUN_TRANSIENT_RETRIES).
TRANSIENT_RETRIES = int(settings.RUN_TRANSIENT_RETRIES)
TRANSIENT_BACKOFF_S = float(settings.RUN_TRANSIENT_BACKOFF_S)
try:  # the driver's own, where code talks to psycopg directly (the importer's COPY)
    from psycopg import InterfaceError as DriverInterfaceError
    from psycopg import OperationalError as DriverOperationalError

    _DRIVER_TRANSIENT: tuple[type[Exception], ...] = (DriverOperationalError, DriverInterfaceError)
except ImportError:  # an install on the embedded SQLite default only
    _DRIVER_TRANSIENT = ()
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError, *_DRIVER_TRANSIENT)
# A queued run older than this (env RUN_REQUEUE_QUEUED_AFTER_S) is queued again by the sweep.
QUEUED_REQUEUE_AFTER = timedelta(seconds=int(settings.RUN_REQUEUE_QUEUED_AFTER_S))

_M = TypeVar("_M", bound=models.Model)

# sent after a run's outcome was written: sender=model class, run=the run, status=str
run_finished = Signal()


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)


class RunCancelled(Exception):
    """Raised inside a run's body when a cancel was requested."""


class LeaseLost(Exception):
    """Raised inside a run's body when another worker took the run over."""


class RunBase(models.Model):
    """Status, holder, heartbeat, timestamps, cancel flag and progress of a run.

    `PROGRESS` names the (done, total) fields a subclass counts its progress in."""

    Status = RunStatus
    ACTIVE = ACTIVE
    if TYPE_CHECKING:  # every concrete run model has both
        id: int
        objects: ClassVar[models.Manager[Any]]
    PROGRESS: tuple[str, str] | None = None

    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=255, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Claims so far; the current holder's claim number fences its writes.
    attempts = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # `attempts` when the run was last retried by hand: the crash-loop rule counts only the
    # claims since (attempts itself never goes back, it fences the holder's writes).
    attempts_at_retry = models.PositiveSmallIntegerField(default=0)
    # Hidden from run lists (never deleted); `set_archived`.
    archived = models.BooleanField(default=False)
    # The launch form's idempotency key: a second POST with the same key gets this run.
    launch_key = models.UUIDField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        abstract = True

    def discard_inputs(self) -> None:
        """Delete what only this run would have read (an upload), once it can never run."""

    @property
    def is_finished(self) -> bool:
        return self.status not in self.ACTIVE

    @property
    def run_kind(self) -> str:
        return kind_of(type(self))

    @property
    def can_retry(self) -> bool:
        return self.status in (RunStatus.FAILED, RunStatus.CANCELLED)

    @classmethod
    def retry_where(cls) -> Q:
        """The rows a task of this type can process again (`retry`); all by default."""
        return Q()

    @property
    def percent(self) -> int:
        if self.status == RunStatus.SUCCEEDED:
            return 100
        if not self.PROGRESS:
            return 0
        done, total = (getattr(self, f) or 0 for f in self.PROGRESS)
        return min(100, int(100 * done / total)) if total else 0


# A concrete run model (a RunBase subclass).
RunModel = type[RunBase]


def worker_name() -> str:
    """The Celery worker's hostname inside a task; a unique name for a command."""
    from celery import current_task

    hostname = getattr(getattr(current_task, "request", None), "hostname", None)
    return hostname or f"cli@{socket.gethostname()}:{os.getpid()}"


def _stale(now: datetime) -> Q:
    return Q(heartbeat_at__lt=now - STALE_AFTER) | Q(heartbeat_at__isnull=True)


def _held(run: RunBase) -> Q:
    return Q(id=run.id, status=RunStatus.RUNNING, worker=run.worker, attempts=run.attempts)


def claim(
    model: RunModel,
    run_id: int,
    worker: str,
    *,
    where: Q | None = None,
    select_related: Sequence[str] = (),
    holder_dead: bool = False,
    **fields: Any,
) -> Any | None:
    """Take a queued run, or take over a running one whose worker is dead (stale
    heartbeat, or `holder_dead` when the caller knows, e.g. from a released lock) or was
    this very worker before a restart. `fields` are written with the claim. None if not
    claimable."""
    now = timezone.now()
    rows = model.objects.filter(id=run_id)
    if where is not None:
        rows = rows.filter(where)
    dead = Q() if holder_dead else (_stale(now) | Q(worker=worker))
    takeover = Q(status=RunStatus.RUNNING) & dead
    # A cancel that arrived while the holder was dead: settle it rather than run.
    rows.filter(takeover, cancel_requested=True).update(status=RunStatus.CANCELLED, finished_at=now)
    if rows.filter(takeover, attempts__gte=F("attempts_at_retry") + MAX_CRASHES).update(
        status=RunStatus.FAILED,
        finished_at=now,
        error=f"The worker running this job died {MAX_CRASHES} times (last holder: {worker_hint(rows)}); "
        "it was not started again. Check the worker's log (memory, a crash in a library) before re-queueing.",
    ):
        log.error("run %s %s killed its worker %s times: marked failed", model.__name__, run_id, MAX_CRASHES)
        return None
    claimed = rows.filter(Q(status=RunStatus.QUEUED) | takeover, cancel_requested=False).update(
        status=RunStatus.RUNNING,
        worker=worker,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
        error="",
        started_at=Coalesce(F("started_at"), Value(now, output_field=models.DateTimeField())),
        **fields,
    )
    if not claimed:
        return None
    _fault_point(model)
    return model.objects.select_related(*select_related).get(id=run_id)


def _fault_point(model: RunModel) -> None:
    """Test-only (settings.FAULT_KILL_ON_CLAIM, never set in production): this process
    dies by SIGKILL right after claiming a run of the named model, like a poisoned input
    that segfaults the worker every time (the fault suite's crash-loop case)."""
    if model.__name__ in settings.FAULT_KILL_ON_CLAIM:
        log.error("FAULT_KILL_ON_CLAIM: killing this worker after claiming a %s", model.__name__)
        os.kill(os.getpid(), signal.SIGKILL)


def worker_hint(rows: models.QuerySet[Any]) -> str:
    return next(iter(rows.values_list("worker", flat=True)), "") or "unknown"


def held(run: RunBase) -> models.QuerySet[Any]:
    """The run's row while this worker holds it (empty otherwise): fence progress writes with it."""
    return type(run).objects.filter(_held(run))


def progress(run: RunBase, **fields: Any) -> None:
    """Write progress fields (and a fresh heartbeat) while this worker holds the run;
    LeaseLost when another worker took it over. Every run writes its progress here."""
    if not held(run).update(heartbeat_at=timezone.now(), **fields):
        raise LeaseLost(f"{type(run).__name__} {run.pk} is no longer held by {run.worker or 'this process'}")


def beat(run: RunBase) -> bool:
    """One heartbeat; False once this worker no longer holds the run."""
    return bool(type(run).objects.filter(_held(run)).update(heartbeat_at=timezone.now()))


def checkpoint(run: RunBase) -> None:
    """Between units of work: raise RunCancelled or LeaseLost when due."""
    row = (
        type(run).objects.filter(id=run.id).values("cancel_requested", "status", "worker", "attempts").first()
    )
    if row is None or (row["status"], row["worker"], row["attempts"]) != (
        RunStatus.RUNNING,
        run.worker,
        run.attempts,
    ):
        raise LeaseLost(f"{type(run).__name__} {run.id} is no longer held by {run.worker}")
    if row["cancel_requested"]:
        raise RunCancelled


class heartbeat:  # noqa: N801  (used as `with heartbeat(run) as beat:`)
    """Keeps `heartbeat_at` fresh from a thread while the body runs. A database error
    is logged and retried at the next beat; the thread stops only when the body
    ends or the run is lost (then `lost` is set)."""

    def __init__(self, run: RunBase, every_s: float | None = None) -> None:
        self.run, self.every_s = run, every_s or HEARTBEAT_EVERY_S
        self.stop, self.lost = threading.Event(), threading.Event()
        self.errors = 0
        self.thread = threading.Thread(target=self._loop, daemon=True, name=f"heartbeat-{run.pk}")

    def __enter__(self) -> heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)

    def _loop(self) -> None:
        try:
            while not self.stop.wait(self.every_s):
                try:
                    if not beat(self.run):
                        log.warning(
                            "%s %s: lease lost, heartbeat stops", type(self.run).__name__, self.run.pk
                        )
                        self.lost.set()
                        return
                except Exception:  # a transient database error: retry at the next beat
                    self.errors += 1
                    log.warning(
                        "heartbeat of %s %s failed; retrying",
                        type(self.run).__name__,
                        self.run.pk,
                        exc_info=True,
                    )
                    close_old_connections()
                    connection.close()
        finally:
            connection.close()


def _has_field(model: RunModel, name: str) -> bool:
    return any(f.name == name for f in model._meta.get_fields())


def _storable(text: str) -> str:
    """An error message may quote model output: NUL and lone surrogates, which Postgres
    text cannot hold, become U+FFFD so recording the failure never fails too."""
    return "".join("\ufffd" if c == "\x00" or "\ud800" <= c <= "\udfff" else c for c in text)


def finish(run: RunBase, status: str, *, error: str = "", **fields: Any) -> bool:
    """Write the outcome, fenced by the holder. False (nothing written) when this
    worker lost the run to another one."""
    now = timezone.now()
    error = _storable(error)
    written = (
        type(run).objects.filter(_held(run)).update(status=status, finished_at=now, error=error, **fields)
    )
    if not written:
        log.warning(
            "%s %s: %s not written, the run is no longer held by %s (claim %s)",
            type(run).__name__,
            run.pk,
            status,
            run.worker,
            run.attempts,
        )
        return False
    run.status, run.finished_at, run.error = status, now, error
    for key, value in fields.items():
        setattr(run, key, value)
    run_finished.send(sender=type(run), run=run, status=status)
    return True


def request_cancel(model: RunModel, run_id: int) -> str:
    """'cancelled' when settled now (queued, or its worker is dead), 'requested' when a
    live worker will stop at its next checkpoint, 'finished' when there is nothing to do."""
    now = timezone.now()
    rows = model.objects.filter(id=run_id)
    settled = dict(status=RunStatus.CANCELLED, cancel_requested=True, finished_at=now)
    # Only a heartbeat known to be old says the worker is dead (none yet: leave it to the worker).
    dead = Q(status=RunStatus.RUNNING, heartbeat_at__lt=now - STALE_AFTER)
    if rows.filter(Q(status=RunStatus.QUEUED) | dead).update(**settled):
        return "cancelled"
    if rows.filter(status=RunStatus.RUNNING).update(cancel_requested=True):
        return "requested"
    return "finished"


MAX_DETAIL_CHARS = 2_000
MAX_PUBLIC_CHARS = 200


def split_error(exc: BaseException, detail: str) -> tuple[str, str]:
    """(public, staff_detail) for a failed run: the public line names the error type and
    its first line, cut short, with any upstream body left out; the detail is truncated."""
    first = (str(exc).strip().splitlines() or [""])[0]
    # A server's answer follows its status ("HTTP 500: <body>", the SDK's "Error code: 500 - {body}"):
    # keep the status, leave the body to the detail.
    status = re.search(r"(?:HTTP|Error code:?)\s*\d{3}", first)
    if status:
        first = first[: status.end()] + " (the server's answer is in the staff-only detail)"
    else:
        first = re.split(r"[:\-]\s*[{\[<]", first, maxsplit=1)[0].rstrip(" :-")
    public = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    if len(public) > MAX_PUBLIC_CHARS:
        public = public[: MAX_PUBLIC_CHARS - 1] + "…"
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[:MAX_DETAIL_CHARS] + f"\n… ({len(detail) - MAX_DETAIL_CHARS:,} more characters cut)"
    return public, detail


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}"


class DatabaseUnavailable(Exception):
    """The run's database connection failed more often in a row than TRANSIENT_RETRIES allows."""


def execute(
    model: RunModel,
    run_id: int,
    body: Callable[[Any], dict | None],
    *,
    worker: str | None = None,
    where: Q | None = None,
    select_related: Sequence[str] = (),
    final: Callable[[Any, str], dict] | None = None,
    holder_dead: bool = False,
    claim_fields: dict | None = None,
    retries: int | None = None,
) -> Any | None:
    """Claim, heartbeat, run `body(run)`, finish. `body` returns extra fields to write
    with success; `final(run, status)` returns fields written with any outcome. A body
    may write its own outcome with `finish` (an import does, inside its transaction, so
    data and outcome commit together); then nothing more is written. A lost database
    connection re-runs the body (it resumes from what is stored) up to `retries` times
    (TRANSIENT_RETRIES); `holder_dead` and `claim_fields` are passed to `claim`."""
    run = claim(
        model,
        run_id,
        worker or worker_name(),
        where=where,
        select_related=select_related,
        holder_dead=holder_dead,
        **(claim_fields or {}),
    )
    if run is None:
        log.info("%s %s not claimable (finished, cancelled or held by a live worker)", model.__name__, run_id)
        return None
    status: str
    with heartbeat(run):
        try:
            fields = run_body(run, body, TRANSIENT_RETRIES if retries is None else retries)
            status, error = RunStatus.SUCCEEDED, ""
        except RunCancelled:
            fields, status, error = {}, RunStatus.CANCELLED, ""
        except LeaseLost:
            log.warning("%s %s was taken over; this worker stops", model.__name__, run_id)
            return run
        except Exception as exc:  # recorded on the run; the task itself does not retry
            log.exception("%s %s failed", model.__name__, run_id)
            fields, status, error = failure_fields(model, exc)
        if run.status == RunStatus.RUNNING:  # else the body wrote its own outcome
            _write_outcome(run, status, error, fields, final)
    return run


def run_body(run: RunBase, body: Callable[[Any], dict | None], retries: int) -> dict:
    """`body(run)`, run again after a lost database connection (a new connection, the
    lease checked, backoff) up to `retries` times in a row; then DatabaseUnavailable."""
    failures = 0
    while True:
        try:
            return body(run) or {}
        except TRANSIENT_ERRORS as exc:
            failures = recover_connection(run, exc, failures, retries)


def recover_connection(run: RunBase, exc: BaseException, failures: int, retries: int) -> int:
    """After a transient database error: drop the connection, wait (1, 2, 4 … s, at most
    30 s), and check on a new one that this worker still holds the run. Returns the
    failures so far; raises LeaseLost, or DatabaseUnavailable past `retries`."""
    while True:
        failures += 1
        if failures > retries:
            raise DatabaseUnavailable(
                f"the database connection failed {failures} times in a row; gave up after {retries} retries "
                f"(last: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''})"
            ) from exc
        log.warning(
            "%s %s: database error (%s), retry %s of %s",
            type(run).__name__,
            run.pk,
            type(exc).__name__,
            failures,
            retries,
        )
        _drop_connection()
        time.sleep(min(30.0, TRANSIENT_BACKOFF_S * 2 ** (failures - 1)))
        try:
            if not beat(run):
                raise LeaseLost(f"{type(run).__name__} {run.pk} was taken over while its database was away")
            return failures
        except TRANSIENT_ERRORS as again:
            exc = again


def _drop_connection() -> None:
    if connection.in_atomic_block:
        return  # inside a caller's transaction (a test case's): it cannot be reconnected here
    try:
        connection.close()
    except Exception:  # a connection that died mid-transaction may refuse even to close
        log.debug("closing a broken connection failed", exc_info=True)


def failure_fields(model: RunModel, exc: BaseException) -> tuple[dict, str, str]:
    """(fields, status, error) of a failed run: with an `error_detail` field, reviewers read
    a one-line `error` and staff the traceback and any upstream body (a server's answer)."""
    error, fields = error_text(exc), {}
    if _has_field(model, "error_detail"):
        error, detail = split_error(exc, error)
        fields["error_detail"] = _storable(detail)
    return fields, RunStatus.FAILED, error


def _write_outcome(
    run: RunBase, status: str, error: str, fields: dict, final: Callable[[Any, str], dict] | None
) -> None:
    try:
        if final is not None:
            fields = {**fields, **final(run, status)}
        finish(run, status, error=error, **fields)
    except TRANSIENT_ERRORS:  # the database is away: the run stays running, stale, and is re-queued
        log.exception("%s %s: could not write its outcome %s", type(run).__name__, run.pk, status)


# ------------------------------------------------ task registry: queue and resume


@dataclass(frozen=True)
class Registered:
    model: Any
    task: Any
    queue: str
    resume: bool


_REGISTRY: list[Registered] = []


def register(model: Any, task: Any, *, queue: str = "gpu", resume: bool = True) -> None:
    """Called by each app's tasks.py: `task(id)` processes `model`'s rows. `enqueue`
    finds the task here (so the code that creates a run never imports its tasks
    module), and a starting worker consuming `queue` re-queues the runs it held."""
    if not any(r.model is model for r in _REGISTRY):
        _REGISTRY.append(Registered(model, task, queue, resume))


def _registered(model: Any) -> Registered:
    for _ in range(2):
        for r in _REGISTRY:
            if r.model is model:
                return r
        from celery import current_app

        # Celery's autodiscovery imports every app's tasks.py, which registers them.
        current_app.loader.import_default_modules()
    raise LookupError(f"no task registered for {model.__name__}")


class EnqueueError(Exception):
    """The broker refused a run's message or did not answer in time. The run was failed with
    the reason (its inputs discarded); the web answers an error page (rprm_web.middleware)."""

    def __init__(self, model: Any, run_id: int, exc: BaseException) -> None:
        self.model, self.run_id = model, run_id
        super().__init__(
            f"the job queue did not take {model._meta.verbose_name} {run_id}: {type(exc).__name__}: "
            f"{str(exc).strip()[:200]}"
        )


def enqueue(model: Any, run_id: int, *, on_commit: bool = True) -> None:
    """Queue the task that processes `model` row `run_id` (after the transaction commits).
    A broker error (refused, or no answer within BROKER_*_TIMEOUT_S) fails the run with the
    reason and raises EnqueueError, so no run waits for a message that was never sent."""
    entry = _registered(model)
    if on_commit:
        transaction.on_commit(lambda: publish(entry, run_id))
    else:
        publish(entry, run_id)


def publish(entry: Registered, run_id: int) -> None:
    """Send the run's message now; EnqueueError (the run failed with the reason) if the broker
    refuses it or does not answer within the BROKER_*_TIMEOUT_S settings."""
    if entry.task.app.conf.task_always_eager:
        entry.task.delay(run_id)  # tests and the eager mode: the task runs here, no broker
        return
    try:
        entry.task.delay(run_id)
    except Exception as exc:  # kombu's OperationalError, a socket error, a full disk (filesystem broker)
        log.error("could not queue %s %s: %s", entry.model.__name__, run_id, exc)
        error = EnqueueError(entry.model, run_id, exc)
        fail_unqueued(entry.model, run_id, f"Not started: {error}. Launch it again once the queue is back.")
        raise error from exc


def fail_unqueued(model: Any, run_id: int, error: str) -> bool:
    """Fail a run that is still queued (its message was never sent, or it waited too long)
    and discard its inputs (an upload); False when a worker had taken it meanwhile."""
    failed = model.objects.filter(id=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.FAILED, error=_storable(error), finished_at=timezone.now()
    )
    if failed:
        model.objects.get(id=run_id).discard_inputs()
    return bool(failed)


def _requeue(entry: Registered, run_id: int, why: str) -> bool:
    """Send the run's task again (claims are conditional: a duplicate does nothing). A broker
    that is away now is tried again at the next sweep."""
    try:
        entry.task.delay(run_id)
    except Exception:
        log.warning(
            "could not re-queue %s %s (%s); the next sweep tries again",
            entry.model.__name__,
            run_id,
            why,
            exc_info=True,
        )
        return False
    log.info("re-queued %s %s %s", entry.model.__name__, run_id, why)
    return True


def _old_queued(model: Any, now: datetime) -> models.QuerySet[Any]:
    """Queued rows older than QUEUED_REQUEUE_AFTER: their message may never have been sent
    (the web died between commit and publish) or was lost with the broker's data."""
    if not _has_field(model, "created_at"):
        return model.objects.none()
    return model.objects.filter(
        status=RunStatus.QUEUED, cancel_requested=False, created_at__lt=now - QUEUED_REQUEUE_AFTER
    )


def resume(worker: str, queues: set[str], *, stale_too: bool = True) -> list[tuple[str, int]]:
    """Re-queue the interrupted runs of `worker` and stale ones (a dead worker's), and old
    queued ones, for the registered models whose queue this worker consumes. Stale runs on
    every broker: Redis gives an unacknowledged message back only after its visibility
    timeout (12 h), the filesystem broker never."""
    now, out = timezone.now(), []
    for r in _REGISTRY:
        if not r.resume or r.queue not in queues:
            continue
        mine = Q(worker=worker) | (_stale(now) if stale_too else Q(pk__in=[]))
        for run_id in r.model.objects.filter(mine, status=RunStatus.RUNNING).values_list("id", flat=True):
            if _requeue(r, run_id, "(interrupted)"):
                out.append((r.model.__name__, run_id))
        if stale_too:
            for run_id in _old_queued(r.model, now).values_list("id", flat=True):
                if _requeue(r, run_id, "(queued too long)"):
                    out.append((r.model.__name__, run_id))
    return out


def sweep(worker: str, queues: set[str], requeued: dict[tuple[str, int], float]) -> list[tuple[str, int]]:
    """Periodically, from a live worker: re-queue runs whose worker died while no worker
    started after it, and queued runs no message seems to hold (queued longer than
    QUEUED_REQUEUE_AFTER). `requeued` ((model, id) -> monotonic time) keeps this worker
    from queueing one run more than once per STALE_AFTER (claims are conditional anyway)."""
    now, out = time.monotonic(), []
    for r in _REGISTRY:
        if not r.resume or r.queue not in queues:
            continue
        stale = r.model.objects.filter(_stale(timezone.now()), status=RunStatus.RUNNING).values_list(
            "id", flat=True
        )
        queued = _old_queued(r.model, timezone.now()).values_list("id", flat=True)
        for run_id in [*stale, *queued]:
            key = (r.model.__name__, run_id)
            if now - requeued.get(key, -1e9) < STALE_AFTER.total_seconds():
                continue
            if _requeue(r, run_id, "(stale or queued too long)"):
                requeued[key] = now
                out.append(key)
    return out


SWEEP_EVERY_S = 10
_sweeper_stop = threading.Event()


def _sweep_loop(hostname: str, queues: set[str]) -> None:
    requeued: dict[tuple[str, int], float] = {}
    while not _sweeper_stop.wait(SWEEP_EVERY_S):
        try:
            close_old_connections()
            sweep(hostname, queues, requeued)
        except Exception:  # the database may be briefly away: try again next time
            log.exception("run sweep failed")
    connection.close()


def on_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    """A worker started: re-queue what it held, stale and old queued runs, then sweep every
    SWEEP_EVERY_S from a thread (runs whose worker dies while no worker restarts after it)."""
    try:
        queues = {q.name for q in sender.task_consumer.queues}
        hostname = sender.hostname
    except AttributeError:
        return
    try:
        resume(hostname, queues)
    except Exception:
        log.exception("resuming interrupted runs failed; the sweep tries again")
    threading.Thread(target=_sweep_loop, args=(hostname, queues), daemon=True, name="rprm-run-sweep").start()


def on_worker_shutdown(**kwargs: Any) -> None:
    _sweeper_stop.set()


# ------------------------------------------------ retry, archive, launch once (by hand)

RETRYABLE = (RunStatus.FAILED, RunStatus.CANCELLED)


def kind_of(model: type) -> str:
    """The run type's short name in URLs and commands: GenerationRun -> "generation",
    ImportJob -> "import", DashboardRefresh -> "dashboard"."""
    return re.sub(r"(run|job|refresh)$", "", model.__name__.lower())


def run_models() -> list[Any]:
    """Every registered model that is a run (their tasks.py register them)."""
    if not _REGISTRY:
        from celery import current_app

        current_app.loader.import_default_modules()
    return [r.model for r in _REGISTRY if issubclass(r.model, RunBase)]


def model_for(kind: str) -> Any:
    """The run model of a `kind_of` name; LookupError if there is none."""
    for model in run_models():
        if kind_of(model) == kind:
            return model
    raise LookupError(f"no run type {kind!r} (one of: {', '.join(sorted(kind_of(m) for m in run_models()))})")


def retry(model: RunModel, run_id: int) -> bool:
    """Put a failed or cancelled run back in the queue (one conditional UPDATE) and queue
    its task. It keeps what it stored, so the task does only what is missing; the error and
    cancel flag go, and the crash-loop count starts again. False when not retryable."""
    fields: dict[str, Any] = {
        "status": RunStatus.QUEUED,
        "cancel_requested": False,
        "error": "",
        "worker": "",
        "heartbeat_at": None,
        "finished_at": None,
        "attempts_at_retry": F("attempts"),
    }
    if _has_field(model, "error_detail"):
        fields["error_detail"] = ""
    row = model.objects.filter(id=run_id).first()
    if row is None or not row.can_retry:  # e.g. an import whose uploaded file is gone
        return False
    rows = model.objects.filter(model.retry_where(), id=run_id, status__in=RETRYABLE)
    with transaction.atomic():
        if not rows.update(**fields):
            return False
        enqueue(model, run_id)  # on commit: the worker sees the queued row
    log.info("%s %s retried", model.__name__, run_id)
    return True


def set_archived(model: RunModel, run_id: int, archived: bool = True) -> bool:
    """Hide a finished run from the run lists (or show it again); never deletes. False when
    nothing changed (unknown, still active, or already so)."""
    rows = model.objects.filter(id=run_id).exclude(archived=archived)
    if archived:
        rows = rows.exclude(status__in=ACTIVE)
    return bool(rows.update(archived=archived))


def listed(queryset: models.QuerySet[_M], show_archived: bool) -> models.QuerySet[_M]:
    """A run list as its page shows it: archived runs only when asked for."""
    return queryset if show_archived else queryset.filter(archived=False)


def launch_once(model: RunModel, key: uuid.UUID | str | None, create: Callable[[], Any]) -> tuple[Any, bool]:
    """Create a run at most once per launch key (the launch form's hidden field): a second
    POST with the same key, even one racing the first, gets the first run. Returns
    (run, created). `create` runs in a transaction that is rolled back for the loser, with
    whatever it queued on commit."""
    if key is None:
        return create(), True
    existing = model.objects.filter(launch_key=key).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            run = create()
            # The unique index makes a racing twin wait here for our commit, then fail.
            model.objects.filter(id=run.id).update(launch_key=key)
    except IntegrityError:
        existing = model.objects.filter(launch_key=key).first()
        if existing is None:
            raise
        return existing, False
    run.launch_key = key
    return run, True
