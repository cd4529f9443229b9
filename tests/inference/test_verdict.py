import pytest

from inference.core.verdict import (
    SECTION_KEYS,
    VERDICT_QUESTION,
    missing_sections,
    parse_sections,
    parse_verdict,
    split_sections,
    verdict_question_end,
)

BODY = "Now Step Analysis: the step adds 2 and 2.\nConclusion: the step is right.\n"
YES = f"{VERDICT_QUESTION} Yes"
NO = f"{VERDICT_QUESTION} No"


@pytest.mark.parametrize(("line", "expected"), [(YES, "yes"), (NO, "no")])
def test_it_accepts_the_exact_verdict_line(line, expected):
    result = parse_verdict(BODY + line)
    assert (result.verdict, result.strict, result.lenient_verdict, result.problem) == (
        expected,
        True,
        expected,
        None,
    )


@pytest.mark.parametrize(
    "text",
    [
        BODY + YES + "\n\n  \n",  # trailing blank lines
        BODY + YES + "  \t",  # trailing whitespace on the line
        (BODY + YES).replace("\n", "\r\n") + "\r\n",  # CRLF line endings
    ],
)
def test_it_accepts_trailing_whitespace_and_crlf(text):
    result = parse_verdict(text)
    assert result.strict and result.verdict == "yes"


@pytest.mark.parametrize(
    ("text", "lenient", "problem"),
    [
        (BODY + NO + "\n" + YES, "yes", "2 verdict lines"),
        (BODY + YES + "\nBut wait, maybe not.", "yes", "verdict line not at end"),
        (BODY + f"{VERDICT_QUESTION} yes", "yes", "not exactly 'Yes' or 'No'"),
        (BODY + f"**{VERDICT_QUESTION} No**", "no", "markdown"),
        (BODY + f"{VERDICT_QUESTION} **Yes**", "yes", "not exactly 'Yes' or 'No'"),
        (BODY + "verification: is the step correct (yes/no)? no", "no", "not written exactly"),
        (BODY + "The step is correct.", None, "no verdict line"),
        (BODY + f"{VERDICT_QUESTION} Yes/No", None, "not exactly"),
        (BODY + f"{VERDICT_QUESTION} X", None, "not exactly"),
        (BODY + f"{VERDICT_QUESTION}", None, "not exactly"),
        ("   \n\n", None, "empty critique"),
    ],
)
def test_it_never_calls_a_sloppy_verdict_strict(text, lenient, problem):
    result = parse_verdict(text)
    assert result.verdict == "unparseable"
    assert result.strict is False
    assert result.lenient_verdict == lenient
    assert problem in result.problem


@pytest.mark.parametrize(
    ("text", "verdict", "problem"),
    [
        (BODY + f"{VERDICT_QUESTION} Yes.", "yes", "not exactly 'Yes' or 'No'"),
        (BODY + f"{VERDICT_QUESTION} No..  \n\n", "no", "not exactly 'Yes' or 'No'"),
        (BODY + f"Conclusion: {VERDICT_QUESTION} No", "no", "text before the verdict question"),
        (BODY + f"So. {VERDICT_QUESTION} Yes.", "yes", "text before the verdict question"),
    ],
)
def test_it_accepts_what_the_authors_filter_accepts_as_non_strict(text, verdict, problem):
    result = parse_verdict(text)
    assert (result.verdict, result.strict, result.accepted_by) == (verdict, False, "authors")
    assert problem in result.problem


@pytest.mark.parametrize(
    "text",
    [
        BODY + f"**{VERDICT_QUESTION} No**",  # not at the end once full stops are stripped
        BODY + f"{VERDICT_QUESTION} Yes/No",
        BODY + f"{YES}\nBut wait, maybe not.",
        BODY + f"{NO}.\n{VERDICT_QUESTION} Yes.",  # both verdict lines
        BODY + f"{YES}.\n{YES}.",  # the line twice
        BODY + f"{VERDICT_QUESTION} Yes!",
    ],
)
def test_it_refuses_what_the_authors_filter_refuses(text):
    assert parse_verdict(text).verdict == "unparseable"


def test_strict_lines_are_marked_strict():
    assert parse_verdict(BODY + YES).accepted_by == "strict"


def test_it_reads_leniently_an_answer_on_the_next_line():
    result = parse_verdict(BODY + f"{VERDICT_QUESTION}\n\n**No.**")
    assert (result.verdict, result.lenient_verdict, result.problem) == (
        "unparseable",
        "no",
        "verdict line not at end",
    )


def test_it_lets_the_last_verdict_line_win_and_never_guesses():
    assert parse_verdict(f"{YES}\n{VERDICT_QUESTION} No!").lenient_verdict == "no"
    # The last line is unreadable: the earlier readable one is not used instead.
    assert parse_verdict(f"{YES}\n{VERDICT_QUESTION} maybe").lenient_verdict is None
    assert parse_verdict(f"{VERDICT_QUESTION} Yes, or no").lenient_verdict is None
    assert parse_verdict(f"{VERDICT_QUESTION} \\boxed{{Yes}}").lenient_verdict == "yes"
    assert parse_verdict(f"{VERDICT_QUESTION} Yes, the step is right.").lenient_verdict == "yes"


def test_it_counts_verdict_lines():
    assert parse_verdict(BODY + NO + "\n" + YES).verdict_lines == 2
    assert parse_verdict(BODY + YES).verdict_lines == 1


def test_it_finds_the_end_of_the_last_verdict_question():
    text = f"{VERDICT_QUESTION} No\nSecond thoughts.\n{VERDICT_QUESTION} Yes"
    end = verdict_question_end(text)
    assert text[:end].endswith(VERDICT_QUESTION)
    assert text[end:] == " Yes"
    assert verdict_question_end("no question here") is None
    assert verdict_question_end("Is the step correct (Yes/No)?") == len("Is the step correct (Yes/No)?")


CRITIQUE = f"""Let me check.
## 1. Previous Steps Analysis:
Step 1 is fine.
**Now Step Analysis**: The step computes 2+2.
It claims 4.
### Data Source Analysis
The numbers come from the question.
3) **Consistency Analysis:** consistent.
- Calculation Analysis: 2+2=4 is right.
Conclusion is what follows, but that line is prose.
**Conclusion:**
The step is correct.
{YES}
"""


def test_it_splits_sections_through_markdown_and_numbering():
    sections = parse_sections(CRITIQUE)
    assert list(sections) == list(SECTION_KEYS)
    assert sections["previous_steps_analysis"] == "Step 1 is fine."
    assert sections["now_step_analysis"] == "The step computes 2+2.\nIt claims 4."
    assert sections["data_source_analysis"] == "The numbers come from the question."
    assert sections["consistency_analysis"] == "consistent."
    assert sections["calculation_analysis"].startswith("2+2=4 is right.\nConclusion is what follows")
    assert sections["conclusion"] == f"The step is correct.\n{YES}"
    assert missing_sections(sections) == []


def test_it_lists_missing_sections_in_order():
    parsed = split_sections("Now Step Analysis: ok\nConclusion:\nfine\r\n" + NO)
    assert set(parsed.sections) == {"now_step_analysis", "conclusion"}
    assert parsed.missing == [
        "previous_steps_analysis",
        "data_source_analysis",
        "consistency_analysis",
        "calculation_analysis",
    ]
    assert parsed.sections["conclusion"] == "fine\n" + NO
    assert missing_sections(parse_sections("no headers at all")) == list(SECTION_KEYS)
