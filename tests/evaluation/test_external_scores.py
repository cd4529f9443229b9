"""External score files: every problem is refused with file, line and field, and nothing is written."""

from __future__ import annotations

import json

import pytest

from evaluation.models import EvaluationRun, SolutionScore
from evaluation.score_files import ScoreFileError
from evaluation.workflow import create_evaluation
from tests.evaluation.conftest import PB_SCORES, write_scores


def _fails(pb_datasets, path):
    with pytest.raises(ScoreFileError) as info:
        create_evaluation(benchmark="processbench", datasets=pb_datasets, scores_path=path)
    assert EvaluationRun.objects.count() == 0 and SolutionScore.objects.count() == 0
    return info.value


def _with(tmp_path, **changes):
    scores = {**PB_SCORES, **changes}
    return write_scores(tmp_path / "scores.jsonl", {k: v for k, v in scores.items() if v is not None})


def _line_of(sid):
    return list(PB_SCORES).index(sid) + 1


@pytest.mark.parametrize(
    "change, field, fragment",
    [
        ({"gsm8k-1": [0.5, 0.5]}, "step_scores", "2 scores for a solution of 4 steps"),
        ({"gsm8k-1": [0.5, 1.5, 0.5, 0.5]}, "step_scores[1]", "expected a number in [0, 1], got 1.5"),
        ({"gsm8k-1": [0.5, "high", 0.5, 0.5]}, "step_scores[1]", 'got "high"'),
        ({"gsm8k-1": "0.5"}, "step_scores", "expected a list of numbers"),
    ],
)
def test_it_names_file_line_and_field(pb_datasets, tmp_path, change, field, fragment):
    error = _fails(pb_datasets, _with(tmp_path, **change))
    assert (error.file, error.line, error.field) == ("scores.jsonl", _line_of("gsm8k-1"), field)
    assert fragment in str(error) and str(error).startswith(
        f"scores.jsonl, line {_line_of('gsm8k-1')}: {field}:"
    )


def test_it_refuses_bad_json_and_unknown_or_duplicate_ids(pb_datasets, tmp_path):
    path = write_scores(tmp_path / "s.jsonl", PB_SCORES, extra_lines=["{not json"])
    error = _fails(pb_datasets, path)
    assert error.line == 10 and error.field is None and "not valid JSON" in str(error)

    path = write_scores(
        tmp_path / "s.jsonl", PB_SCORES, extra_lines=[json.dumps({"id": "nope", "step_scores": []})]
    )
    error = _fails(pb_datasets, path)
    assert (error.line, error.field) == (10, "id") and "no solution 'nope'" in str(error)

    dup = json.dumps({"id": "math-1", "step_scores": [0.1, 0.2]})
    error = _fails(pb_datasets, write_scores(tmp_path / "s.jsonl", PB_SCORES, extra_lines=[dup]))
    assert (error.line, error.field) == (10, "id") and f"already scored on line {_line_of('math-1')}" in str(
        error
    )

    error = _fails(
        pb_datasets, write_scores(tmp_path / "s.jsonl", PB_SCORES, extra_lines=['{"step_scores": []}'])
    )
    assert (error.line, error.field) == (10, "id")


def test_it_refuses_a_file_that_leaves_solutions_unscored(pb_datasets, tmp_path):
    error = _fails(pb_datasets, _with(tmp_path, **{"math-2": None}))
    assert error.line is None and error.field == "id" and "1 solution(s) have no scores" in str(error)
    assert "'math-2'" in str(error)


def test_it_accepts_a_dataset_key_to_tell_subsets_apart(pb_datasets, tmp_path):
    lines = [json.dumps({"id": sid, "dataset": "pb-gsm8k" if sid.startswith("gsm8k") else "pb-math",
                         "step_scores": s}) for sid, s in PB_SCORES.items()]  # fmt: skip
    path = tmp_path / "with-dataset.jsonl"
    path.write_text("\n".join(lines) + "\n")
    run = create_evaluation(benchmark="processbench", datasets=pb_datasets, scores_path=path)
    assert run.status == "succeeded" and SolutionScore.objects.filter(run=run).count() == 9
