"""Final-answer extraction and equivalence for math solutions.

:func:`extract_answer` pulls the final answer out of a solution, :func:`normalize_answer`
removes presentation noise, and :func:`answers_equal` decides equivalence with
HuggingFace's ``math-verify`` (``parse`` + ``verify``, the checker behind published
Best-of-N numbers): equal normalised strings, else math-verify on the answers.

math-verify's own timeouts use ``signal.alarm``, which fails outside the main thread
(Celery thread pools, the web server's threads) and would steal SIGALRM from the
worker. They are switched off; instead answers are length-capped, and any power,
factorial or binomial too large to evaluate quickly is refused before it is computed.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

__all__ = ["extract_answer", "normalize_answer", "answers_equal"]

# ------------------------------------------------------------------ extraction


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}``, nested braces included."""
    starts = [m for m in re.finditer(r"\\(?:boxed|fbox)\s*", text)]
    for m in reversed(starts):
        i = m.end()
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        return text[i + 1 : j].strip()
            continue  # unbalanced: try an earlier one
        # "\boxed 5": the argument runs to the next "$" or end of line.
        arg = re.match(r"[^\s$]+", text[i:])
        if arg:
            return arg.group(0)
    return None


_ANSWER_IS = re.compile(r"(?:final\s+)?answer\s+is\s*:?\s*", re.IGNORECASE)
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|-?\.\d+")


def extract_answer(text: str | None) -> str | None:
    """The final answer of a solution, or None.

    In order: the last ``\\boxed{...}`` (nested braces kept); the GSM8K marker
    ``#### X``; the last "The (final) answer is X" (to the end of its line, a
    trailing period dropped); else the last number in the text.
    """
    if not text:
        return None
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed
    hashes: list[str] = re.findall(r"^\s*####\s*(.+?)\s*$", text, re.MULTILINE)
    if hashes:
        return hashes[-1]
    said = list(_ANSWER_IS.finditer(text))
    if said:
        rest = text[said[-1].end() :].split("\n", 1)[0].strip()
        rest = re.sub(r"\.\s*$", "", rest).strip()
        if rest:
            return rest
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


# ------------------------------------------------------------------ normalisation

_UNITS = (
    "units?|square|sq|cubic|cm|mm|km|m|meters?|metres?|centimeters?|kilometers?|inch(?:es)?|in|feet|foot|ft|"
    "yards?|miles?|mph|kg|g|grams?|kilograms?|pounds?|lbs?|ounces?|oz|liters?|litres?|ml|l|gallons?|"
    "seconds?|secs?|s|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?|"
    "dollars?|cents?|euros?|degrees?|points?|people|persons?|students?|apples?|items?|times"
)
_TRAILING_UNIT = re.compile(rf"(?:\s*(?:{_UNITS})(?:\^\{{?\d\}}?)?\.?)$", re.IGNORECASE)
_SPACING = re.compile(r"\\[!,;: ]|\\q?quad\b|~|\\displaystyle\b")


def _unwrap(s: str, command: str) -> str:
    """Replace ``\\command{X}`` by X (nested braces kept)."""
    pattern = re.compile(rf"\\{command}\s*\{{")
    while True:
        m = pattern.search(s)
        if not m:
            return s
        depth, j = 1, m.end()
        while j < len(s) and depth:
            depth += {"{": 1, "}": -1}.get(s[j], 0)
            j += 1
        if depth:
            return s
        s = s[: m.start()] + s[m.end() : j - 1] + s[j:]


