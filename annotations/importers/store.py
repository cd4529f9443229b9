"""The Django side of an import: batched writes of parsed solutions.

Postgres: ids for problems and solutions are taken from their sequences in one
query per batch, then problems, solutions and steps go in with COPY (psycopg 3),
which is what makes a million steps a matter of seconds. When the connection may set
`session_replication_role` (a superuser, as in the compose stack and the tests), the steps'
COPY runs with triggers off, so Postgres skips the per-row check of the deferred foreign key
step -> solution (about 45% of its time), and one query per batch checks those solutions
instead: they are rows this transaction has just written. A batch is copied by a
background thread while the next one is parsed, so the parser (this process) and
Postgres (its own process) work at the same time. SQLite: bulk_create, in line.
Either way the caller's transaction wraps every batch, so a failure anywhere
leaves nothing behind.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from typing import Any

from django.db import IntegrityError, connection
from django.db.models import Field, Model

from ..models import Dataset, ErrorType, Problem, Solution, Step
from ..taxonomy import ERROR_TYPES
from .base import ParsedSolution
from .errors import ImportValidationError

BATCH_SOLUTIONS = 5_000
BATCH_STEPS = 50_000
EMPTY_LIST_JSON = "[]"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Writer:
    """Buffers parsed solutions and writes them in batches; keeps the counts."""

    def __init__(self, dataset: Dataset, file_name: str, batch_solutions: int = BATCH_SOLUTIONS) -> None:
        self.dataset = dataset
        self.file = file_name
        self.batch_solutions = batch_solutions
        self.batch: list[ParsedSolution] = []
        self.batch_steps = 0
        # Problem.source_id → pk; grows with the number of distinct problems only.
        self.problems: dict[str, int] = {}
        self.n_solutions = 0
        self.n_steps = 0
        self.n_with_error = 0
        self.labels: Counter[str] = Counter()
        self._error_type_ids: dict[str, int] = {}

    def add(self, solution: ParsedSolution) -> None:
        self.batch.append(solution)
        n = len(solution.steps)
        self.batch_steps += n
        self.n_solutions += 1
        self.n_steps += n
        fei = solution.first_error_index
        if fei is not None and fei >= 0:
            self.n_with_error += 1
        labels = self.labels
        for step in solution.steps:
            labels[step.label] += 1
        if len(self.batch) >= self.batch_solutions or self.batch_steps >= BATCH_STEPS:
            self.flush()

    def finish(self) -> None:
        self.flush()

    def close(self) -> None:
        """Stop any background work (after an error elsewhere); idempotent."""

    def flush(self) -> None:
        if self.batch:
            self.write(self.batch)
        self.batch = []
        self.batch_steps = 0

    def write(self, batch: list[ParsedSolution]) -> None:
        raise NotImplementedError

    @property
    def n_problems(self) -> int:
        return len(self.problems)

    def counts(self) -> dict[str, Any]:
        return {
            "problems": self.n_problems,
            "solutions": self.n_solutions,
            "steps": self.n_steps,
            "with_error": self.n_with_error,
            "labels": {label: self.labels.get(label, 0) for label in Step.Label.values},
        }

    # -- helpers -------------------------------------------------------------
    def json(self, value: Any, solution: ParsedSolution, field: str) -> str:
        text = _dumps(value)
        if "\\u0000" in text:  # Postgres jsonb refuses NUL; refuse it on SQLite too, for one behaviour
            raise ImportValidationError(
                self.file,
                solution.location,
                field,
                "contains a NUL character, which the database cannot store",
            )
        return text

    def error_type_id(self, slug: str | None) -> int | None:
        if slug is None:
            return None
        pk = self._error_type_ids.get(slug)
        if pk is None:
            # The taxonomy is seeded by a migration; recreate a missing row from the same
            # source (e.g. after a test flush) rather than fail on a valid class.
            row = next((r for r in ERROR_TYPES if r["slug"] == slug), None)
            if row is None:  # pragma: no cover - parsers only emit taxonomy slugs
                raise ImportValidationError(self.file, "", "error_type", f"unknown error type {slug!r}")
            order = [r["slug"] for r in ERROR_TYPES].index(slug)
            pk = ErrorType.objects.get_or_create(slug=slug, defaults={**row, "order": order})[0].pk
            self._error_type_ids[slug] = pk
        return pk

    def new_problems(self, batch: list[ParsedSolution]) -> list[ParsedSolution]:
        """The first solution of each problem not stored yet (it supplies the problem's fields)."""
        seen: dict[str, ParsedSolution] = {}
        for s in batch:
            if s.problem_key not in self.problems and s.problem_key not in seen:
                seen[s.problem_key] = s
        return list(seen.values())


def _column(model: type[Model], name: str) -> str:
    field = model._meta.get_field(name)
    if not isinstance(field, Field) or not field.column:  # a reverse relation has no column
        raise ValueError(f"{model.__name__}.{name} is not a column")
    return field.column


def _columns(model: type[Model], names: list[str]) -> str:
    quote = connection.ops.quote_name
    return ", ".join(quote(_column(model, n)) for n in names)


class PostgresWriter(Writer):
    PROBLEM = ["id", "dataset", "source_id", "question", "reference_answer", "metadata"]
    SOLUTION = [
        "id", "uuid", "dataset", "problem", "source_id", "generator", "final_answer_correct",
        "first_error_index", "n_steps", "error_type", "metadata",
    ]  # fmt: skip
    STEP = ["solution", "index", "text", "label", "source_rating", "alternatives"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        quote = connection.ops.quote_name
        self.copy_problem = (
            f"COPY {quote(Problem._meta.db_table)} ({_columns(Problem, self.PROBLEM)}) FROM STDIN"
        )
        self.copy_solution = (
            f"COPY {quote(Solution._meta.db_table)} ({_columns(Solution, self.SOLUTION)}) FROM STDIN"
        )
        self.copy_step = f"COPY {quote(Step._meta.db_table)} ({_columns(Step, self.STEP)}) FROM STDIN"
        self._sequences: dict[type[Model], str] = {}
        # The background thread uses the psycopg connection of this one (same transaction);
        # Django's own connection objects are per thread. Nothing else touches the
        # connection while a batch is in flight: the caller only parses meanwhile.
        connection.ensure_connection()
        self.raw = connection.connection
        self._error_type_ids.update(ErrorType.objects.values_list("slug", "id"))
        with self.raw.cursor() as cur:
            cur.execute("SELECT current_setting('is_superuser') = 'on'")
            self.check_steps_per_batch = bool(cur.fetchone()[0])
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def flush(self) -> None:
        if not self.batch:
            return
        self._wait()
        for slug in {s.error_type for s in self.batch} - self._error_type_ids.keys():
            self.error_type_id(slug)  # a rare ORM query, here in the caller's thread
        self._thread = threading.Thread(target=self._write_in_background, args=(self.batch,), daemon=True)
        self._thread.start()
        self.batch = []
        self.batch_steps = 0

    def finish(self) -> None:
        self.flush()
        self._wait()

    def close(self) -> None:
        try:
            self._wait()
        except BaseException:  # the caller is already handling an error
            pass

    def _write_in_background(self, batch: list[ParsedSolution]) -> None:
        try:
            self.write(batch)
        except BaseException as exc:  # re-raised in the caller's thread by _wait()
            self._failure = exc

    def _wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def _ids(self, cursor: Any, model: type[Model], n: int) -> list[int]:
        if not n:
            return []
        seq = self._sequences.get(model)
        if seq is None:
            cursor.execute(
                "SELECT pg_get_serial_sequence(%s, %s)", [model._meta.db_table, model._meta.pk.column]
            )
            seq = self._sequences[model] = cursor.fetchone()[0]
        cursor.execute("SELECT nextval(%s) FROM generate_series(1, %s)", [seq, n])
        return [row[0] for row in cursor.fetchall()]

    def write(self, batch: list[ParsedSolution]) -> None:
        ds = self.dataset.pk
        with self.raw.cursor() as cur:
            new = self.new_problems(batch)
            rows = []
            for s, pk in zip(new, self._ids(cur, Problem, len(new)), strict=True):
                self.problems[s.problem_key] = pk
                meta = self.json(s.problem_metadata, s, "question") if s.problem_metadata else "{}"
                rows.append((pk, ds, s.problem_key, s.question, s.reference_answer, meta))
            if rows:
                with cur.copy(self.copy_problem) as copy:
                    for row in rows:
                        copy.write_row(row)

            problems = self.problems
            error_types = self._error_type_ids
            solution_ids = self._ids(cur, Solution, len(batch))
            with cur.copy(self.copy_solution) as copy:
                write = copy.write_row
                for s, pk in zip(batch, solution_ids, strict=True):
                    write((
                        pk, uuid.uuid4(), ds, problems[s.problem_key], s.source_id, s.generator,
                        s.final_answer_correct, s.first_error_index, len(s.steps),
                        error_types[s.error_type] if s.error_type else None,
                        self.json(s.metadata, s, "metadata") if s.metadata else "{}",
                    ))  # fmt: skip
            if self.check_steps_per_batch:
                # Undone by the end (or rollback) of the transaction if the COPY fails.
                cur.execute("SET LOCAL session_replication_role = replica")
            with cur.copy(self.copy_step) as copy:
                write = copy.write_row
                for s, pk in zip(batch, solution_ids, strict=True):
                    for i, step in enumerate(s.steps):
                        alts = step.alternatives
                        write((
                            pk, i, step.text, step.label, step.source_rating,
                            self.json(alts, s, f"steps[{i}].alternatives") if alts else EMPTY_LIST_JSON,
                        ))  # fmt: skip
            if self.check_steps_per_batch:
                cur.execute("SET LOCAL session_replication_role = origin")
                self._check_solutions(cur, solution_ids)

    def _check_solutions(self, cur: Any, solution_ids: list[int]) -> None:
        """The foreign key of this batch's steps, checked once for the batch."""
        solution = connection.ops.quote_name(Solution._meta.db_table)
        cur.execute(f"SELECT count(*) FROM {solution} WHERE id = ANY(%s)", [solution_ids])
        if cur.fetchone()[0] != len(set(solution_ids)):  # pragma: no cover - ids come from this batch
            raise IntegrityError("steps refer to solutions that are not in the database")


class SQLiteWriter(Writer):
    def write(self, batch: list[ParsedSolution]) -> None:
        ds = self.dataset
        new = self.new_problems(batch)
        for s in new:  # validate JSON the same way as on Postgres
            self.json(s.problem_metadata, s, "question")
        created = Problem.objects.bulk_create(
            Problem(dataset=ds, source_id=s.problem_key, question=s.question, reference_answer=s.reference_answer,
                    metadata=s.problem_metadata)
            for s in new
        )  # fmt: skip
        for s, problem in zip(new, created, strict=True):
            self.problems[s.problem_key] = problem.pk
        solutions = []
        for s in batch:
            self.json(s.metadata, s, "metadata")
            solutions.append(Solution(
                dataset=ds, problem_id=self.problems[s.problem_key], source_id=s.source_id, generator=s.generator,
                final_answer_correct=s.final_answer_correct, first_error_index=s.first_error_index,
                n_steps=len(s.steps), error_type_id=self.error_type_id(s.error_type), metadata=s.metadata,
            ))  # fmt: skip
        Solution.objects.bulk_create(solutions)
        steps = []
        for s, solution in zip(batch, solutions, strict=True):
            for i, step in enumerate(s.steps):
                if step.alternatives:
                    self.json(step.alternatives, s, f"steps[{i}].alternatives")
                steps.append(Step(
                    solution_id=solution.pk, index=i, text=step.text, label=step.label,
                    source_rating=step.source_rating, alternatives=step.alternatives or [],
                ))  # fmt: skip
        Step.objects.bulk_create(steps, batch_size=2_000)


def make_writer(dataset: Dataset, file_name: str, batch_solutions: int = BATCH_SOLUTIONS) -> Writer:
    cls = PostgresWriter if connection.vendor == "postgresql" else SQLiteWriter
    return cls(dataset, file_name, batch_solutions)
