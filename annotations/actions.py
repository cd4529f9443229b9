"""Dataset workflows: importing a file, as one transaction, with its job row.

`import_file` is the whole import: it parses the file as a stream and writes it in
ONE transaction, so a bad record anywhere leaves nothing behind. It is idempotent:
a file (sha256) already imported with the same format and options is reported as
"already imported" and nothing is written.

The upload page and the Celery task go through `create_import_job` and
`run_import_job`; the job row carries status, counts and live progress. Its writes are
fenced like every run's (`rprm_web.runs`): the outcome goes through `runs.finish`, and a
worker that lost the job to another one writes nothing and rolls its import back.

Live progress on Postgres: the import transaction must not hide progress, so
`bytes_done` is written through a second, autocommit connection (with a short
lock timeout, so it can never wait on the import). On SQLite a second writer would
wait for the import's write lock, so progress is only written at the end there.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, User
from django.db import DatabaseError, IntegrityError, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from rprm_web import runs

from .importers import detect_format, parser_class
from .importers.base import OPTION_DEFAULTS, Parser, normalize_options
from .importers.errors import ImportValidationError
from .importers.limits import Limits
from .importers.readers import MultiReader, RecordReader, describe_files
from .importers.store import BATCH_SOLUTIONS, Writer, make_writer
from .models import Dataset, ImportJob

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, int], None]  # (bytes_done, file_size, solutions so far)
PROGRESS_EVERY_S = 0.5
MAX_WARNINGS_IN_COUNTS = 10
NAME_SUFFIXES = (".gz", ".zst", ".jsonl", ".json", ".ndjson", ".parquet")


def import_limits() -> Limits:
    """The readers' limits, from settings (IMPORT_MAX_*, env-driven)."""
    return Limits(
        max_record_bytes=settings.IMPORT_MAX_RECORD_BYTES,
        max_decompressed_bytes=settings.IMPORT_MAX_DECOMPRESSED_BYTES,
        max_ratio=settings.IMPORT_MAX_DECOMPRESSION_RATIO,
        ratio_floor_bytes=settings.IMPORT_RATIO_FLOOR_BYTES,
        max_depth=settings.IMPORT_MAX_DEPTH,
        max_int_digits=settings.IMPORT_MAX_INT_DIGITS,
    )


Source = tuple[Path, str]  # a file on disk and the name people know it by (an upload's own name)


def job_sources(job: ImportJob) -> list[Source]:
    """The files of a job: several (`files`) or its one `file_path`."""
    if job.files:
        return [(Path(f["path"]), f["name"]) for f in job.files]
    return [(Path(job.file_path), job.file_name or Path(job.file_path).name)] if job.file_path else []


def as_sources(paths: str | Path | list[Source] | list[str] | list[Path]) -> list[Source]:
    if isinstance(paths, str | Path):
        return [(Path(paths), Path(paths).name)]
    return [p if isinstance(p, tuple) else (Path(p), Path(p).name) for p in paths]


def sources_sha256(sources: list[Source]) -> str:
    """One file: its sha256. Several: the sha256 of their sorted sha256s, so the same files
    in any order are the same import (idempotent)."""
    digests = [file_sha256(path) for path, _ in sources]
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256("\n".join(["files", *sorted(digests)]).encode()).hexdigest()


NAME_SEPARATORS = "-_. "


def default_name_of(names: list[str]) -> str:
    """A dataset name for files: the file's own, or the whole words several names share
    (`prmbench_circular`, `prmbench_confidence`: `prmbench`), else the first one's."""
    stems = [default_dataset_name(n) for n in names]
    common = os.path.commonprefix(stems)
    if any(len(s) > len(common) and s[len(common)] not in NAME_SEPARATORS for s in stems):
        common = common[: max(common.rfind(c) for c in NAME_SEPARATORS) + 1]  # back to a word boundary
    common = common.rstrip(NAME_SEPARATORS)
    return common if len(stems) > 1 and len(common) >= 2 else stems[0]


