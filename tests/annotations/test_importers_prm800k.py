"""PRM800K: trajectories from chosen/human completions, raw ratings, recorded rating-0 mapping."""

from __future__ import annotations

import pytest

from annotations.actions import import_file
from annotations.importers import parse_file
from annotations.importers.errors import ImportValidationError
from annotations.models import Dataset, Problem, Solution, Step
from tests.annotations.factories_files import (
    completion,
    prm800k_row,
    prm_step,
    row_counts,
    write_jsonl,
    write_prm800k,
)


def test_it_builds_the_trajectory_and_ends_on_the_first_minus_one_completion(tmp_path):
    first, second = parse_file(write_prm800k(tmp_path / "prm.jsonl"))
    assert [s.text for s in first.steps] == [
        "Factor 12 = 2^2 * 3.",
        "Factor 18 = 2 * 3^2.",
        "So the GCF is 3.",
    ]
    assert [s.source_rating for s in first.steps] == [1, 0, -1]
    assert [s.label for s in first.steps] == [
        "correct",
        "correct",
        "incorrect",
    ]  # rating 0 → correct by default
    assert first.first_error_index == 2
    # The other completions of the final step are its labelled alternatives.
    assert first.steps[2].alternatives == [
        {"text": "So the GCF is 6.", "rating": 1, "label": "correct", "flagged": None},
        {"text": "Hmm.", "rating": 0, "label": "correct", "flagged": None},
    ]
    assert first.steps[0].alternatives is None
    assert first.source_id == "labeler-1/2023-01-22T04:34:27.052924/9"
    assert first.reference_answer == "6"
    assert first.final_answer_correct is None
    assert first.problem_metadata == {"ground_truth_solution": "12 = 2^2 3 and 18 = 2 3^2, so the GCF is 6."}
    assert first.metadata["finish_reason"] == "found_error" and first.metadata["total_time"] == 278270
    assert first.metadata["pre_generated_answer"] == "3" and first.metadata["labeler"] == "labeler-1"
    assert first.metadata["is_quality_control_question"] is False


def test_it_uses_the_human_completion_when_none_is_chosen(tmp_path):
    _, second = parse_file(write_prm800k(tmp_path / "prm.jsonl"))
    assert [s.text for s in second.steps] == ["Factor 12.", "Factor 18.", "The GCF is 6."]
    human = second.steps[1]
    assert (human.label, human.source_rating) == ("unlabelled", None)  # its rating is null: not invented
    assert human.alternatives == [{"text": "Wrong.", "rating": -1, "label": "incorrect", "flagged": None}]
    assert second.metadata["human_steps"] == [1]
    assert second.first_error_index is None  # an unlabelled step and no error
    assert second.final_answer_correct is True  # finish_reason "solution"


def test_it_accepts_a_human_completion_given_as_a_string(tmp_path):
    row = prm800k_row([prm_step([completion("No.", -1)], chosen=None, human="Yes.")])
    (solution,) = parse_file(write_jsonl(tmp_path / "prm.jsonl", [row]))
    assert solution.steps[0].text == "Yes." and solution.steps[0].label == "unlabelled"


def test_it_ends_the_trajectory_before_a_last_step_without_choice_or_error(tmp_path):
    row = prm800k_row(
        [prm_step([completion("A.", 1)]), prm_step([completion("B?", 0), completion("C?", 0)], chosen=None)],
        finish_reason="give_up",
    )
    (solution,) = parse_file(write_jsonl(tmp_path / "prm.jsonl", [row]))
    assert [s.text for s in solution.steps] == ["A."]
    assert solution.first_error_index == -1
    assert [c["text"] for c in solution.metadata["unchosen_completions"]] == ["B?", "C?"]


@pytest.mark.parametrize(("rating0", "label", "first_error"), [("correct", "correct", 2), ("neutral", "neutral", 2),
                                                                 ("incorrect", "incorrect", 1)])  # fmt: skip
@pytest.mark.django_db
def test_it_maps_rating_zero_per_the_recorded_option(tmp_path, rating0, label, first_error):
    result = import_file(write_prm800k(tmp_path / "prm.jsonl"), options={"rating0": rating0})
    assert result.dataset.import_options == {"rating0": rating0}
    assert result.job.options == {"rating0": rating0}
    sol = Solution.objects.get(dataset=result.dataset, source_id__startswith="labeler-1/2023-01-22")
    step = sol.steps.get(index=1)
    assert (step.source_rating, step.label) == (0, label)
    assert sol.first_error_index == first_error
    assert sol.steps.get(index=2).alternatives[1] == {
        "text": "Hmm.",
        "rating": 0,
        "label": label,
        "flagged": None,
    }


