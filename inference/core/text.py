"""Model text made storable: the repair applied wherever model output is kept.

Imports refuse a NUL byte with file, line and field, because a source file is the
user's to fix. Model output is the opposite: it is data to keep, and one odd sample
must not fail a run of thousands. Two kinds of character cannot be stored or sent:

- U+0000 (NUL): PostgreSQL ``text`` and ``jsonb`` refuse it (SQLite accepts it and
  hides the bug);
- lone surrogates U+D800..U+DFFF (what Python makes of invalid UTF-8 read with
  ``surrogateescape``, or of a JSON ``"\\ud800"`` escape): UTF-8 cannot encode them,
  so the database driver and JSON-over-UTF-8 responses fail.

Each is replaced by U+FFFD, the Unicode replacement character, and the caller learns
that a repair happened so the row can carry a flag. Every other character PostgreSQL
accepts in UTF-8 (noncharacters, C0 controls other than NUL, RTL marks) is kept.
Pure Python, no Django.
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

# What backends report when output stopped at the token limit: vLLM and
# OpenAI-compatible servers say "length", our transformers backend does too.
TRUNCATED_FINISH_REASONS = frozenset({"length", "max_tokens"})


def repair_text(text: str | None) -> tuple[str, bool]:
    """(storable text, whether anything was replaced). None becomes ""."""
    if text is None:
        return "", False
    if not isinstance(text, str):
        text = str(text)
    fixed, n = _UNSTORABLE.subn(REPLACEMENT, text)
    return fixed, n > 0


def repair(text: str | None) -> str:
    return repair_text(text)[0]


def repair_json(value: Any) -> tuple[Any, bool]:
    """The same repair through lists, tuples and dicts (keys too), for JSON columns."""
    if isinstance(value, str):
        return repair_text(value)
    if isinstance(value, dict):
        out, any_fixed = {}, False
        for k, v in value.items():
            k2, fk = repair_json(k)
            v2, fv = repair_json(v)
            out[k2] = v2
            any_fixed = any_fixed or fk or fv
        return out, any_fixed
    if isinstance(value, list | tuple):
        items = [repair_json(v) for v in value]
        return type(value)(v for v, _ in items) if isinstance(value, tuple) else [v for v, _ in items], any(
            f for _, f in items
        )
    return value, False


def is_truncated(finish_reason: str | None) -> bool:
    """True when the backend says the output stopped at the token limit."""
    return (finish_reason or "").lower() in TRUNCATED_FINISH_REASONS
