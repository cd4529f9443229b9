"""Final-answer extraction and equivalence for math solutions.

:func:`extract_answer` pulls the final answer out of a solution, :func:`normalize_answer`
removes presentation noise, and :func:`answers_equal` decides equivalence: equal
normalised strings, else mathematical equality of the two expressions in sympy.

LaTeX goes to sympy through a small recursive-descent parser written here (numbers,
single-letter variables, + - * / ^, implicit multiplication, parentheses and braces,
``\\frac``/``\\dfrac``/``\\tfrac``, ``\\sqrt``/``\\sqrt[n]``, ``\\pi``, ``\\infty``,
``\\cdot``/``\\times``/``\\div``). Nothing is ever ``eval``-ed and no sympy string
parser is used, so answer text cannot run code; inputs are length-capped and
numeric exponents bounded, so no timeout is needed. Anything the parser does not
know is compared as a normalised string only.
"""

from __future__ import annotations

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
    hashes = re.findall(r"^\s*####\s*(.+?)\s*$", text, re.MULTILINE)
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


# ------------------------------------------------------------------ LaTeX -> sympy

_MAX_LEN = 200
_MAX_EXPONENT = 100
_MAX_DIGITS = 1000
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?|\.\d+)|(\\[a-zA-Z]+)|([a-zA-Z])|([-+*/^(){}\[\]]))")
_PRIMARY_CMDS = {"\\frac", "\\sqrt", "\\pi", "\\infty"}
_MUL_CMDS = {"\\cdot", "\\times"}


class _ParseError(ValueError):
    pass


class _Parser:
    """Recursive descent over a token list; builds sympy objects directly."""

    def __init__(self, text: str, sp: Any) -> None:
        self.sp = sp
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise _ParseError(f"unexpected {text[pos:]!r}")
            pos = m.end()
            num, cmd, letter, op = m.groups()
            if num is not None:
                self.tokens.append(("num", num))
            elif cmd is not None:
                if cmd in ("\\left", "\\right"):
                    continue
                self.tokens.append(("cmd", cmd))
            elif letter is not None:
                self.tokens.append(("var", letter))
            elif op is not None:
                self.tokens.append(("op", op))
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise _ParseError("unexpected end")
        self.i += 1
        return tok

    def expect(self, op: str) -> None:
        if self.take() != ("op", op):
            raise _ParseError(f"expected {op!r}")

    def parse(self) -> Any:
        expr = self.expr()
        if self.peek() is not None:
            raise _ParseError(f"trailing {self.peek()!r}")
        return expr

    def expr(self) -> Any:
        value = self.term()
        while (tok := self.peek()) in (("op", "+"), ("op", "-")):
            self.take()
            rhs = self.term()
            value = value + rhs if tok[1] == "+" else value - rhs
        return value

    def _starts_primary(self, tok: tuple[str, str] | None) -> bool:
        if tok is None:
            return False
        kind, val = tok
        return (
            kind in ("num", "var")
            or (kind == "cmd" and val in _PRIMARY_CMDS)
            or tok in (("op", "("), ("op", "{"))
        )

    def term(self) -> Any:
        value = self.unary()
        while True:
            tok = self.peek()
            if tok in (("op", "*"), ("op", "/")) or (
                tok and tok[0] == "cmd" and tok[1] in _MUL_CMDS | {"\\div"}
            ):
                self.take()
                rhs = self.unary()
                value = value / rhs if tok[1] in ("/", "\\div") else value * rhs
            elif self._starts_primary(tok):  # implicit product: 2\pi, 3x, 2(x+1)
                value = value * self.power()
            else:
                return value

    def unary(self) -> Any:
        tok = self.peek()
        if tok in (("op", "-"), ("op", "+")):
            self.take()
            operand = self.unary()
            return -operand if tok[1] == "-" else operand
        return self.power()

    def power(self) -> Any:
        base = self.primary()
        if self.peek() == ("op", "^"):
            self.take()
            if self.peek() == ("op", "-"):
                self.take()
                exponent = -self.argument()
            else:
                exponent = self.argument()
            if exponent.is_number:
                self._check_size(base, exponent)
            return self.sp.Pow(base, exponent)
        return base

    def _check_size(self, base: Any, exponent: Any) -> None:
        # Bounded numbers keep sympy fast: no exponent beyond 100 in size, no power
        # of a number beyond ~1000 digits (nested powers would otherwise explode).
        try:
            e = abs(complex(exponent.evalf(15)))
            b = abs(complex(base.evalf(15))) if base.is_number else 0.0
        except (TypeError, ValueError, OverflowError) as exc:
            raise _ParseError("number too large") from exc
        if not math.isfinite(e) or e > _MAX_EXPONENT or (b > 1 and e * math.log10(b) > _MAX_DIGITS):
            raise _ParseError("power too large")

    def argument(self) -> Any:
        """A LaTeX macro argument: ``{...}`` or one character (``\\frac12`` is 1/2)."""
        tok = self.peek()
        if tok == ("op", "{"):
            self.take()
            value = self.expr()
            self.expect("}")
            return value
        if tok and tok[0] == "num" and len(tok[1]) > 1:
            if not tok[1][0].isdigit():
                raise _ParseError(f"bad argument {tok[1]!r}")
            # Only the first character is the argument; leave the rest in place.
            self.tokens[self.i] = ("num", tok[1][1:])
            return self.sp.Integer(int(tok[1][0]))
        return self.primary()

    def primary(self) -> Any:
        sp = self.sp
        kind, val = self.take()
        if kind == "num":
            if len(val) > 50:
                raise _ParseError("number too long")
            return sp.Rational(val) if "." in val else sp.Integer(val)
        if kind == "var":
            return sp.Symbol(val)
        if kind == "op" and val in "({":
            inner = self.expr()
            self.expect(")" if val == "(" else "}")
            return inner
        if kind == "cmd":
            if val == "\\pi":
                return sp.pi
            if val == "\\infty":
                return sp.oo
            if val == "\\frac":
                num = self.argument()
                den = self.argument()
                return num / den
            if val == "\\sqrt":
                if self.peek() == ("op", "["):
                    self.take()
                    index = self.expr()
                    self.expect("]")
                    return sp.root(self.argument(), index)
                return sp.sqrt(self.argument())
        raise _ParseError(f"unsupported {val!r}")


