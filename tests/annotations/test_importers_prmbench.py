"""PRMBench: modified_process labelled by 1-based error_steps, classification → ErrorType."""

from __future__ import annotations

import pytest

from annotations.actions import import_file
from annotations.importers import parse_file
from annotations.importers.errors import ImportValidationError
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
    assert {"original_question", "question", "modified_steps"} <= sol.metadata.keys()
    assert Problem.objects.get(dataset=ds, solutions=sol).question == "Compute $58_9 - 18_9$."


def test_it_uses_modified_question_as_the_official_loader_does(tmp_path):
    # A missing_condition perturbation changes the question itself.
    row = prmbench_row("p", "missing_condition", question="Q with a condition?")
    row["modified_question"] = "Q without it?"
    same = prmbench_row("p", "confidence", question="Q with a condition?")
    perturbed, plain = parse_file(write_jsonl(tmp_path / "prmbench.jsonl", [row, same]))
    assert perturbed.question == "Q without it?" and plain.question == "Q with a condition?"
    assert perturbed.problem_key != plain.problem_key  # a perturbed question is its own problem
    assert perturbed.metadata["original_question"] == "Q with a condition?"
    del row["modified_question"]
    (fallback,) = parse_file(write_jsonl(tmp_path / "old.jsonl", [row]))
    assert fallback.question == "Q with a condition?"


@pytest.mark.django_db
def test_a_file_imported_by_the_old_importer_imports_again(tmp_path):
    from annotations.models import ImportJob

    path = write_prmbench(tmp_path / "prmbench.jsonl")
    first = import_file(path, dataset_name="pb-v1")
    # As the version-1 importer recorded it: no importer_version in the options.
    ImportJob.objects.filter(id=first.job.id).update(options={})
    again = import_file(path, dataset_name="pb-v2")
    assert not again.already_imported and again.dataset.name == "pb-v2"
    assert again.dataset.import_options["importer_version"] == 2
    assert import_file(path, dataset_name="pb-v3").already_imported  # the same importer: skipped


@pytest.mark.django_db
def test_the_solution_page_shows_the_original_question_when_it_differs(tmp_path, client, reviewer):
    row = prmbench_row("p", "counterfactual", question="Original Q?")
    row["modified_question"] = "Modified Q?"
    ds = import_file(write_jsonl(tmp_path / "prmbench.jsonl", [row, prmbench_row("q")])).dataset
    client.force_login(reviewer)
    perturbed = Solution.objects.get(dataset=ds, source_id="p/counterfactual")
    html = client.get(f"/solutions/{perturbed.uuid}/").content.decode()
    assert "Modified Q?" in html and 'id="original-question"' in html and "Original Q?" in html
    plain = Solution.objects.get(dataset=ds, source_id="q/confidence")
    assert 'id="original-question"' not in client.get(f"/solutions/{plain.uuid}/").content.decode()


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