@dataclass
class ImportResult:
    job: ImportJob
    dataset: Dataset
    format: str
    already_imported: bool
    counts: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_problems(self) -> int:
        return self.counts.get("problems", 0)

    @property
    def n_solutions(self) -> int:
        return self.counts.get("solutions", 0)

    @property
    def n_steps(self) -> int:
        return self.counts.get("steps", 0)

    @property
    def n_with_error(self) -> int:
        return self.counts.get("with_error", 0)

    def summary(self) -> str:
        if self.already_imported:
            return f"already imported: {self.job.file_name} ({self.format}) is dataset '{self.dataset.name}'; nothing written"
        return (
            f"imported {self.dataset.name} ({self.format}): {self.n_problems:,} problems, "
            f"{self.n_solutions:,} solutions, {self.n_steps:,} steps ({self.n_with_error:,} with an error) "
            f"in {self.seconds:.1f} s"
        )


def default_dataset_name(path: str | Path) -> str:
    name = Path(path).name
    while name.lower().endswith(NAME_SUFFIXES):
        name = name[: name.rfind(".")]
    return name


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_options(fmt: str | None, options: dict[str, Any] | None, file_name: str) -> dict[str, Any]:
    """Options validated early (before the format is known, every option is checked)."""
    if fmt:
        return parser_class(fmt, file_name).normalize_options(options, file_name)
    normalize_options(options, tuple(OPTION_DEFAULTS), file_name)
    return {k: v for k, v in (options or {}).items() if v not in (None, "")}


def create_import_job(
    path: str | Path | list[Source],
    dataset_name: str | None = None,
    fmt: str | None = None,
    options: dict[str, Any] | None = None,
    user: AbstractBaseUser | None = None,
    *,
    split: str = "",
    file_name: str | None = None,
) -> ImportJob:
    """A queued job for a file already on disk (e.g. an upload saved under MEDIA_ROOT), or
    for several `(path, name)` files imported together as one dataset.

    Bad format names and options raise ImportValidationError here, so a form can show them;
    problems inside the file are found by the job. `file_name` is the name people know the
    file by (the upload's original name) and is used in error messages.
    """
    sources = as_sources(path) if file_name is None else [(Path(path), file_name)]  # type: ignore[arg-type]
    path = sources[0][0]
    file_name = describe_files([name for _, name in sources])
    checked = _check_options(fmt, options, file_name)
    if split:
        # No split column on ImportJob: carried in options and popped before the import
        # (it describes the dataset, it is not part of the idempotency key).
        checked["split"] = split
    return ImportJob.objects.create(
        dataset_name=dataset_name or default_name_of([name for _, name in sources]),
        file_path=str(path),
        file_name=file_name,
        files=[{"path": str(p), "name": n} for p, n in sources] if len(sources) > 1 else [],
        file_size=sum(p.stat().st_size for p, _ in sources if p.is_file()),
        requested_format=fmt or "",
        options=checked,
        created_by=_creator(user),
    )


def run_import_job(job_id: int) -> ImportResult | None:
    """Run a queued job through the run lifecycle (`runs.execute`); safe to call twice (a
    task delivered twice does nothing more).

    On Postgres the runner also holds a session advisory lock on the job while it works, so
    a job left `running` by a worker that died (its transaction rolled back, its lock
    released with its connection) is claimed again by the redelivered task instead of
    staying stuck. A lost database connection rolls the import back and runs it again on a
    new one (the lifecycle's retry). A bad file leaves the job `failed` with the error and
    returns None, as does any other failure (recorded on the job).
    """
    outcome: list[ImportResult] = []

    def body(job: ImportJob) -> None:
        # Taken again on every try: the lock went with a connection that was lost.
        with _job_lock(job.id) as locked:
            if not locked:
                raise runs.LeaseLost(f"import job {job.id} is locked by another worker")
            options = dict(job.options)
            split = options.pop("split", "")
            try:
                outcome.append(
                    import_file(
                        job_sources(job),
                        dataset_name=job.dataset_name,
                        fmt=job.requested_format or None,
                        options=options,
                        user=job.created_by,
                        split=split,
                        job=job,
                    )
                )
            except ImportValidationError:
                pass  # recorded on the job: failed for good, the task returns (no redelivery)

    with _job_lock(job_id) as locked:
        if not locked:
            log.info("import job %s is being run by another worker; nothing to do", job_id)
            return None
        # Running but unlocked on Postgres: its runner died. Elsewhere (SQLite) a dead
        # runner is known by its stale heartbeat or by its own restarted worker name.
        job = runs.execute(
            ImportJob,
            job_id,
            body,
            select_related=("created_by",),
            holder_dead=connection.vendor == "postgresql",
            claim_fields={"bytes_done": 0},
        )
    if (
        job is not None
        and ImportJob.objects.filter(id=job_id).exclude(status=ImportJob.Status.RUNNING).exists()
    ):
        job.discard_inputs()  # ended one way or another (a crash never gets here)
    return outcome[0] if outcome else None


