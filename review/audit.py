"""Automatic audit signals for teacher critiques.

A critique whose verdict matches the label can still be wrong for the wrong reason
(plausible-but-wrong). These checks look for the tell-tale cases and keep the
evidence so a reviewer can verify each one in seconds:

* ``sample_disagreement``: the N samples for the same step (same run) disagree;
* ``yes_on_false_equation``: the Now Step states an arithmetic equation that sympy
  finds false, and the verdict is Yes anyway;
* ``false_calculation_claim``: the Calculation Analysis asserts an equation that is
  false (a check it claims to have done but did not);
* ``conclusion_contradicts_verdict``: the conclusion says "incorrect"/"error" but the
  verdict is Yes, or says "correct" but the verdict is No;
* ``phantom_step_reference``: "Step 7" when the prompt only showed 3 steps;
* ``missing_sections`` and ``unparseable``: the analysis is incomplete;
* ``p_yes_uncertain``: p(yes) close to 0.5; ``p_yes_contradicts_verdict``.

Signals are combined with a noisy-or into a suspicion score in [0, 1] that orders
the review queue. The text checks are plain Python functions, tested and reused
on their own; `audit_run` at the bottom is the Django shell around them.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from functools import lru_cache

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.utils import timezone

from inference.models import Critique, GenerationRun

from .models import CritiqueAudit, ReviewItem
from .queue import FLAG_THRESHOLD, ensure_review_items

AUDIT_VERSION = 1

# Weight of each signal kind (its strength is in [0, 1]); the noisy-or of
# weight * strength is the suspicion.
WEIGHTS: dict[str, float] = {
    "yes_on_false_equation": 0.9,
    "false_calculation_claim": 0.7,
    "conclusion_contradicts_verdict": 0.7,
    "phantom_step_reference": 0.5,
    "sample_disagreement": 0.45,
    "p_yes_contradicts_verdict": 0.4,
    "missing_sections": 0.3,
    "p_yes_uncertain": 0.3,
    "unparseable": 0.2,
}
TITLES: dict[str, str] = {
    "yes_on_false_equation": "Yes on a step with a false equation",
    "false_calculation_claim": "Calculation analysis claims a false equation",
    "conclusion_contradicts_verdict": "Conclusion contradicts the verdict",
    "phantom_step_reference": "Refers to a step that does not exist",
    "sample_disagreement": "Samples for this step disagree",
    "p_yes_contradicts_verdict": "p(yes) contradicts the verdict",
    "missing_sections": "Missing analysis sections",
    "p_yes_uncertain": "p(yes) close to 0.5",
    "unparseable": "Verdict unparseable",
}
P_YES_BAND = 0.15  # |p - 0.5| below this is "close to 0.5"


@dataclass
class Signal:
    kind: str
    strength: float
    message: str
    evidence: dict = field(default_factory=dict)

    @property
    def weight(self) -> float:
        return WEIGHTS[self.kind]

    def as_json(self) -> dict:
        return {**asdict(self), "weight": self.weight, "title": TITLES[self.kind]}


def suspicion(signals: Iterable[Signal]) -> float:
    keep = 1.0
    for s in signals:
        keep *= 1.0 - min(1.0, max(0.0, s.weight * s.strength))
    return round(1.0 - keep, 4)


# --- arithmetic ------------------------------------------------------------------

_LATEX_SUBS = [
    (re.compile(r"\\(?:left|right|displaystyle|,|;|!|quad)"), " "),
    (re.compile(r"\\(?:times|cdot|ast)"), "*"),
    (re.compile(r"\\div"), "/"),
    (re.compile(r"[×·∙]"), "*"),
    (re.compile(r"÷"), "/"),
    (re.compile(r"[−–]"), "-"),
]
_FRAC_RE = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
# A run of characters that can form a numeric equation. Commas are left out on
# purpose: "1, 2, 3" lists are more common in steps than "1,000".
_RUN_RE = re.compile(r"[0-9.+\-*/^()\s=]+")
_NUMBER_RE = re.compile(r"^\s*-?\d+(?:\.(\d+))?\s*$")
_MAX_EXPONENT = 300


def _to_plain(text: str) -> str:
    """LaTeX-ish step text to plain arithmetic, keeping offsets roughly aligned."""
    s = text.replace("\\$", " ").replace("$", " ").replace("\\(", " ").replace("\\)", " ")
    s = s.replace("\\[", " ").replace("\\]", " ")
    for rx, rep in _LATEX_SUBS:
        s = rx.sub(rep, s)
    for _ in range(4):  # nested \frac, innermost first
        s2 = _FRAC_RE.sub(r"((\1)/(\2))", s)
        if s2 == s:
            break
        s = s2
    s = s.replace("{", "(").replace("}", ")")
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s)  # thousands separators: 1,000 -> 1000
    # A sentence-ending period is no decimal point: "... is 5. 2 + 3 = 5" holds two runs.
    return re.sub(r"\.(?=\s|$)", ";", s)


@dataclass(frozen=True)
class Equation:
    text: str  # as written, e.g. "210 + 91 = 300"
    lhs: str
    rhs: str
    holds: bool
    lhs_value: str  # exact value of the left side, e.g. "301"
    position: int  # offset of the run in the plain text (for sentence context)


def _attached(plain: str, start: int, end: int) -> bool:
    """True when the run touches a letter or a backslash: part of `2x + 3 = 11`, not numbers."""
    before = plain[start - 1] if start > 0 else " "
    after = plain[end] if end < len(plain) else " "
    return before.isalpha() or before in "\\_" or after.isalpha() or after in "\\_"


@lru_cache(maxsize=4096)
def _evaluate(expr: str) -> Fraction | None:
    """Exact value of a +-*/^ expression of numbers, or None. sympy parses; nothing is
    evaluated until the exponents are known to be small."""
    from sympy import Integer, Pow, Rational, nsimplify, preorder_traversal
    from sympy.parsing.sympy_parser import parse_expr, rationalize, standard_transformations

    expr = expr.strip().replace("^", "**")
    if not expr or not re.search(r"\d", expr) or expr.count("(") != expr.count(")"):
        return None
    try:
        tree = parse_expr(expr, transformations=standard_transformations + (rationalize,), evaluate=False)
        for node in preorder_traversal(tree):
            if isinstance(node, Pow) and (
                not node.args[1].is_number or abs(float(node.args[1])) > _MAX_EXPONENT
            ):
                return None
        value = nsimplify(tree.doit(), rational=True)
    except Exception:  # anything sympy cannot read exactly is simply not checked
        return None
    if not (value.is_Rational or isinstance(value, (Integer, Rational))) or value.is_zero is None:
        return None
    return Fraction(int(value.p), int(value.q))


def _display(part: str) -> str:
    """`((10 * 11)/(2))` (from \\frac) shown as `10*11/2`; plain parts as written."""
    if "((" not in part:
        return part
    from sympy.parsing.sympy_parser import parse_expr

    try:
        return str(parse_expr(part.replace("^", "**"), evaluate=False))
    except Exception:
        return part


def _fmt(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator} ≈ {float(value):.6g}"


def _sides_equal(a: Fraction, b: Fraction, a_text: str, b_text: str) -> bool:
    if a == b:
        return True
    # "10/3 = 3.33": a decimal literal equals the other side rounded to its places.
    for value, literal in ((a, b_text), (b, a_text)):
        m = _NUMBER_RE.match(literal)
        if m and m.group(1):
            places = len(m.group(1))
            if abs(float(value) - float(literal)) <= 0.5 * 10**-places + 1e-12:
                return True
    return False


def find_equations(text: str) -> list[Equation]:
    """Purely numeric equations (chains allowed: `a = b = c`) in a step or analysis."""
    plain = _to_plain(text or "")
    out: list[Equation] = []
    for m in _RUN_RE.finditer(plain):
        run = m.group(0)
        if "=" not in run:
            continue
        lead = len(run) - len(run.lstrip())
        start, end = m.start() + lead, m.start() + len(run.rstrip())
        core = plain[start:end]
        if _attached(plain, start, end) or core[0] in "=+*/^" or core[-1] in "=+-*/^":
            continue
        if "==" in core or "=>" in core:
            continue
        parts = [p.strip() for p in core.split("=")]
        if len(parts) < 2 or any(not re.search(r"\d", p) for p in parts):
            continue
        values = [_evaluate(p) for p in parts]
        for i in range(len(parts) - 1):
            left, right = values[i], values[i + 1]
            # "1, 2, 3 = 6" is a list, not "3 = 6": one side must compute something.
            if left is None or right is None or not re.search(r"\d\s*[-+*/^]", parts[i] + " " + parts[i + 1]):
                continue
            holds = _sides_equal(left, right, parts[i], parts[i + 1])
            lhs, rhs = _display(parts[i]), _display(parts[i + 1])
            out.append(
                Equation(
                    text=f"{lhs} = {rhs}", lhs=lhs, rhs=rhs, holds=holds, lhs_value=_fmt(left), position=start
                )
            )
    return out


def false_equations(text: str) -> list[Equation]:
    return [e for e in find_equations(text) if not e.holds]


# --- words -----------------------------------------------------------------------

_VERDICT_LINE_RE = re.compile(r"^.*is\s+the\s+step\s+correct.*$", re.IGNORECASE | re.MULTILINE)
_NEG_PHRASE_RE = re.compile(
    r"\b(?:not|isn't|is\s+not|never)\s+(?:entirely\s+|fully\s+|quite\s+)?(?:correct|right|valid|accurate|sound)\b"
    r"|\b(?:incorrect\w*|wrong\w*|erroneous\w*|errors?|mistakes?|mistaken|flawed|invalid|inaccura\w*|false"
    r"|miscalculat\w*)\b",
    re.IGNORECASE,
)
_NEGATION_BEFORE_RE = re.compile(
    r"\b(?:no|not|without|free\s+of|nor|any|neither|never)\s+(?:\w+\s+){0,2}$", re.IGNORECASE
)
_POS_RE = re.compile(r"\b(?:correct|right|valid|accurate|sound)\b", re.IGNORECASE)
_NOT_BEFORE_RE = re.compile(r"\b(?:not|isn't|never)\s+(?:\w+\s+)?$", re.IGNORECASE)
_REFUTE_RE = re.compile(
    r"\b(?:incorrect|wrong|error|mistake|should\s+be|instead|actually|not|isn't|false)\b|≠|\\neq?",
    re.IGNORECASE,
)
_STEP_REF_RE = re.compile(r"\bstep\s+(\d{1,3})\b", re.IGNORECASE)


def _negative_phrases(text: str) -> list[str]:
    found = []
    for m in _NEG_PHRASE_RE.finditer(text):
        word = m.group(0)
        if not word.lower().startswith(("not", "isn't", "is not", "never")):
            # "no errors", "without mistakes", "free of error": negated negatives.
            if _NEGATION_BEFORE_RE.search(text[max(0, m.start() - 40) : m.start()]):
                continue
        found.append(word)
    return found


def _positive_phrases(text: str) -> list[str]:
    out = []
    for m in _POS_RE.finditer(text):
        if _NOT_BEFORE_RE.search(text[max(0, m.start() - 20) : m.start()]):
            continue
        out.append(m.group(0))
    return out


def _sentence_at(plain: str, pos: int) -> str:
    """The sentence around `pos` in `_to_plain` text (sentence ends became ';')."""
    start = max(plain.rfind(";", 0, pos), plain.rfind("\n", 0, pos)) + 1
    ends = [i for i in (plain.find(";", pos), plain.find("\n", pos)) if i >= 0]
    return plain[start : min(ends) if ends else len(plain)]


# --- per critique ----------------------------------------------------------------


@dataclass
class CritiqueFacts:
    """What the checks need from one critique, without Django."""

    verdict: str  # yes / no / unparseable
    text: str
    sections: dict
    missing_sections: Sequence[str]
    p_yes: float | None
    now_step_text: str
    now_step_number: int  # 1-based
    sibling_verdicts: Sequence[str] = ()  # the other samples for the same (run, step)
    format_problem: str = ""


def _step_equation_signal(facts: CritiqueFacts, step_equations: list[Equation]) -> Signal | None:
    bad = [e for e in step_equations if not e.holds]
    if not bad or facts.verdict != "yes":
        return None
    first = bad[0]
    return Signal(
        "yes_on_false_equation",
        1.0,
        f"The Now Step says {first.text}, but {first.lhs} = {first.lhs_value}; the verdict is Yes.",
        {"equations": [{"equation": e.text, "lhs_value": e.lhs_value} for e in bad]},
    )


def _calculation_claim_signal(facts: CritiqueFacts) -> Signal | None:
    calc = facts.sections.get("calculation_analysis") or ""
    if not calc:
        return None
    plain = _to_plain(calc)
    claimed = []
    for eq in find_equations(calc):
        if eq.holds:
            continue
        # An equation quoted to refute it ("300 is incorrect, it should be 301") is no claim.
        if _REFUTE_RE.search(_sentence_at(plain, eq.position)):
            continue
        claimed.append(eq)
    if not claimed:
        return None
    first = claimed[0]
    return Signal(
        "false_calculation_claim",
        1.0,
        f"The calculation analysis asserts {first.text}, but {first.lhs} = {first.lhs_value}.",
        {"equations": [{"equation": e.text, "lhs_value": e.lhs_value} for e in claimed]},
    )


def _conclusion_signal(facts: CritiqueFacts) -> Signal | None:
    conclusion = _VERDICT_LINE_RE.sub(" ", facts.sections.get("conclusion") or "")
    if not conclusion.strip() or facts.verdict not in ("yes", "no"):
        return None
    negatives = _negative_phrases(conclusion)
    if facts.verdict == "yes" and negatives:
        return Signal(
            "conclusion_contradicts_verdict",
            1.0,
            f"The conclusion says \u201c{negatives[0]}\u201d but the verdict is Yes.",
            {"phrases": negatives[:5], "verdict": "yes", "conclusion": conclusion.strip()[:300]},
        )
    if facts.verdict == "no" and not negatives:
        positives = _positive_phrases(conclusion)
        if positives:
            return Signal(
                "conclusion_contradicts_verdict",
                0.8,
                f"The conclusion says \u201c{positives[0]}\u201d and names no error, but the verdict is No.",
                {"phrases": positives[:5], "verdict": "no", "conclusion": conclusion.strip()[:300]},
            )
    return None


def _phantom_signal(facts: CritiqueFacts) -> Signal | None:
    text = _VERDICT_LINE_RE.sub(" ", facts.text or "")
    refs = sorted({int(n) for n in _STEP_REF_RE.findall(text)})
    bad = [n for n in refs if n < 1 or n > facts.now_step_number]
    if not bad:
        return None
    return Signal(
        "phantom_step_reference",
        1.0,
        f"Mentions Step {bad[0]}, but the prompt showed Steps 1\u2013{facts.now_step_number}.",
        {"referenced": bad, "visible_steps": facts.now_step_number},
    )


def _missing_signal(facts: CritiqueFacts) -> Signal | None:
    missing = list(facts.missing_sections or [])
    if not missing:
        return None
    names = [m.replace("_", " ") for m in missing]
    return Signal(
        "missing_sections", min(1.0, len(missing) / 3), f"Missing: {', '.join(names)}.", {"missing": missing}
    )


def _p_yes_signals(facts: CritiqueFacts) -> list[Signal]:
    p = facts.p_yes
    if p is None or not math.isfinite(p):
        return []
    out = []
    distance = abs(p - 0.5)
    if distance < P_YES_BAND:
        out.append(
            Signal(
                "p_yes_uncertain",
                round(1 - distance / P_YES_BAND, 3),
                f"p(yes) = {p:.3f} is close to 0.5.",
                {"p_yes": round(p, 4)},
            )
        )
    if (facts.verdict == "yes" and p < 0.5 - P_YES_BAND) or (facts.verdict == "no" and p > 0.5 + P_YES_BAND):
        out.append(
            Signal(
                "p_yes_contradicts_verdict",
                1.0,
                f"p(yes) = {p:.3f} but the written verdict is {facts.verdict.capitalize()}.",
                {"p_yes": round(p, 4), "verdict": facts.verdict},
            )
        )
    return out


def _disagreement_signal(facts: CritiqueFacts) -> Signal | None:
    verdicts = [facts.verdict, *facts.sibling_verdicts]
    counts = Counter(v for v in verdicts if v in ("yes", "no"))
    if counts["yes"] == 0 or counts["no"] == 0:
        return None
    minority = min(counts["yes"], counts["no"]) / (counts["yes"] + counts["no"])
    return Signal(
        "sample_disagreement",
        round(2 * minority, 3),
        f"{counts['yes']} of {len(verdicts)} samples say Yes, {counts['no']} say No.",
        {"yes": counts["yes"], "no": counts["no"], "samples": len(verdicts)},
    )


def audit_facts(facts: CritiqueFacts, step_equations: list[Equation] | None = None) -> list[Signal]:
    """All signals for one critique (pure function)."""
    if step_equations is None:
        step_equations = find_equations(facts.now_step_text)
    signals: list[Signal | None] = [
        _step_equation_signal(facts, step_equations),
        _calculation_claim_signal(facts),
        _conclusion_signal(facts),
        _phantom_signal(facts),
        _disagreement_signal(facts),
        _missing_signal(facts),
        *_p_yes_signals(facts),
    ]
    if facts.verdict == "unparseable":
        signals.append(
            Signal(
                "unparseable",
                1.0,
                f"Verdict unparseable: {facts.format_problem or 'no verdict'}.",
                {"problem": facts.format_problem},
            )
        )
    found = [s for s in signals if s is not None]
    return sorted(found, key=lambda s: -s.weight * s.strength)


# --- Django shell ----------------------------------------------------------------


def _run_critiques(run: GenerationRun, *, only_missing: bool) -> QuerySet[Critique]:
    """The run's critiques to audit, with just the fields the checks read."""
    # Gold copies (review/gold.py) are audited when served, never as the run's samples.
    critiques = (
        Critique.objects.filter(run=run, gold_copy=False)
        .select_related("step")
        .only(
            "id",
            "step_id",
            "step__text",
            "step__index",
            "verdict",
            "text",
            "sections",
            "missing_sections",
            "p_yes",
            "format_problem",
        )
        .order_by("step_id", "sample_index")
    )
    if only_missing:
        critiques = critiques.exclude(audit__version=AUDIT_VERSION)
    return critiques


