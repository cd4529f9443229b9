"""Planted flaws: from a sound critique, a copy with one flaw of the kind reviewers exist to
catch. Plain Python (no Django): the text in, the planted text and what was planted out.

* ``arithmetic``: an equation the Calculation Analysis states is changed so it is false
  (or, when it states none, a false recomputation of the Now Step's numbers is added);
  the verdict stays. The project's own audit must flag it (`false_calculation_claim`),
  so the seeding is checked, not a label.
* ``premise``: the Data Source Analysis leans on a fact that is not in the problem.
* ``contradiction``: the conclusion contradicts the analysis above it; the verdict stays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from inference.core.verdict import parse_sections

from .audit import CritiqueFacts, audit_facts, find_equations

# The error type each kind of planted flaw is recorded under (the taxonomy's slugs).
FLAW_TYPES = {"arithmetic": "calculation", "premise": "counterfactual", "contradiction": "step_contradiction"}

_EQUATION_RE = re.compile(
    r"(?P<lhs>\d+(?:\.\d+)?(?:\s*[-+*/×]\s*\d+(?:\.\d+)?)+)\s*=\s*(?P<rhs>-?\d+(?:\.\d+)?)"
)
_NUMBER_RE = re.compile(r"(?<![\d.])\d{1,4}(?![\d.])")
# Where a section ends: the next section's header line.
_NEXT_HEADER = {
    "calculation_analysis": r"conclusion",
    "data_source_analysis": r"consistency\s+analysis",
}
PREMISES = [
    ("positive integer", "every quantity in the problem is a positive integer"),
    ("less than 100", "the answer is stated to be less than 100"),
    ("nearest tenth", "the values are to be rounded to the nearest tenth"),
    ("distinct", "all the numbers involved are distinct"),
]


@dataclass(frozen=True)
class Planted:
    text: str
    flaw: str
    error_type: str
    detail: dict[str, Any] = field(default_factory=dict)


def _insert_at_section_end(text: str, section: str, sentence: str) -> str | None:
    """`sentence` appended to `section` (before the next header line), or None."""
    m = re.search(rf"^[^\n]*\b{_NEXT_HEADER[section]}\b[^\n]*:", text, re.IGNORECASE | re.MULTILINE)
    if m is None:
        return None
    head = text[: m.start()].rstrip("\n")
    return f"{head} {sentence}\n{text[m.start() :]}"


def _false_value(rhs: str) -> str:
    value = Fraction(rhs) + 1
    return str(value.numerator) if value.denominator == 1 else f"{float(value):g}"


def detected(text: str, verdict: str) -> bool:
    """Whether the project's audit flags a false calculation claim in `text`."""
    facts = CritiqueFacts(
        verdict=verdict,
        text=text,
        sections=parse_sections(text),
        missing_sections=(),
        p_yes=None,
        now_step_text="",
        now_step_number=1,
    )
    return any(s.kind == "false_calculation_claim" for s in audit_facts(facts, []))


def plant_arithmetic(text: str, verdict: str, now_step: str) -> Planted | None:
    """An equation of the Calculation Analysis made false (the right side + 1)."""
    calc = parse_sections(text).get("calculation_analysis") or ""
    start = text.lower().find("calculation analysis")
    for m in _EQUATION_RE.finditer(calc):
        equations = find_equations(m.group(0))
        if len(equations) != 1 or not equations[0].holds:
            continue
        wrong = f"{m.group('lhs')} = {_false_value(m.group('rhs'))}"
        at = text.find(m.group(0), max(start, 0))
        if at < 0:
            continue
        planted = text[:at] + wrong + text[at + len(m.group(0)) :]
        if detected(planted, verdict):
            return Planted(
                planted, "arithmetic", FLAW_TYPES["arithmetic"], {"before": m.group(0), "after": wrong}
            )
    numbers = [int(n) for n in _NUMBER_RE.findall(now_step)][:2] or [12, 7]
    a, b = (numbers + [7])[:2]
    wrong = f"{a} + {b} = {a + b + 1}"
    planted = _insert_at_section_end(text, "calculation_analysis", f"Recomputing the Now Step gives {wrong}.")
    if planted is None or not detected(planted, verdict):
        return None
    return Planted(planted, "arithmetic", FLAW_TYPES["arithmetic"], {"before": "", "after": wrong})


def plant_premise(text: str, question: str) -> Planted | None:
    """The Data Source Analysis cites a premise the problem does not state."""
    lowered = question.lower()
    for key, premise in PREMISES:
        if key in lowered:
            continue
        sentence = f"It also uses the given fact that {premise}, as the problem states."
        planted = _insert_at_section_end(text, "data_source_analysis", sentence)
        if planted is None:
            return None
        return Planted(planted, "premise", FLAW_TYPES["premise"], {"after": sentence})
    return None


def plant_contradiction(text: str, verdict: str) -> Planted | None:
    """The conclusion says the analysis found the opposite of what it found; the verdict stays."""
    m = re.search(r"^([^\n]*\bconclusion\b[^\n]*:)(.*?)(?=^[^\n]*verification:)", text, re.I | re.M | re.S)
    if m is None or verdict not in ("yes", "no"):
        return None
    if verdict == "yes":
        claim = "The analysis above shows the Now Step's calculation does not match the previous steps"
        sentence = f" {claim}, so the Now Step is correct.\n"
    else:
        claim = "The analysis above confirms every calculation and source of the Now Step"
        sentence = f" {claim}, so the Now Step is incorrect.\n"
    planted = text[: m.start(2)] + sentence + text[m.end(2) :]
    return Planted(
        planted,
        "contradiction",
        FLAW_TYPES["contradiction"],
        {"before": m.group(2).strip(), "after": sentence.strip()},
    )


def plant(kind: str, text: str, *, verdict: str, now_step: str, question: str) -> Planted | None:
    if kind == "arithmetic":
        return plant_arithmetic(text, verdict, now_step)
    if kind == "premise":
        return plant_premise(text, question)
    if kind == "contradiction":
        return plant_contradiction(text, verdict)
    raise ValueError(f"unknown flaw {kind!r}")