JOB_LOCK_NAMESPACE = 0x5250524D  # "RPRM": first key of the two-key advisory lock


@contextmanager
def _job_lock(job_id: int) -> Iterator[bool]:
    """A session advisory lock on the job (Postgres); always granted on SQLite."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s, %s)", [JOB_LOCK_NAMESPACE, job_id])
        locked = cur.fetchone()[0]
    try:
        yield locked
    finally:
        if locked:
            try:
                with connection.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s, %s)", [JOB_LOCK_NAMESPACE, job_id])
            except DatabaseError:  # the connection was lost, and the lock with it
                log.warning("import job %s: advisory lock not released (connection lost)", job_id)


def import_file(
    path: str | Path | list[Source] | list[str] | list[Path],
    *,
    dataset_name: str | None = None,
    fmt: str | None = None,
    options: dict[str, Any] | None = None,
    user: AbstractBaseUser | None = None,
    split: str = "",
    job: ImportJob | None = None,
    progress: ProgressCallback | None = None,
    batch_solutions: int = BATCH_SOLUTIONS,
) -> ImportResult:
    """Import one file, or several files (`[(path, name), ...]` or paths) of one format, as
    one dataset, in one transaction. Raises ImportValidationError (file, line/record,
    field) on bad input, with nothing written but the failed job. Idempotent: the same
    file, or the same set of files in any order, with the same options, is imported once.

    `job`, when given, is one this worker holds (`runs.claim`): every write to it is
    fenced, and `runs.LeaseLost` (everything rolled back) when another worker took it."""
    started = time.monotonic()
    sources = as_sources(path)
    if len(sources) == 1 and job is not None and job.file_name:
        sources = [(sources[0][0], job.file_name)]
    file_name = describe_files([name for _, name in sources])
    dataset_name = (
        dataset_name
        or (job.dataset_name if job is not None else "")
        or default_name_of([name for _, name in sources])
    )
    job = job or _running_job(sources, dataset_name, fmt, options, user)
    try:
        limits = import_limits()
        readers = [RecordReader(p, name, limits) for p, name in sources]
        reader: RecordReader | MultiReader = readers[0] if len(readers) == 1 else MultiReader(readers)
        fmt = fmt or _detect_one_format(sources, limits)
        parser = parser_class(fmt, file_name)(file_name, options)
        for value, limit, what in ((dataset_name, 200, "dataset name"), (split, 50, "split")):
            if len(value) > limit:
                raise ImportValidationError(file_name, "options", what, f"longer than {limit} characters")
        job.file_size = reader.size
        job.file_sha256 = sources_sha256(sources)
        job.detected_format = fmt
        job.options = parser.options
        job.dataset_name = dataset_name
        job.status = ImportJob.Status.RUNNING
        job.started_at = job.started_at or timezone.now()
        runs.progress(
            job,
            file_size=job.file_size,
            file_sha256=job.file_sha256,
            detected_format=fmt,
            options=job.options,
            dataset_name=dataset_name,
            started_at=job.started_at,
        )
        # Live progress needs the job row committed and unlocked: only when this import
        # owns its transaction (not inside a caller's atomic block, e.g. a test case).
        live_db = connection.vendor == "postgresql" and not connection.in_atomic_block
        with transaction.atomic():
            return _import(
                job, reader, parser, dataset_name, split, user, progress, live_db, batch_solutions, started
            )
    except Exception as exc:
        _fail(job, exc)
        raise


def _running_job(
    sources: list[Source],
    dataset_name: str,
    fmt: str | None,
    options: dict[str, Any] | None,
    user: AbstractBaseUser | None,
) -> ImportJob:
    """The job row of an import run in this process (no queue, no claim)."""
    return ImportJob.objects.create(
        dataset_name=dataset_name,
        file_path=str(sources[0][0]),
        file_name=describe_files([name for _, name in sources]),
        files=[{"path": str(p), "name": n} for p, n in sources] if len(sources) > 1 else [],
        requested_format=fmt or "",
        options=options or {},
        status=ImportJob.Status.RUNNING,
        started_at=timezone.now(),
        created_by=_creator(user),
    )


def _detect_one_format(sources: list[Source], limits: Limits) -> str:
    """Several files make one dataset of one format: each is detected, and must agree."""
    first = detect_format(sources[0][0], sources[0][1], limits)
    for path, name in sources[1:]:
        other = detect_format(path, name, limits)
        if other != first:
            raise ImportValidationError(
                name, "", None, f"is {other}, but {sources[0][1]} is {first}: one dataset holds one format"
            )
    return first


def _import(
    job: ImportJob,
    reader: RecordReader | MultiReader,
    parser: Parser,
    dataset_name: str,
    split: str,
    user: AbstractBaseUser | None,
    progress: ProgressCallback | None,
    live_db: bool,
    batch_solutions: int,
    started: float,
) -> ImportResult:
    fmt = parser.fmt
    _lock_file(job)
    previous = _previous_import(job, fmt, parser.options)
    if previous is not None:
        assert previous.dataset is not None  # a succeeded import keeps its dataset
        _finish(job, ImportJob.Status.DUPLICATE, dataset=previous.dataset, counts=previous.counts)
        return ImportResult(
            job, previous.dataset, fmt, True, dict(previous.counts), seconds=time.monotonic() - started
        )
    dataset = _create_dataset(reader.name, parser, dataset_name, split, user)
    writer = make_writer(dataset, reader.name, batch_solutions)
    live = _LiveProgress(job, reader, progress, live_db)
    try:
        with reader:
            for part in reader.parts():
                # Errors name the file they are in; ids stay unique over all the files.
                parser.file = writer.file = part.name
                with part:
                    for solution in parser.parse(part):
                        writer.add(solution)
                        live.tick(writer.n_solutions, writer.n_steps)
        writer.finish()
    finally:
        writer.close()  # a batch may still be in flight when the parser fails
        live.close()
    if writer.n_solutions == 0:
        raise ImportValidationError(reader.name, "", None, "the file holds no solutions")
    counts = _store_counts(dataset, writer, parser)
    _finish(job, ImportJob.Status.SUCCEEDED, dataset=dataset, counts=counts)
    return ImportResult(job, dataset, fmt, False, counts, list(parser.warnings), time.monotonic() - started)


def _creator(user: AbstractBaseUser | None) -> User | None:
    """The user recorded as a job's or dataset's creator: None for none or an anonymous one."""
    return user if isinstance(user, User) and user.is_authenticated else None


def _lock_file(job: ImportJob) -> None:
    """On Postgres, serialise imports of the same file, so the idempotency check is race-free."""
    if connection.vendor == "postgresql":
        key = int.from_bytes(bytes.fromhex(job.file_sha256[:16]), "big", signed=True)
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def _create_dataset(
    file_name: str, parser: Parser, dataset_name: str, split: str, user: AbstractBaseUser | None
) -> Dataset:
    """The import's new dataset; ImportValidationError when the name is taken."""
    if Dataset.objects.filter(name=dataset_name).exists():
        raise ImportValidationError(
            file_name,
            "options",
            "dataset name",
            f"a dataset named {dataset_name!r} already exists; choose another name",
        )
    try:
        # A savepoint: two imports racing for one name meet at the unique index, and the
        # loser gets a message instead of a raw IntegrityError.
        with transaction.atomic():
            return Dataset.objects.create(
                name=dataset_name,
                source_format=parser.fmt,
                split=split,
                description=f"Imported from {file_name}",
                import_options=parser.options,
                created_by=_creator(user),
            )
    except IntegrityError:
        raise ImportValidationError(
            file_name,
            "options",
            "dataset name",
            f"a dataset named {dataset_name!r} was created by another import meanwhile; choose another name",
        ) from None