def _save_audits(pending: list[CritiqueAudit]) -> None:
    """Upsert a batch of audits and sync their review items' suspicion / flagged."""
    with transaction.atomic():
        CritiqueAudit.objects.bulk_create(
            pending,
            update_conflicts=True,
            unique_fields=["critique"],
            update_fields=["signals", "suspicion", "version", "computed_at"],
            batch_size=1000,
        )
        ids = [a.critique_id for a in pending]
        ensure_review_items(ids, {a.critique_id: a.suspicion for a in pending})
        # Items that already existed (a re-audit) take the new score in one UPDATE.
        audit = CritiqueAudit.objects.filter(critique_id=OuterRef("critique_id"))
        ReviewItem.objects.filter(critique_id__in=ids).update(
            suspicion=Subquery(audit.values("suspicion")[:1]),
            flagged=Exists(audit.filter(suspicion__gte=FLAG_THRESHOLD)),
        )


def critique_facts(c: Critique, sibling_verdicts: list[str]) -> CritiqueFacts:
    """What the checks read of a stored critique (its step loaded)."""
    return CritiqueFacts(
        verdict=c.verdict,
        text=c.text,
        sections=c.sections or {},
        missing_sections=c.missing_sections or [],
        p_yes=c.p_yes,
        now_step_text=c.step.text,
        now_step_number=c.step.index + 1,
        sibling_verdicts=sibling_verdicts,
        format_problem=c.format_problem,
    )


