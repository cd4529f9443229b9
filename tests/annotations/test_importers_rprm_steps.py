"""R-PRM step rows: regrouped into solutions by origin_id, labels normalised, rows checked."""

from __future__ import annotations

import pytest

from annotations.actions import import_file
from annotations.importers import parse_file
from annotations.importers.errors import ImportValidationError
from annotations.models import Solution
from tests.annotations.factories_files import row_counts, rprm_rows, write_jsonl, write_rprm_steps


def test_it_regroups_rows_into_solutions(tmp_path):
    o1, o2 = parse_file(write_rprm_steps(tmp_path / "rprm.jsonl"))
    assert (o1.source_id, [s.text for s in o1.steps]) == ("o1", ["2 + 3 = 5.", "So the answer is 5."])
    assert [s.label for s in o1.steps] == ["correct", "correct"] and o1.first_error_index == -1
    assert [s.label for s in o2.steps] == ["correct", "incorrect"] and o2.first_error_index == 1
    assert o1.metadata == {"row_ids": ["o1-0", "o1-1"], "prompt_question": "What is 2 + 3?"}
    assert o2.question == "What is 2 + 4?"


@pytest.mark.parametrize(
    ("yes", "no"),
    [(True, False), (1, 0), ("Yes", "No"), ("+", "-"), ("Positive", "Negative"), (" yes ", "NO"), ("1", "0")],
)
def test_it_normalises_label_spellings(tmp_path, yes, no):
    (solution,) = parse_file(write_jsonl(tmp_path / "rprm.jsonl", rprm_rows("o", ["a", "b"], [yes, no])))
    assert [s.label for s in solution.steps] == ["correct", "incorrect"]


def test_it_reads_previous_steps_as_step_lines_and_leaves_unjudged_steps_unlabelled(tmp_path):
    steps = ["x = 1.", "So y = 2\nbecause y = 2x.", "Answer: 2."]
    rows = rprm_rows("o", steps, ["Yes", None, "No"], as_text=True)
    (solution,) = parse_file(write_jsonl(tmp_path / "rprm.jsonl", rows))
    assert [s.text for s in solution.steps] == steps
    assert [s.label for s in solution.steps] == ["correct", "unlabelled", "incorrect"]
    assert solution.first_error_index == 2


def test_it_keeps_a_different_now_step_as_an_alternative(tmp_path):
    # The longest row fixes the trajectory, whatever the order of the rows.
    rows = rprm_rows("o", ["a", "b", "c"], ["Yes", "Yes", "Yes"])
    rows.insert(1, {**rows[1], "id": "alt", "now_step": "b'", "label": "No"})
    (solution,) = parse_file(write_jsonl(tmp_path / "rprm.jsonl", rows))
    assert [s.text for s in solution.steps] == ["a", "b", "c"]
    assert solution.steps[1].alternatives == [{"text": "b'", "label": "incorrect", "row_id": "alt"}]


def test_it_accepts_the_r_prm_repository_spellings(tmp_path):
    rows = [
        {
            "id": "r1",
            "origin_id": "o",
            "query": "Q?",
            "previous-steps": [],
            "now-step": "a",
            "expert-judge": "Positive",
        }
    ]
    (solution,) = parse_file(write_jsonl(tmp_path / "rprm.jsonl", rows), fmt="rprm_steps")
    assert (solution.question, solution.steps[0].label) == ("Q?", "correct")


@pytest.mark.django_db
def test_it_imports_step_rows(tmp_path):
    result = import_file(write_rprm_steps(tmp_path / "rprm.jsonl"))
    assert (result.format, result.n_problems, result.n_solutions, result.n_steps, result.n_with_error) == (
        "rprm_steps", 2, 2, 4, 1,
    )  # fmt: skip
    assert (
        Solution.objects.get(dataset=result.dataset, source_id="o2").steps.get(index=1).label == "incorrect"
    )


def _bad(rows: list[dict], i: int, **change) -> list[dict]:
    rows = [dict(r) for r in rows]
    rows[i].update(change)
    return rows