@pytest.mark.django_db
def test_it_records_the_default_rating0_and_imports_problem_level_fields(tmp_path):
    result = import_file(write_prm800k(tmp_path / "prm.jsonl"), dataset_name="phase2")
    ds = Dataset.objects.get(name="phase2")
    assert ds.import_options == {"rating0": "correct"} and ds.source_format == "prm800k"
    assert (ds.n_problems, ds.n_solutions, ds.n_steps) == (1, 2, 6)
    problem = Problem.objects.get(dataset=ds)
    assert problem.reference_answer == "6" and problem.source_id.startswith("q-")
    assert problem.question == "What is the greatest common factor of 12 and 18?"
    assert problem.metadata == {"ground_truth_solution": "12 = 2^2 3 and 18 = 2 3^2, so the GCF is 6."}
    assert result.n_with_error == 1


@pytest.mark.django_db
def test_it_treats_another_rating0_as_another_import(tmp_path):
    path = write_prm800k(tmp_path / "prm.jsonl")
    import_file(path, dataset_name="a")
    again = import_file(
        path, dataset_name="b", options={"rating0": "correct"}
    )  # explicit default: same import
    assert again.already_imported and again.dataset.name == "a"
    other = import_file(path, dataset_name="c", options={"rating0": "neutral"})
    assert (
        not other.already_imported
        and Step.objects.filter(solution__dataset=other.dataset, label="neutral").count() == 1
    )


@pytest.mark.parametrize(
    ("steps", "field", "message"),
    [
        ([prm_step([completion("A.", 2)])], "label.steps[0].completions[0].rating", "expected -1, 0, 1 or null, got 2"),
        ([prm_step([completion("A.", True)])], "label.steps[0].completions[0].rating", "expected -1, 0, 1 or null, got True"),
        ([prm_step([completion("A.", 1)], chosen=1)], "label.steps[0].chosen_completion",
         "expected null or an index between 0 and 0, got 1"),
        ([prm_step([completion("A.", -1)], chosen=None), prm_step([completion("B.", 1)])],
         "label.steps[0].chosen_completion", "null with no human_completion, but later steps follow"),
        ([prm_step(["A."])], "label.steps[0].completions[0]", "expected an object with 'text' and 'rating', got 'A.'"),
        ([prm_step([{"rating": 1}])], "label.steps[0].completions[0].text", "expected a string, got null None"),
    ],
)  # fmt: skip
@pytest.mark.django_db
def test_it_rejects_bad_steps_naming_line_and_field_and_writes_nothing(tmp_path, steps, field, message):
    path = write_jsonl(tmp_path / "prm.jsonl", [prm800k_row(), prm800k_row(steps, timestamp="t2")])
    before = row_counts()
    with pytest.raises(ImportValidationError) as exc:
        import_file(path)
    assert str(exc.value).startswith(f"prm.jsonl: line 2: field '{field}': {message}")
    assert row_counts() == before


@pytest.mark.django_db
def test_it_rejects_a_missing_problem(tmp_path):
    row = prm800k_row()
    row["question"] = {"ground_truth_answer": "6"}
    with pytest.raises(
        ImportValidationError, match=r"^prm.jsonl: line 1: field 'question.problem': is missing$"
    ):
        import_file(write_jsonl(tmp_path / "prm.jsonl", [row]), fmt="prm800k")


@pytest.mark.django_db
def test_it_rejects_an_unknown_rating0(tmp_path):
    with pytest.raises(
        ImportValidationError,
        match="field 'rating0': expected one of correct, incorrect, neutral, got 'maybe'",
    ):
        import_file(write_prm800k(tmp_path / "prm.jsonl"), options={"rating0": "maybe"})
    assert not Dataset.objects.exists()


def test_it_gives_repeated_natural_keys_a_suffix(tmp_path):
    path = write_jsonl(tmp_path / "prm.jsonl", [prm800k_row(), prm800k_row()])
    assert [s.source_id for s in parse_file(path)] == [
        "labeler-1/2023-01-22T04:34:27.052924/9",
        "labeler-1/2023-01-22T04:34:27.052924/9#2",
    ]


def test_it_derives_ids_for_phase_1_and_for_records_without_a_labeler(tmp_path):
    phase1 = prm800k_row(generation=None)
    anonymous = prm800k_row(timestamp="t2")
    del anonymous["labeler"]
    a, b = parse_file(write_jsonl(tmp_path / "prm.jsonl", [phase1, anonymous]))
    assert a.source_id == "labeler-1/2023-01-22T04:34:27.052924"
    assert b.source_id.startswith("s-") and len(b.source_id) == 26