def _store_counts(dataset: Dataset, writer: Writer, parser: Parser) -> dict[str, Any]:
    """Save the dataset's counts (counted while writing: the same numbers as
    Dataset.refresh_stats() without rescanning); the job's counts, warnings included."""
    counts = writer.counts()
    dataset.n_problems, dataset.n_solutions, dataset.n_steps = (
        writer.n_problems,
        writer.n_solutions,
        writer.n_steps,
    )
    dataset.n_with_error, dataset.label_counts = writer.n_with_error, counts["labels"]
    dataset.save(update_fields=["n_problems", "n_solutions", "n_steps", "n_with_error", "label_counts"])
    counts["warnings"] = parser.n_warnings
    if parser.warnings:
        counts["warning_samples"] = parser.warnings[:MAX_WARNINGS_IN_COUNTS]
    return counts


def _previous_import(job: ImportJob, fmt: str, options: dict[str, Any]) -> ImportJob | None:
    candidates = (
        ImportJob.objects.filter(
            file_sha256=job.file_sha256, detected_format=fmt, status=ImportJob.Status.SUCCEEDED
        )
        .exclude(id=job.id)
        .select_related("dataset")
        .order_by("created_at")
    )
    # Options compared in Python: JSON equality in SQL differs between backends.
    return next((c for c in candidates if c.options == options and c.dataset is not None), None)


