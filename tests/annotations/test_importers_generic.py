"""The generic JSONL format of docs/formats.md."""

from __future__ import annotations

import pytest

from annotations.actions import import_file
from annotations.importers import parse_file
from annotations.importers.errors import ImportValidationError
from annotations.models import Solution
from tests.annotations.factories_files import generic_row, row_counts, write_generic, write_jsonl


def test_it_reads_labels_as_ratings(tmp_path):
    rows = [generic_row("a", [1, True, 0]), generic_row("b", [1, -1, None]), generic_row("c", [False, None, None]),
            generic_row("d")]  # fmt: skip
    a, b, c, d = parse_file(write_jsonl(tmp_path / "g.jsonl", rows))
    assert [s.label for s in a.steps] == ["correct", "correct", "correct"] and a.first_error_index == -1
    assert [s.source_rating for s in a.steps] == [1, 1, 0]
    assert [s.label for s in b.steps] == ["correct", "incorrect", "unlabelled"] and b.first_error_index == 1
    assert c.first_error_index == 0
    assert {s.label for s in d.steps} == {"unlabelled"} and d.first_error_index is None
    assert (a.reference_answer, a.generator) == ("2.5", "my-model")


@pytest.mark.django_db
def test_it_imports_with_metadata_and_records_rating0(tmp_path):
    path = write_jsonl(tmp_path / "mine.jsonl", [generic_row("a", [1, 0, 1], metadata={"source": "lab"},
                                                               final_answer_correct=True)])  # fmt: skip
    result = import_file(path, options={"rating0": "neutral"})
    assert result.format == "generic" and result.dataset.import_options == {"rating0": "neutral"}
    sol = Solution.objects.get(dataset=result.dataset)
    assert (
        sol.metadata == {"source": "lab"} and sol.final_answer_correct is True and sol.generator == "my-model"
    )
    assert list(sol.steps.values_list("label", flat=True)) == ["correct", "neutral", "correct"]
    assert sol.first_error_index == -1
    assert sol.problem.reference_answer == "2.5"


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        (generic_row("x", [1, 1]), "labels", "expected a list of 3 labels (one per step), got [1, 1]"),
        (generic_row("x", [1, 2, 1]), "labels[1]", "expected 1, 0, -1, true, false or null, got 2"),
        (generic_row("x", [1, "yes", 1]), "labels[1]", "expected 1, 0, -1, true, false or null, got 'yes'"),
        (
            generic_row("x") | {"label": [1, 1, 1]},
            "label",
            "unknown field (allowed: id, question, steps, labels",
        ),
        (generic_row("x") | {"metadata": []}, "metadata", "expected an object, got []"),
        (generic_row("x") | {"question": 3}, "question", "expected a string, got a number 3"),
        (generic_row("x") | {"generator": "g" * 201}, "generator", "longer than 200 characters"),
        (generic_row("x" * 201), "id", "longer than 200 characters"),
    ],
)
@pytest.mark.django_db
def test_it_rejects_bad_rows_naming_line_and_field_and_writes_nothing(tmp_path, row, field, message):
    path = write_jsonl(tmp_path / "g.jsonl", [generic_row("ok"), row])
    before = row_counts()
    with pytest.raises(ImportValidationError) as exc:
        import_file(path, fmt="generic")
    assert str(exc.value).startswith(f"g.jsonl: line 2: field '{field}': {message}")
    assert row_counts() == before


@pytest.mark.django_db
def test_it_rejects_nul_characters_in_metadata_on_every_database(tmp_path):
    path = write_jsonl(tmp_path / "g.jsonl", [generic_row("a", metadata={"note": "a\x00b"})])
    with pytest.raises(
        ImportValidationError, match=r"g.jsonl: line 1: field 'metadata': contains a NUL character"
    ):
        import_file(path)


def test_it_keeps_the_column_limits_of_the_models():
    from annotations.importers import base
    from annotations.models import Solution

    assert Solution._meta.get_field("source_id").max_length == base.MAX_SOURCE_ID
    assert Solution._meta.get_field("generator").max_length == base.MAX_GENERATOR


def test_it_writes_the_default_file(tmp_path):
    assert [s.source_id for s in parse_file(write_generic(tmp_path / "g.jsonl"))] == ["g-0", "g-1", "g-2"]