def audit_run(
    run_id: int,
    *,
    batch: int = 2000,
    progress: Callable[[int], object] | None = None,
    only_missing: bool = False,
) -> dict[str, int]:
    """Compute (or recompute) the audit of every critique of a run and sync its review items.

    Idempotent: audits are upserted, review items created once (their review state is
    never touched, only suspicion / flagged). Step equations are checked once per step.
    `only_missing`: skip critiques already audited by this AUDIT_VERSION (the automatic
    audit of a finished run: one audit per critique and version, however often it is queued).
    """
    run = GenerationRun.objects.get(id=run_id)
    verdicts: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for cid, sid, verdict in Critique.objects.filter(run=run, gold_copy=False).values_list(
        "id", "step_id", "verdict"
    ):
        verdicts[sid].append((cid, verdict))
    now = timezone.now()
    totals: Counter[str] = Counter()
    step_eqs: dict[int, list[Equation]] = {}
    pending: list[CritiqueAudit] = []
    for c in _run_critiques(run, only_missing=only_missing).iterator(chunk_size=batch):
        if c.step_id not in step_eqs:
            step_eqs[c.step_id] = find_equations(c.step.text)
        siblings = [v for cid, v in verdicts[c.step_id] if cid != c.id]
        signals = audit_facts(critique_facts(c, siblings), step_eqs[c.step_id])
        score = suspicion(signals)
        totals["critiques"] += 1
        totals["flagged"] += score >= FLAG_THRESHOLD
        for s in signals:
            totals[s.kind] += 1
        pending.append(
            CritiqueAudit(
                critique_id=c.id,
                signals=[s.as_json() for s in signals],
                suspicion=score,
                version=AUDIT_VERSION,
                computed_at=now,
            )
        )
        if len(pending) >= batch:
            _save_audits(pending)
            pending.clear()
            if progress:
                progress(totals["critiques"])
    if pending:
        _save_audits(pending)
    return dict(totals)