def _finish(job: ImportJob, status: str, *, dataset: Dataset, counts: dict[str, Any]) -> None:
    """The outcome, inside the import's transaction: a lost job raises, so its import rolls back."""
    if not runs.finish(job, status, dataset=dataset, counts=counts, bytes_done=job.file_size):
        raise runs.LeaseLost(f"import job {job.id} was taken over; its {status} was not written")


def _fail(job: ImportJob, exc: BaseException) -> None:
    if isinstance(exc, runs.TRANSIENT_ERRORS) and job.worker:
        return  # a lost connection: the lifecycle runs the import again (runs.execute)
    message = str(exc) if isinstance(exc, ImportValidationError) else f"{type(exc).__name__}: {exc}"
    try:
        runs.finish(job, ImportJob.Status.FAILED, error=message[:10_000])  # nothing when lost
    except DatabaseError:  # the database itself may be what failed
        log.exception("could not mark import job %s failed", job.id)
        job.status, job.error = ImportJob.Status.FAILED, message


class _LiveProgress:
    """Writes bytes_done and running counts at most every PROGRESS_EVERY_S."""

    def __init__(
        self,
        job: ImportJob,
        reader: RecordReader | MultiReader,
        callback: ProgressCallback | None,
        live_db: bool,
    ) -> None:
        self.job_id, self.worker, self.attempts = job.pk, job.worker, job.attempts
        self.reader = reader
        self.callback = callback
        self.last = time.monotonic()
        self.sql = (
            f"UPDATE {connection.ops.quote_name(ImportJob._meta.db_table)} "
            "SET bytes_done = %s, counts = %s WHERE id = %s AND status = 'running' AND worker = %s AND attempts = %s"
        )
        self.conn: BaseDatabaseWrapper | None = None
        if live_db:
            # A second connection, autocommit: its updates are visible while the import's
            # transaction is open. The lock timeout means it can never wait on the import.
            self.conn = connections.create_connection(connection.alias)
            try:
                with self.conn.cursor() as cur:
                    cur.execute("SET lock_timeout = '1s'")
            except DatabaseError:
                log.warning("live progress for import job %s disabled", self.job_id, exc_info=True)
                self.close()

    def tick(self, n_solutions: int, n_steps: int) -> None:
        if n_solutions & 255:
            return
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY_S:
            return
        self.last = now
        done = self.reader.bytes_done
        if self.conn is not None:
            self._write(done, n_solutions, n_steps)
        if self.callback is not None:
            self.callback(done, self.reader.size, n_solutions)

    def _write(self, done: int, n_solutions: int, n_steps: int) -> None:
        conn = self.conn
        assert conn is not None  # tick writes only while it has its connection
        try:
            with conn.cursor() as cur:
                cur.execute(
                    self.sql,
                    [
                        done,
                        f'{{"solutions": {n_solutions}, "steps": {n_steps}}}',
                        self.job_id,
                        self.worker,
                        self.attempts,
                    ],
                )
        except DatabaseError:
            log.warning("live progress for import job %s disabled", self.job_id, exc_info=True)
            self.close()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