def _to_sympy(s: str) -> Any | None:
    """A sympy expression for a normalised answer, or None when outside the grammar."""
    if not s or len(s) > _MAX_LEN:
        return None
    # Words are not algebra: "Monday" must not become M*o*n*d*a*y.
    if re.search(r"(?<![\\a-zA-Z])[a-zA-Z]{3,}", s):
        return None
    import sympy

    try:
        expr = _Parser(s, sympy).parse()
    except (_ParseError, ZeroDivisionError, ValueError, TypeError):
        return None
    if expr.has(sympy.zoo, sympy.nan):
        return None
    return expr


def _sympy_equal(x: Any, y: Any) -> bool:
    import sympy

    if x == y:
        return True
    try:
        diff = sympy.simplify(x - y)
        if diff == 0:
            return True
        if not diff.free_symbols:
            dx, dy = complex(sympy.N(x - y, 30)), complex(sympy.N(y, 30))
            return abs(dx) <= 1e-9 * max(1.0, abs(dy))
    except (TypeError, ValueError, ArithmeticError):
        return False
    return False


# ------------------------------------------------------------------ equivalence


def _split_top(s: str) -> tuple[str, list[str]]:
    """Outer brackets and the top-level comma-separated parts of ``s``."""
    brackets = ""
    if len(s) >= 2 and s[0] in "([{" and s[-1] in ")]}":
        depth = 0
        for i, ch in enumerate(s):
            depth += ch in "([{"
            depth -= ch in ")]}"
            if depth == 0 and i < len(s) - 1:
                break
        else:
            brackets, s = s[0] + s[-1], s[1:-1]
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(s):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    parts.append(s[start:])
    return brackets, parts


def _scalar_values(raw: str) -> list[Any]:
    """Sympy readings of one answer: its value, and value/100 if it was a percent."""
    percent = bool(re.search(r"\\?%", raw))
    expr = _to_sympy(normalize_answer(raw))
    if expr is None:
        return []
    return [expr, expr / 100] if percent else [expr]


def _scalar_equal(a: str, b: str) -> bool:
    na, nb = normalize_answer(a), normalize_answer(b)
    if na and na == nb:
        return True
    if na.count("=") == 1 and nb.count("=") == 1:  # equations: side by side
        (la, ra), (lb, rb) = na.split("="), nb.split("=")
        return _scalar_equal(la, lb) and _scalar_equal(ra, rb)
    xs, ys = _scalar_values(a), _scalar_values(b)
    return any(_sympy_equal(x, y) for x in xs for y in ys)


def answers_equal(a: str | None, b: str | None) -> bool:
    """Whether two final answers are the same, as strings or as mathematics.

    Equal when the normalised strings match, else when sympy proves the parsed
    expressions equal (exact rationals for decimals, so 0.5 == 1/2 but
    0.33 != 1/3; a numeric check at relative 1e-9 backs up ``simplify``). A percent
    answer matches both its number and that number / 100 ("50%" == "50" == "0.5").
    Comma-separated answers are compared part by part: in order inside brackets
    (tuples, intervals; the brackets must match), in any order when bare.
    """
    if a is None or b is None:
        return False
    na, nb = normalize_answer(a), normalize_answer(b)
    if not na or not nb:
        return False
    if na == nb:
        return True
    ba, pa = _split_top(na)
    bb, pb = _split_top(nb)
    if len(pa) > 1 or len(pb) > 1:
        if ba != bb or len(pa) != len(pb):
            return False
        if ba:
            return all(_scalar_equal(x, y) for x, y in zip(pa, pb, strict=True))
        remaining = list(pb)
        for x in pa:
            match = next((y for y in remaining if _scalar_equal(x, y)), None)
            if match is None:
                return False
            remaining.remove(match)
        return True
    return _scalar_equal(a, b)
