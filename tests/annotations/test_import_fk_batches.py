"""Postgres import speed without giving up integrity: the steps' foreign key is checked once per
batch (triggers off only around their COPY), and no index duplicates a unique constraint's lead."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from annotations.actions import import_file
from annotations.models import Solution, Step
from tests.annotations.factories_files import processbench_row, write_json_array


def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the Postgres writer")


@pytest.mark.django_db
def test_it_turns_foreign_key_checks_back_on_after_the_steps_copy(tmp_path):
    _postgres_only()
    rows = [processbench_row(f"s{i}", label=i % 3 - 1, n_steps=3, problem=f"P{i % 7}?") for i in range(60)]
    result = import_file(write_json_array(tmp_path / "pb.json", rows, indent=None), batch_solutions=25)
    assert (result.n_solutions, result.n_steps) == (60, 180)
    # Every step points at a solution of its dataset, each solution has its steps 0..n-1.
    steps = Step.objects.filter(solution__dataset=result.dataset)
    assert steps.count() == 180
    assert set(steps.values_list("solution_id", flat=True)) == set(
        Solution.objects.filter(dataset=result.dataset).values_list("id", flat=True)
    )
    with connection.cursor() as cur:
        cur.execute("SHOW session_replication_role")
        assert cur.fetchone()[0] == "origin"
        # The foreign key is enforced again for whatever this transaction writes next.
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        with pytest.raises(IntegrityError), transaction.atomic():
            cur.execute(
                "INSERT INTO annotations_step (index, text, label, alternatives, solution_id) "
                "VALUES (0, 'x', 'correct', '[]', %s)",
                [Solution.objects.order_by("-id").values_list("id", flat=True)[0] + 10_000],
            )


@pytest.mark.django_db
def test_it_keeps_no_index_a_unique_constraint_already_leads_with():
    _postgres_only()
    with connection.cursor() as cur:
        cur.execute(
            """SELECT t.relname, array_agg(a.attname ORDER BY k.n)
               FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
               CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, n)
               JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
               WHERE t.relname IN ('annotations_step', 'annotations_solution', 'annotations_problem')
               GROUP BY i.indexrelid, t.relname"""
        )
        indexes = {(table, tuple(cols)) for table, cols in cur.fetchall()}
    assert ("annotations_step", ("solution_id", "index")) in indexes
    assert ("annotations_step", ("solution_id",)) not in indexes
    assert ("annotations_solution", ("dataset_id",)) not in indexes
    assert ("annotations_problem", ("dataset_id",)) not in indexes
    assert ("annotations_solution", ("problem_id",)) in indexes