def normalize_answer(answer: str | None) -> str:
    """Presentation noise removed: the string that two equal answers should share.

    Drops ``$``, ``\\left``/``\\right``, LaTeX spacing, ``\\text{}``-style wrappers
    (content kept), trailing unit words, degree and percent signs, thousands
    separators (only when the whole answer is one number), ``x =`` in front of a
    value, a trailing period, and all whitespace; ``\\dfrac``/``\\tfrac`` become
    ``\\frac``; ``(B)`` becomes ``B``; ``.5`` becomes ``0.5``.
    """
    if answer is None:
        return ""
    s = str(answer).strip()
    if "\\boxed" in s or "\\fbox" in s:
        s = _last_boxed(s) or s
    s = s.replace("\u2212", "-").replace("\\$", "").replace("$", "")
    s = re.sub(r"\\(?:left|right)\b\s*", "", s)
    s = _SPACING.sub(" ", s)
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    for cmd in ("text", "textbf", "textit", "mbox", "mathrm", "mathbf", "operatorname"):
        s = _unwrap(s, cmd)
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree\b", "", s)
    s = re.sub(r"\\?%", "", s)
    s = s.strip()
    # Unit words only go when a number stays behind ("5 cm" -> "5", "cm" stays).
    while True:
        cut = _TRAILING_UNIT.sub("", s).strip()
        if cut == s or not re.search(r"\d", cut):
            break
        s = cut
    s = re.sub(r"\.\s*$", "", s).strip()
    m = re.fullmatch(r"[a-zA-Z]\s*=\s*([^=]+)", s)
    if m:
        s = m.group(1).strip()
    s = re.sub(r"\s+", "", s)
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "")
    m = re.fullmatch(r"\(([A-Ea-e])\)", s)
    if m:
        s = m.group(1).upper()
    s = re.sub(r"^(-?)\.(\d)", r"\g<1>0.\2", s)
    return s


# ------------------------------------------------------------------ equivalence (math-verify)

_MAX_LEN = 200
_MAX_EXPONENT = 100
_MAX_DIGITS = 1000
_MAX_FACTORIAL = 1000
_BINOMIAL = re.compile(r"\\[dt]?binom|\\choose")
# math-verify warns once that its timeout is off: that is deliberate here (see above).
logging.getLogger("math_verify").setLevel(logging.ERROR)


def _too_large(expr: Any) -> bool:
    """Whether a parsed answer holds a power, factorial or binomial sympy could spend minutes on."""
    from sympy import Basic, Pow, gamma, preorder_traversal
    from sympy.functions.combinatorial.factorials import CombinatorialFunction

    if not isinstance(expr, Basic):
        return False
    for node in preorder_traversal(expr):
        # (10^99)! or \binom{10^6}{5000}: exact values sympy would compute digit by digit.
        if isinstance(node, CombinatorialFunction | gamma) and any(
            a.is_number and _magnitude(a) > _MAX_FACTORIAL for a in node.args
        ):
            return True
        if isinstance(node, Pow) and node.exp.is_number:
            try:
                e = abs(complex(node.exp.evalf(15)))
                b = abs(complex(node.base.evalf(15))) if node.base.is_number else 0.0
            except (TypeError, ValueError, OverflowError):
                return True
            if not math.isfinite(e) or e > _MAX_EXPONENT or (b > 1 and e * math.log10(b) > _MAX_DIGITS):
                return True
    return False


def _magnitude(number: Any) -> float:
    try:
        return abs(complex(number.evalf(15)))
    except (TypeError, ValueError, OverflowError):
        return math.inf


def _parsed(answer: str) -> list[Any]:
    """math-verify readings of one bare answer (boxed, so its LaTeX extractor takes it whole)."""
    from math_verify import parse

    if not answer or len(answer) > _MAX_LEN:
        return []
    if _BINOMIAL.search(answer) and re.search(r"\d{5,}", answer):
        return []  # parse itself evaluates binomials: C(10^6, 5*10^5) took minutes
    readings: list[Any] = parse(f"\\boxed{{{answer}}}", parsing_timeout=None)
    if any(_too_large(r) for r in readings):
        return []
    return readings


def answers_equal(a: str | None, b: str | None) -> bool:
    """Whether answer ``a`` is the same as reference ``b``, as strings or as mathematics.

    Equal when the normalised strings match, else when math-verify's ``verify``
    (reference as gold) accepts the raw or the normalised answer: fractions against
    decimals (rounded to 6 places, so 0.33 != 1/3), roots, intervals with their
    brackets, tuples in order, bare lists as sets, percent, LaTeX units, and
    GSM8K money (``\\$1,000`` == ``1000``) through the normalisation.
    """
    if a is None or b is None:
        return False
    na, nb = normalize_answer(a), normalize_answer(b)
    if not na or not nb:
        return False
    if na == nb:
        return True
    from math_verify import verify

    golds = [g for g in (_parsed(str(b).strip()), _parsed(nb)) if g]
    targets = [t for t in (_parsed(str(a).strip()), _parsed(na)) if t]
    return any(verify(g, t, timeout_seconds=None) for g in golds for t in targets)
