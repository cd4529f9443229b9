"""Limits every reader enforces, and the JSON decoding that enforces them.

Plain Python (no Django): `annotations.actions` builds `Limits` from settings
(`IMPORT_MAX_*`, env-driven). A hostile file must fail with a message naming the file,
the line or record and the field, never with a traceback, a crash or unbounded memory:

- line / record length: checked while reading, before anything is decoded;
- decompressed size and ratio: a small .gz/.zst that expands without bound is stopped early;
- nesting depth, integer digits, non-finite numbers (NaN, Infinity, 1e999), lone
  surrogates and invalid UTF-8: found while decoding, reported with the field's path.

The checks cost almost nothing on ordinary records: the decoder hooks only run for
numbers, and the walk over a decoded value only happens when a cheap scan of the raw
text says a problem is possible.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Limits:
    max_record_bytes: int = 64 << 20  # one JSONL line or one JSON array element
    max_decompressed_bytes: int = 50 << 30
    max_ratio: int = 100  # decompressed / compressed, checked past ratio_floor_bytes
    ratio_floor_bytes: int = 64 << 20
    max_depth: int = 64
    max_int_digits: int = 100


DEFAULT_LIMITS = Limits()


class LimitExceeded(Exception):
    """Raised inside a reader; the reader turns it into an ImportValidationError with the place."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message, self.field = message, field


class _Bad:
    """Stands in for a number the decoder hooks refused, so the walk can name its field."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


# A lone surrogate can only come from a \uD800-\uDFFF escape (valid UTF-8 cannot hold
# one) or, after decoding with surrogateescape, from an invalid UTF-8 byte.
_SURROGATE_ESCAPE_B = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_SURROGATE = re.compile("[\ud800-\udfff]")


# Digits -> "0", "[" and "{" -> "[", everything else -> " ": one C-speed pass gives the
# longest digit run (a substring test) and the number of openers (an upper bound of the depth).
_SHAPE = bytes(ord("0") if 48 <= i <= 57 else ord("[") if i in (91, 123) else 32 for i in range(256))
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _max_depth(text: str) -> int:
    """The deepest nesting of `text`, strings left out; only run when the bracket count
    says the limit could be exceeded (so on ordinary records almost never)."""
    depth = deepest = 0
    for ch in _STRING.sub("", text):
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


class Decoder:
    """`json` with the limits: `loads(bytes)` for a JSON line, `raw_decode(str, pos)` for an
    array element.

    Ordinary records go through the C decoder untouched. The number hooks (which name the
    field of a NaN, an infinity or a huge integer) cost a Python call per number, so they
    only run when a regex over the raw text finds something that could be one.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.flagged = False
        max_digits = limits.max_int_digits
        # A run of digits that may be an integer over the limit (a long number inside a string
        # matches too: then the checked decoder runs, nothing more).
        self._digit_run = b"0" * (min(max_digits, 300) + 1)

        def parse_int(s: str) -> Any:
            if len(s) - (s[0] == "-") > max_digits:
                self.flagged = True
                return _Bad(f"an integer with {len(s.lstrip('-')):,} digits (the limit is {max_digits})")
            try:
                return int(s)
            except ValueError:  # past Python's own limit (sys.set_int_max_str_digits)
                self.flagged = True
                return _Bad(f"an integer with {len(s.lstrip('-')):,} digits (too long to read)")

        def parse_float(s: str) -> Any:
            value = float(s)
            if not math.isfinite(value):
                self.flagged = True
                return _Bad(f"the number {s[:30]} is out of range (not finite)")
            return value

        def parse_constant(s: str) -> Any:
            self.flagged = True
            return _Bad(f"{s} is not a number JSON allows")

        # Floats and NaN/Infinity are rare in step data: their hooks always run. The integer hook
        # (a Python call per integer, and PRM800K has many) only when a long digit run is present.
        self._fast = json.JSONDecoder(parse_float=parse_float, parse_constant=parse_constant)
        self._checked = json.JSONDecoder(
            parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant
        )

    def loads(self, raw: bytes) -> Any:
        """One JSONL line. Raises json.JSONDecodeError for bad syntax, LimitExceeded for the rest."""
        invalid_utf8 = False
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "surrogateescape")
            invalid_utf8 = True
        self.flagged = False
        long_digits, suspicious, deep = self._scan(raw, text)
        try:
            try:
                value = (self._checked if long_digits else self._fast).decode(text)
            except ValueError as exc:
                if isinstance(exc, json.JSONDecodeError):
                    raise
                value = self._checked.decode(text)  # an integer past Python's own digit limit
        except RecursionError:
            raise LimitExceeded(self._too_deep(), _deep_field(text, 0, self.limits.max_depth)) from None
        if self.flagged or suspicious or invalid_utf8 or deep:
            find_problem(value, self.limits.max_depth, invalid_utf8)
        return value

    def _scan(self, raw: bytes, text: str) -> tuple[bool, bool, bool]:
        """(a digit run long enough to be an integer over the limit, a surrogate escape,
        nesting possibly too deep), from C-speed byte operations: a regex with a character
        class first would cost more than the decoding itself."""
        shape = raw.translate(_SHAPE)
        long_digits = self._digit_run in shape
        suspicious = _SURROGATE_ESCAPE_B.search(raw) is not None  # literal-prefixed: fast
        max_depth = self.limits.max_depth
        deep = shape.count(b"[") > max_depth and _max_depth(text) > max_depth
        return long_digits, suspicious, deep

    def raw_decode(self, text: str, pos: int) -> tuple[Any, int]:
        """One JSON array element starting at `pos` (text decoded with surrogateescape)."""
        self.flagged = False
        try:
            try:
                value, end = self._fast.raw_decode(text, pos)
                fast_failed = False
            except ValueError as exc:
                if isinstance(exc, json.JSONDecodeError):
                    raise
                fast_failed = True  # an integer past Python's own digit limit: the checked decoder names it
                value, end = self._checked.raw_decode(text, pos)
            chunk = text[pos:end]
            try:
                raw, invalid_utf8 = chunk.encode("utf-8"), False
            except UnicodeEncodeError:  # a lone surrogate: an invalid byte (surrogateescape)
                raw, invalid_utf8 = chunk.encode("utf-8", "surrogatepass"), True
            long_digits, suspicious, deep = self._scan(raw, chunk)
            if long_digits and not fast_failed:
                value, end = self._checked.raw_decode(text, pos)
        except RecursionError:
            raise LimitExceeded(self._too_deep(), _deep_field(text, pos, self.limits.max_depth)) from None
        if self.flagged or suspicious or invalid_utf8 or deep:
            find_problem(value, self.limits.max_depth, invalid_utf8)
        return value, end

    def _too_deep(self) -> str:
        return f"nested deeper than {self.limits.max_depth} levels"


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}:]')


