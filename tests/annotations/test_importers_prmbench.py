"""PRMBench: modified_process labelled by 1-based error_steps, classification → ErrorType."""

from __future__ import annotations

import pytest

from annotations.actions import import_file
from annotations.importers import ImportValidationError, parse_file
from annotations.models import Dataset, Problem, Solution
from tests.annotations.factories_files import prmbench_row, row_counts, write_jsonl, write_prmbench


def test_it_labels_error_steps_incorrect_and_the_rest_correct(tmp_path):
    confidence, redundancy, multi = parse_file(write_prmbench(tmp_path / "prmbench.jsonl"))
    assert [s.label for s in confidence.steps] == ["correct", "incorrect", "incorrect", "correct"]
    assert confidence.first_error_index == 1
    assert confidence.steps[1].text == "prm_test_p1_0 step 2. (modified)"
    assert redundancy.first_error_index == 3
    assert multi.first_error_index == -1 and {s.label for s in multi.steps} == {"correct"}
    assert (confidence.error_type, multi.error_type) == ("confidence", "multi_solutions")
    # idx repeats across classes: the solution id is idx/classification.
    assert [s.source_id for s in (confidence, redundancy, multi)] == [
        "prm_test_p1_0/confidence", "prm_test_p1_0/redundency", "prm_test_p1_2/multi_solutions",
    ]  # fmt: skip


@pytest.mark.django_db
def test_it_maps_the_class_to_the_seeded_error_type_and_keeps_the_rest(tmp_path):
    result = import_file(write_prmbench(tmp_path / "prmbench.jsonl"))
    ds = result.dataset
    assert (ds.source_format, ds.n_problems, ds.n_solutions, ds.n_steps, ds.n_with_error) == (
        "prmbench",
        2,
        3,
        12,
        2,
    )
    sol = Solution.objects.select_related("error_type").get(dataset=ds, source_id="prm_test_p1_0/redundency")
    assert (sol.error_type.slug, sol.error_type.dimension) == ("redundency", "simplicity")
    assert sol.metadata["original_process"][3] == "prm_test_p1_0 step 4."
    assert sol.metadata["reason"].startswith("Steps 2 and 3")
    assert sol.metadata["idx"] == "prm_test_p1_0" and sol.metadata["error_steps"] == [4]
    assert {"original_question", "modified_question", "modified_steps"} <= sol.metadata.keys()
    assert Problem.objects.get(dataset=ds, solutions=sol).question == "Compute $58_9 - 18_9$."


def test_it_falls_back_to_modified_question(tmp_path):
    row = prmbench_row("p", question="Q?")
    del row["question"]
    row["modified_question"] = "Modified Q?"
    (solution,) = parse_file(write_jsonl(tmp_path / "prmbench.jsonl", [row]))
    assert solution.question == "Modified Q?"


def test_it_warns_about_error_steps_past_the_end(tmp_path):
    from annotations.importers import open_source

    reader, parser = open_source(
        write_jsonl(tmp_path / "prmbench.jsonl", [prmbench_row("p", error_steps=[4, 6])])
    )
    (solution,) = parser.parse(reader)
    assert [s.label for s in solution.steps] == ["correct", "correct", "correct", "incorrect"]
    assert solution.metadata["error_steps"] == [4, 6]
    assert parser.warnings == [
        "prmbench.jsonl: line 1: field 'error_steps': step(s) [6] past the last step (4) of modified_process; not labelled"
    ]


@pytest.mark.django_db
def test_it_reports_warnings_in_the_job_counts(tmp_path):
    result = import_file(write_jsonl(tmp_path / "prmbench.jsonl", [prmbench_row("p", error_steps=[9])]))
    assert result.job.counts["warnings"] == 1 and len(result.warnings) == 1
    assert "past the last step" in result.job.counts["warning_samples"][0]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            {"classification": "typo"},
            "classification",
            "expected one of redundency, circular, counterfactual",
        ),
        ({"classification": None}, "classification", "expected one of"),
        ({"error_steps": [0]}, "error_steps", "expected a list of 1-based step numbers, got [0]"),
        ({"error_steps": "2"}, "error_steps", "expected a list of 1-based step numbers, got '2'"),
        ({"modified_process": []}, "modified_process", "expected at least 1 item(s), got none"),
        ({"idx": None}, "idx", "expected a non-empty string or integer id, got null None"),
    ],
)
@pytest.mark.django_db
def test_it_rejects_bad_items_naming_line_and_field_and_writes_nothing(tmp_path, change, field, message):
    path = write_jsonl(
        tmp_path / "prmbench.jsonl", [prmbench_row("a"), prmbench_row("b"), prmbench_row("c") | change]
    )
    before = row_counts()
    with pytest.raises(ImportValidationError) as exc:
        import_file(path)
    assert str(exc.value).startswith(f"prmbench.jsonl: line 3: field '{field}': {message}")
    assert row_counts() == before and not Dataset.objects.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_it_recreates_a_missing_seeded_error_type(tmp_path):
    from annotations.models import ErrorType

    ErrorType.objects.filter(slug="deception").delete()
    result = import_file(write_jsonl(tmp_path / "prmbench.jsonl", [prmbench_row("a", "deception")]))
    assert Solution.objects.get(dataset=result.dataset).error_type.name == "Deception"
