"""Reading the verdict line and the analysis sections of a critique.

The R-PRM protocol ends every critique with the exact line::

    Verification: Is the step correct (Yes/No)? X

with X = ``Yes`` or ``No``. :func:`parse_verdict` applies that rule strictly (what
training data filtering and stored verdicts use) and also gives a forgiving reading
for display and diagnostics. Neither reading ever guesses: anything unclear is
``'unparseable'`` / ``None``.

Strict rule, precisely:

* Line endings are normalised first (CRLF and CR become LF).
* Exactly one line mentions the verdict question (matched case-insensitively and
  through markdown emphasis, so a sloppy second verdict line still counts as one).
* That line is the last non-blank line: trailing blank lines and trailing spaces or
  tabs are accepted, because they are whitespace the model emits before end of
  sequence and change no token of the verdict.
* The line, without its trailing whitespace, is exactly
  ``Verification: Is the step correct (Yes/No)? Yes`` or ``... No``: nothing before
  it, no markdown, no trailing period, capitalised answer.

A critique that fails the strict rule still has a verdict when the authors' own data
filter (NJUNLP/R-PRM ``src/utils/operate-PRM-CoT-data*.py``) accepts it, exactly:
the text (stripped, as their inference strips model output) contains the verdict line
``... Yes`` or ``... No`` exactly once and not the other one, and, after trailing full
stops and then whitespace are removed, ends with it. That admits ``... Yes.`` and words
before ``Verification:`` on the line. Such a verdict is recorded with ``strict=False``
(``accepted_by="authors"``) so reviewers can tell it apart; nothing else is guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

VERDICT_QUESTION = "Verification: Is the step correct (Yes/No)?"
# p_yes is read right after this tail, like the authors' scoring script does;
# it is also the tail of VERDICT_QUESTION, so both give the same offset.
VERDICT_QUESTION_TAIL = "Is the step correct (Yes/No)?"
VERDICT_YES_LINE = f"{VERDICT_QUESTION} Yes"
VERDICT_NO_LINE = f"{VERDICT_QUESTION} No"

Verdict = Literal["yes", "no", "unparseable"]

SECTION_KEYS: tuple[str, ...] = (
    "previous_steps_analysis",
    "now_step_analysis",
    "data_source_analysis",
    "consistency_analysis",
    "calculation_analysis",
    "conclusion",
)

_EMPH = r"[*_`]*"
# The verdict question as models actually write it: any case, markdown emphasis
# around the words, optional "Verification:" prefix.
_QUESTION_RE = re.compile(
    rf"(?:verification{_EMPH}\s*:?{_EMPH}\s*)?"
    rf"is\s+the\s+step\s+correct{_EMPH}\s*\(\s*yes\s*/\s*no\s*\){_EMPH}\s*\?{_EMPH}",
    re.IGNORECASE,
)
_MARKUP_CHARS = "*_`~ \t"
_TRAILING_PUNCT = ".!,;:"


@dataclass(frozen=True)
class VerdictResult:
    verdict: Verdict
    strict: bool
    lenient_verdict: Literal["yes", "no"] | None
    # Why the strict rule failed (also when the authors' rule still gives a verdict).
    problem: str | None = None
    verdict_lines: int = 0
    # "strict", "authors" (accepted only by the authors' filter), or None (no verdict).
    accepted_by: str | None = None

    @property
    def is_yes(self) -> bool:
        return self.verdict == "yes"


def normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _lenient_answer(answer: str) -> Literal["yes", "no"] | None:
    """Read 'Yes', '**Yes**', 'yes.', '\\boxed{No}', 'Yes, it is correct' etc.

    None when empty or when the answer mentions both words ('Yes/No', 'Yes or no').
    """
    a = answer.strip().strip(_MARKUP_CHARS)
    a = re.sub(r"^\\boxed\{(.*)\}", r"\1", a).strip(_MARKUP_CHARS)
    words = re.findall(r"[a-z]+", a.lower())
    if not words or words[0] not in ("yes", "no"):
        return None
    first = words[0]
    if first == "yes":
        return None if "no" in words else "yes"
    return None if "yes" in words else "no"


def parse_verdict(text: str) -> VerdictResult:
    """Apply the strict R-PRM verdict rule (module docstring) and a lenient reading."""
    text = normalise_newlines(text or "")
    lines = text.split("\n")
    verdict_idx = [i for i, line in enumerate(lines) if _QUESTION_RE.search(line)]
    non_blank = [i for i, line in enumerate(lines) if line.strip()]

    lenient = _lenient_reading(lines, verdict_idx)
    n = len(verdict_idx)

    def fail(problem: str) -> VerdictResult:
        authors = authors_verdict(text)
        if authors is not None:
            return VerdictResult(authors, False, lenient, problem, n, "authors")
        return VerdictResult("unparseable", False, lenient, problem, n)

    if not non_blank:
        return fail("empty critique")
    if n == 0:
        return fail("no verdict line")
    if n > 1:
        return fail(f"{n} verdict lines")
    idx = verdict_idx[0]
    if idx != non_blank[-1]:
        return fail("verdict line not at end")
    line = lines[idx].rstrip()
    if line == VERDICT_YES_LINE:
        return VerdictResult("yes", True, "yes", None, 1, "strict")
    if line == VERDICT_NO_LINE:
        return VerdictResult("no", True, "no", None, 1, "strict")
    q = line.find(VERDICT_QUESTION)
    if q < 0:
        return fail("verdict question not written exactly")
    if q > 0:
        if not line[:q].strip(_MARKUP_CHARS):
            return fail("markdown or indentation before the verdict question")
        return fail("text before the verdict question")
    answer = line[len(VERDICT_QUESTION) :]
    return fail(f"answer {answer.strip()!r} is not exactly 'Yes' or 'No'")


def authors_verdict(text: str) -> Literal["yes", "no"] | None:
    """The authors' acceptance rule (module docstring), or None."""
    text = normalise_newlines(text or "").strip()
    yes, no = text.count(VERDICT_YES_LINE), text.count(VERDICT_NO_LINE)
    if (yes, no) == (1, 0):
        target, verdict = VERDICT_YES_LINE, "yes"
    elif (yes, no) == (0, 1):
        target, verdict = VERDICT_NO_LINE, "no"
    else:
        return None
    return verdict if text.rstrip(".").strip().endswith(target) else None  # type: ignore[return-value]


