"""Audit signals: the pure checks on constructed critiques, then a run of the demo data."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from inference.core.verdict import split_sections
from inference.models import Critique
from review.audit import CritiqueFacts, audit_facts, find_equations, suspicion
from review.models import CritiqueAudit, ReviewItem

from .conftest import critique


def facts(text: str, *, now_step="The total is $210 + 91 = 300$ muffins.", number=2, p_yes=0.9, siblings=()):
    parsed = split_sections(text)
    verdict = (
        "yes" if text.rstrip().endswith("Yes") else "no" if text.rstrip().endswith("No") else "unparseable"
    )
    return CritiqueFacts(
        verdict=verdict,
        text=text,
        sections=parsed.sections,
        missing_sections=parsed.missing,
        p_yes=p_yes,
        now_step_text=now_step,
        now_step_number=number,
        sibling_verdicts=siblings,
    )


def kinds(signals) -> list[str]:
    return [s.kind for s in signals]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The total is $210 + 91 = 300$ muffins.", [("210 + 91 = 300", False, "301")]),
        ("Tom has $3 \\times 12 = 36$ pencils.", [("3 * 12 = 36", True, "36")]),
        ("For $n = 10$ this is $\\frac{10 \\cdot 11}{2} = 55$.", [("10*11/2 = 55", True, "55")]),
        ("so 5 - 2 = 3 apples. 4 * 2 = 9.", [("5 - 2 = 3", True, "3"), ("4 * 2 = 9", False, "8")]),
        ("10/3 = 3.33 when rounded", [("10/3 = 3.33", True, "10/3 ≈ 3.33333")]),
        ("1,000 + 1 = 1001", [("1000 + 1 = 1001", True, "1001")]),
        # Not numeric equations: variables, lists, a bare assignment, huge exponents, division by zero.
        ("Subtract 7 from both sides: $3x = 15$ and $2x + 3 = 11$.", []),
        ("The numbers 1, 2, 3 = 6 in total", []),
        ("Let $x = 5$.", []),
        ("2^99999 = 1", []),
        ("5/0 = 1", []),
    ],
)
def test_it_checks_arithmetic_with_sympy(text, expected):
    assert [(e.text, e.holds, e.lhs_value) for e in find_equations(text)] == expected


def test_it_flags_yes_on_a_step_with_a_false_equation_with_the_equation_as_evidence():
    signals = audit_facts(facts(critique("Yes")))
    assert kinds(signals)[0] == "yes_on_false_equation"
    evidence = signals[0].evidence["equations"]
    assert evidence == [{"equation": "210 + 91 = 300", "lhs_value": "301"}]
    assert "210 + 91 = 300" in signals[0].message and "301" in signals[0].message
    # The same step judged No raises no arithmetic signal.
    assert "yes_on_false_equation" not in kinds(audit_facts(facts(critique("No"))))


def test_it_flags_a_calculation_analysis_that_claims_a_false_equation_but_not_a_refutation():
    claims = critique("Yes", calc="We verify 210 + 91 = 300, which matches.")
    assert "false_calculation_claim" in kinds(audit_facts(facts(claims, now_step="The sum is 301.")))
    refutes = critique("No", calc="The step says 210 + 91 = 300, which is incorrect; 210 + 91 = 301.")
    assert "false_calculation_claim" not in kinds(audit_facts(facts(refutes)))


@pytest.mark.parametrize(
    ("verdict", "conclusion", "flagged"),
    [
        ("Yes", "The Now Step contains an error in the addition.", True),
        ("Yes", "The Now Step incorrectly adds the numbers.", True),
        ("Yes", "There are no errors in the Now Step; it is correct.", False),
        ("Yes", "The step does not contain any calculation mistakes.", False),
        ("No", "The Now Step is correct.", True),
        ("No", "The Now Step is not correct.", False),
        ("No", "The step looks correct at first, but the sum is wrong.", False),
    ],
)
def test_it_compares_the_conclusion_with_the_verdict(verdict, conclusion, flagged):
    text = critique(verdict, conclusion=conclusion)
    signals = audit_facts(facts(text, now_step="The sum is 301."))
    assert ("conclusion_contradicts_verdict" in kinds(signals)) is flagged


def test_it_flags_references_to_steps_the_prompt_did_not_show_and_missing_sections():
    text = critique("Yes", prev="Step 1 and Step 7 are fine.")
    signals = audit_facts(facts(text, now_step="The sum is 301.", number=3))
    phantom = next(s for s in signals if s.kind == "phantom_step_reference")
    assert phantom.evidence == {"referenced": [7], "visible_steps": 3}
    short = "Now Step Analysis: adds.\nConclusion: fine.\nVerification: Is the step correct (Yes/No)? Yes"
    missing = next(s for s in audit_facts(facts(short, now_step="ok")) if s.kind == "missing_sections")
    assert missing.evidence["missing"] == [
        "previous_steps_analysis",
        "data_source_analysis",
        "consistency_analysis",
        "calculation_analysis",
    ]


def test_it_scores_uncertain_p_yes_and_disagreeing_samples():
    calm = audit_facts(facts(critique("Yes"), now_step="ok", p_yes=0.97, siblings=["yes", "yes", "yes"]))
    assert calm == []
    torn = audit_facts(facts(critique("Yes"), now_step="ok", p_yes=0.5, siblings=["no", "no", "yes"]))
    by_kind = {s.kind: s for s in torn}
    assert by_kind["p_yes_uncertain"].strength == 1.0
    assert by_kind["sample_disagreement"].evidence == {"yes": 2, "no": 2, "samples": 4}
    assert by_kind["sample_disagreement"].strength == 1.0
    # noisy-or: 1 - (1 - 0.45) * (1 - 0.3)
    assert suspicion(torn) == pytest.approx(0.615)
    contradicts = audit_facts(facts(critique("Yes"), now_step="ok", p_yes=0.1))
    assert "p_yes_contradicts_verdict" in kinds(contradicts)


def test_it_audits_a_demo_run_and_surfaces_the_false_equation(make_run):
    run = make_run(n_samples=2)  # a teacher that says Yes to everything
    assert (
        CritiqueAudit.objects.filter(critique__run=run).count()
        == Critique.objects.filter(run=run).count()
        == 72
    )
    bad = Critique.objects.get(run=run, step__solution__source_id="demo-0", step__index=1, sample_index=0)
    signal = bad.audit.signals[0]
    assert signal["kind"] == "yes_on_false_equation"
    assert signal["evidence"]["equations"][0]["equation"] == "210 + 91 = 300"
    item = ReviewItem.objects.get(critique=bad)
    assert item.flagged and item.suspicion >= 0.9 and item.queue == ReviewItem.Queue.DISAGREED
    # The three false equations of the demo data (demo-0, demo-3, demo-9) lead the flagged queue.
    flagged = ReviewItem.objects.filter(run=run, flagged=True).order_by("-suspicion", "id")
    sources = {(i.step.solution.source_id, i.step.index) for i in flagged}
    assert sources == {("demo-0", 1), ("demo-3", 0), ("demo-9", 1)}


def test_it_recomputes_idempotently_from_the_command(make_run, capsys):
    run = make_run(n_samples=1)
    before = dict(ReviewItem.objects.filter(run=run).values_list("critique_id", "suspicion"))
    call_command("audit_critiques", "--run", str(run.id))
    assert "yes_on_false_equation" in capsys.readouterr().out
    assert ReviewItem.objects.filter(run=run).count() == 36
    assert dict(ReviewItem.objects.filter(run=run).values_list("critique_id", "suspicion")) == before