BASE = rprm_rows("o", ["a", "b", "c"], ["Yes", "Yes", "No"])


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (_bad(BASE, 2, label="maybe"), "line 3: field 'label': expected a yes/no label (true/false, 1/0, Yes/No, +/-, "
                                      "Positive/Negative), got 'maybe'"),
        (_bad(BASE, 2, label=None), "line 3: field 'label': expected a yes/no label"),
        (_bad(BASE, 1, previous_steps=["A"]), "line 2: field 'previous_steps': step 1 differs from step 1 of origin 'o' "
                                              "as given at line 3"),
        (_bad(BASE, 1, question="Other?"), "line 2: field 'question': differs from the question of origin 'o' at line 1"),
        (BASE + _bad(BASE, 0, label="No")[:1], "line 4: field 'label': 'incorrect' contradicts 'correct' at line 1 "
                                               "for step 1 of origin 'o'"),
        (BASE + rprm_rows("p", ["z"], ["Yes"]) + BASE[:1],
         "line 5: field 'origin_id': rows of origin 'o' are not contiguous (its group started at line 1 and was "
         "already closed); sort the file by origin_id"),
        (_bad(BASE, 1, previous_steps="Step 2: a"), "line 2: field 'previous_steps': expected 'Step 1:' but found 'Step 2:'"),
        (_bad(BASE, 1, previous_steps="just text"), "line 2: field 'previous_steps': expected a list or 'Step i: ...' lines"),
        (_bad(BASE, 0, origin_id=None), "line 1: field 'origin_id': expected a non-empty string or integer id"),
    ],
)  # fmt: skip
@pytest.mark.django_db
def test_it_rejects_inconsistent_rows_naming_line_and_field_and_writes_nothing(tmp_path, rows, message):
    path = write_jsonl(tmp_path / "rprm.jsonl", rows)
    before = row_counts()
    with pytest.raises(ImportValidationError) as exc:
        import_file(path, fmt="rprm_steps")
    assert str(exc.value).startswith(f"rprm.jsonl: {message}")
    assert row_counts() == before


# --- the authors' ProcessBench step rows (*_filtered.json) ---------------------------------


def filtered_rows(origin, steps, first_error):
    """Rows as the authors' files: the solution's first-error index on every row, stopping there."""
    last = len(steps) if first_error == -1 else first_error + 1
    rows = rprm_rows(origin, steps[:last], [first_error] * last, as_text=True)
    for k, row in enumerate(rows):
        row["now_step"] = f"Step {k + 1}: {row['now_step']}"
    return rows


def test_it_reads_integer_labels_as_the_solutions_first_error_index(tmp_path):
    rows = [
        *filtered_rows("math-0", ["a", "b", "c"], -1),
        *filtered_rows("math-1", ["a", "b", "c", "d"], 2),
        *filtered_rows("math-2", ["a", "b"], 0),
        *filtered_rows("math-3", ["a", "b", "c"], 1),  # two rows labelled 1: the first-error reading
    ]
    s0, s1, s2, s3 = parse_file(write_jsonl(tmp_path / "math_filtered.json", rows))
    assert [st.label for st in s0.steps] == ["correct"] * 3 and s0.first_error_index == -1
    assert [st.label for st in s1.steps] == ["correct", "correct", "incorrect"] and s1.first_error_index == 2
    assert [st.label for st in s2.steps] == ["incorrect"] and s2.first_error_index == 0
    assert [st.label for st in s3.steps] == ["correct", "incorrect"]
    assert [st.text for st in s1.steps] == ["a", "b", "c"]
    assert s1.metadata["label_reading"] == "first_error_index"


def test_it_refuses_integer_labels_that_fit_neither_reading(tmp_path):
    rows = filtered_rows("math-1", ["a", "b", "c", "d"], 2)
    rows[1]["label"] = 3  # disagrees with the other rows of the origin
    with pytest.raises(ImportValidationError) as info:
        list(parse_file(write_jsonl(tmp_path / "math_filtered.json", rows)))
    message = str(info.value)
    assert "math_filtered.json" in message and "label" in message and "integer 2" in message
    assert "first-error index" in message and "processbench" in message and "_filtered.json" in message