def _deep_field(text: str, pos: int, max_depth: int) -> str | None:
    """The top-level field holding a structure too deep for the decoder (the error path only)."""
    depth, last_string, key = 0, None, None
    for m in _TOKEN.finditer(text, pos):
        tok = m.group()
        if tok in "[{":
            depth += 1
            if depth > max_depth:
                return key
        elif tok in "]}":
            depth -= 1
        elif tok == ":":
            if depth == 1 and last_string is not None:
                key = last_string[1:-1]
        else:
            last_string = tok
    return key


def _describe_surrogate(text: str, invalid_utf8: bool) -> str:
    ch = _SURROGATE.search(text).group()  # type: ignore[union-attr]
    code = ord(ch)
    if invalid_utf8 and 0xDC80 <= code <= 0xDCFF:
        return f"is not valid UTF-8 (byte 0x{code - 0xDC00:02x})"
    return f"contains a lone surrogate \\u{code:04x}, which is not valid Unicode"


def find_problem(value: Any, max_depth: int, invalid_utf8: bool = False) -> None:
    """Walk a decoded value; raise LimitExceeded naming the first bad field's path."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise LimitExceeded(_describe_surrogate(item, invalid_utf8), path or None)
        elif isinstance(item, _Bad):
            raise LimitExceeded(item.why, path or None)
        elif isinstance(item, dict | list):
            if depth >= max_depth:  # name the top-level field, not a path max_depth long
                top = re.split(r"[.\[]", path, maxsplit=1)[0] if path else ""
                raise LimitExceeded(f"nested deeper than {max_depth} levels", top or None)
            if isinstance(item, dict):
                children = []
                for key, child in item.items():
                    if _SURROGATE.search(key):
                        raise LimitExceeded("key " + _describe_surrogate(key, invalid_utf8), path or None)
                    children.append((child, f"{path}.{key}" if path else key, depth + 1))
            else:
                children = [(child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item)]
            stack.extend(reversed(children))
        elif isinstance(item, float) and not math.isfinite(item):  # e.g. from Parquet
            raise LimitExceeded(f"the number {item} is not finite", path or None)
