"""ProcessBench: label = earliest wrong step (-1 all correct); nothing after it is invented."""

from __future__ import annotations

import pytest

from annotations.actions import import_file
from annotations.importers import parse_file
from annotations.importers.errors import ImportValidationError
from annotations.models import Dataset, ImportJob, Solution
from tests.annotations.factories_files import (
    processbench_row,
    row_counts,
    write_json_array,
    write_processbench,
)


def test_it_labels_steps_before_at_and_after_the_first_error(tmp_path):
    solutions = {s.source_id: s for s in parse_file(write_processbench(tmp_path / "pb.json"))}
    assert [st.label for st in solutions["pb-0"].steps] == ["correct"] * 3
    assert solutions["pb-0"].first_error_index == -1
    assert [st.label for st in solutions["pb-1"].steps] == [
        "correct",
        "incorrect",
        "unlabelled",
        "unlabelled",
    ]
    assert solutions["pb-1"].first_error_index == 1
    assert solutions["pb-2"].first_error_index == 0
    assert solutions["pb-1"].generator == "Qwen2-7B-Instruct"
    assert solutions["pb-0"].final_answer_correct is True and solutions["pb-1"].final_answer_correct is False


@pytest.mark.django_db
def test_it_imports_problems_solutions_and_steps(tmp_path):
    result = import_file(write_processbench(tmp_path / "pb.json"))
    ds = result.dataset
    assert (result.format, ds.source_format, ds.name) == ("processbench", "processbench", "pb")
    # Two solutions share a problem text: one problem.
    assert (ds.n_problems, ds.n_solutions, ds.n_steps) == (2, 3, 10)
    assert result.n_with_error == 2
    sol = Solution.objects.get(dataset=ds, source_id="pb-1")
    assert sol.first_error_index == 1 and sol.n_steps == 4 and sol.has_error
    assert list(sol.steps.values_list("index", "label")) == [
        (0, "correct"), (1, "incorrect"), (2, "unlabelled"), (3, "unlabelled"),
    ]  # fmt: skip
    assert sol.steps.first().text == "pb-1 step 1: 2 + 3 = 5."
    assert ds.label_counts == {"correct": 4, "incorrect": 2, "neutral": 0, "unlabelled": 4}
    assert ds.n_with_error == 2
    before = (ds.n_problems, ds.n_solutions, ds.n_steps, ds.n_with_error, ds.label_counts)
    ds.refresh_stats()  # the importer's counters equal a recount
    assert (ds.n_problems, ds.n_solutions, ds.n_steps, ds.n_with_error, ds.label_counts) == before
    assert result.job.status == ImportJob.Status.SUCCEEDED and result.job.counts["solutions"] == 3
    assert (
        result.summary()
        == "imported pb (processbench): 2 problems, 3 solutions, 10 steps (2 with an error) in "
        + (f"{result.seconds:.1f} s")
    )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (processbench_row("x", 12, n_steps=12) | {"label": "x"},
         "record 1: field 'label': expected an integer between -1 and 11 (number of steps - 1), got 'x'"),
        (processbench_row("x", 3), "record 1: field 'label': expected an integer between -1 and 2 (number of steps - 1), got 3"),
        (processbench_row("x") | {"label": True}, "record 1: field 'label': expected an integer between -1 and 2"),
        (processbench_row("x") | {"steps": "one"}, "record 1: field 'steps': expected a list of strings, got a string 'one'"),
        (processbench_row("x") | {"steps": ["a", 2]}, "record 1: field 'steps[1]': expected a string, got a number 2"),
        (processbench_row("x") | {"problem": ""}, "record 1: field 'problem': must not be empty"),
        (processbench_row("pb-0"), "record 1: field 'id': duplicate id 'pb-0': ids must be unique within a file"),
        (processbench_row("x") | {"final_answer_correct": "yes"}, "record 1: field 'final_answer_correct': expected true"),
        ({k: v for k, v in processbench_row("x").items() if k != "id"},
         "record 1: field 'id': expected a non-empty string or integer id, got nothing"),
        (processbench_row("x") | {"steps": ["a\x00b"]}, "record 1: field 'steps[0]': contains a NUL character"),
    ],
)  # fmt: skip
@pytest.mark.django_db
def test_it_rejects_bad_records_naming_record_and_field_and_writes_nothing(tmp_path, row, message):
    path = write_json_array(tmp_path / "processbench_gsm8k.json", [processbench_row("pb-0"), row])
    before = row_counts()
    with pytest.raises(ImportValidationError) as exc:
        import_file(path, fmt="processbench")
    assert str(exc.value).startswith(f"processbench_gsm8k.json: {message}")
    assert row_counts() == before
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.FAILED and job.error == str(exc.value)
    assert not Dataset.objects.exists()


@pytest.mark.django_db
def test_it_gives_the_exact_message_of_the_method_doc(tmp_path):
    rows = [processbench_row(f"gsm8k-{i}") for i in range(17)] + [
        processbench_row("gsm8k-17", n_steps=12) | {"label": "x"}
    ]
    path = write_json_array(tmp_path / "processbench_gsm8k.json", rows)
    with pytest.raises(ImportValidationError) as exc:
        import_file(path)
    assert str(exc.value) == (
        "processbench_gsm8k.json: record 17: field 'label': expected an integer between -1 and 11 "
        "(number of steps - 1), got 'x'"
    )


@pytest.mark.django_db
def test_it_keeps_unknown_keys_as_metadata(tmp_path):
    path = write_json_array(tmp_path / "pb.json", [processbench_row("a", subset="gsm8k")])
    result = import_file(path)
    assert Solution.objects.get(dataset=result.dataset).metadata == {"subset": "gsm8k"}
