"""Question normalisation and the train/eval overlap report."""

from __future__ import annotations

import pytest

from inference.core.contamination import normalize_question, overlap_report


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is $\\frac{1}{2} + x$?", "what is \\dfrac12+x"),
        ("Find  \\left( x \\right)^{2}, please.", "find x^2 please"),
        ("Compute\\,the   sum of $3$ and $4$!", "compute the sum of 3 and 4"),
        ("Ｗhat is ２+２?", "what is 2 + 2"),
        ("A \\text{box} holds 5 balls.", "a box holds 5 balls"),
        ("Solve $x^2-1=0$.", "Solve \\( x^{2} - 1 = 0 \\)"),
    ],
)
def test_it_normalizes_away_markup_noise(a, b):
    assert normalize_question(a) == normalize_question(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Solve $x+1=0$.", "Solve $x-1=0$."),
        ("What is 2+3?", "What is 2+4?"),
    ],
)
def test_it_keeps_what_changes_the_problem(a, b):
    assert normalize_question(a) != normalize_question(b)


def test_it_reports_exact_and_normalized_overlap():
    train = [
        "What is $1+1$?",
        "  Find the area of a circle of radius $2$.  ",
        "Compute $\\dfrac{3}{4} \\cdot 8$.",
        "",
    ]
    eval_questions = {
        "a": "What is $1+1$?",  # exact
        "b": "Find the area of a circle of radius $2$.",  # exact after strip
        "c": "Compute $\\frac{3}{4}\\cdot 8$",  # normalised only
        "d": "What is $1+2$?",  # different problem
        "e": "",
    }
    report = overlap_report(eval_questions, iter(train))
    assert report["n_eval"] == 5
    assert report["n_train"] == 3
    assert report["exact"] == {"count": 2, "rate": 0.4, "ids": ["a", "b"]}
    assert report["normalized"] == {"count": 3, "rate": 0.6, "ids": ["a", "b", "c"]}
    assert overlap_report({}, train)["normalized"] == {"count": 0, "rate": 0.0, "ids": []}