def _lenient_reading(lines: list[str], verdict_idx: list[int]) -> Literal["yes", "no"] | None:
    """The last verdict line wins; its answer may sit on the next non-blank line."""
    if not verdict_idx:
        return None
    idx = verdict_idx[-1]
    line = lines[idx]
    match = list(_QUESTION_RE.finditer(line))[-1]
    answer = line[match.end() :]
    if not answer.strip(_MARKUP_CHARS + _TRAILING_PUNCT):
        following = [ln for ln in lines[idx + 1 :] if ln.strip()]
        answer = following[0] if following else ""
    return _lenient_answer(answer)


def verdict_question_end(text: str) -> int | None:
    """Offset right after the LAST exact verdict question, or None.

    Matches :data:`VERDICT_QUESTION_TAIL` exactly (case-sensitive): p_yes is the
    probability of the " Yes" token, which is only meaningful where the model wrote
    the question itself the protocol's way.
    """
    pos = text.rfind(VERDICT_QUESTION_TAIL)
    if pos < 0:
        return None
    return pos + len(VERDICT_QUESTION_TAIL)


# --- sections -----------------------------------------------------------------

_SECTION_NAMES = {
    "previous_steps_analysis": r"previous\s+steps?\s+analysis",
    "now_step_analysis": r"now\s+steps?\s+analysis",
    "data_source_analysis": r"data\s+sources?\s+analysis",
    "consistency_analysis": r"consistency\s+analysis",
    "calculation_analysis": r"calculations?\s+analysis",
    "conclusion": r"conclusion",
}
# A header line: optional markdown heading / list marker / numbering and emphasis,
# the section name, then a colon or the end of the line. "Conclusion is that ..."
# is prose, not a header.
_HEADER_RE = re.compile(
    r"^\s*(?:#{1,6}\s*)?(?:[-*+]\s+)?[*_]{0,3}\s*"
    r"(?:\(?\d{1,2}[.)]\s*|[ivx]{1,4}[.)]\s*)?[*_]{0,3}\s*"
    r"(?P<name>" + "|".join(f"(?P<{k}>{v})" for k, v in _SECTION_NAMES.items()) + r")"
    r"\s*[*_]{0,3}\s*(?:(?P<colon>[:：])[*_]{0,3}|$)(?P<rest>.*)$",
    re.IGNORECASE,
)


@dataclass
class Sections:
    """Result of :func:`parse_sections`: the text of each found section."""

    sections: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def parse_sections(text: str) -> dict[str, str]:
    """Split a critique into the five analysis sections and the conclusion.

    Keys are :data:`SECTION_KEYS`; only sections that were found are present (use
    :func:`missing_sections` for the rest). Headers may be markdown headings, bold,
    numbered ("1. Previous Steps Analysis:") and carry text on the same line. Text
    before the first header is dropped; a repeated header appends to its section.
    """
    lines = normalise_newlines(text or "").split("\n")
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in lines:
        m = _HEADER_RE.match(line)
        if m:
            key = next(k for k in SECTION_KEYS if m.group(k))
            current = key
            chunk = found.setdefault(key, [])
            if chunk:
                chunk.append("")
            rest = m.group("rest").strip().lstrip("*_").strip()
            if rest:
                chunk.append(rest)
            continue
        if current is not None:
            found[current].append(line)
    return {k: "\n".join(found[k]).strip() for k in SECTION_KEYS if k in found}


def missing_sections(sections: dict[str, str]) -> list[str]:
    """Section keys absent (or empty) in a :func:`parse_sections` result, in order."""
    return [k for k in SECTION_KEYS if not sections.get(k)]


def split_sections(text: str) -> Sections:
    """:func:`parse_sections` and :func:`missing_sections` in one call."""
    sections = parse_sections(text)
    return Sections(sections=sections, missing=missing_sections(sections))
