"""Bounds on what a browser can send: page numbers and upload file names.

A page number is clamped to ``1..MAX_PAGE`` (a huge one used to overflow Postgres's bigint
OFFSET); an upload's name is cut to a length every filesystem and column takes, keeping
its extension (the importers choose a format by it).
"""

from __future__ import annotations

from pathlib import PurePath

MAX_PAGE = 1_000_000
# Stored names get a 33-character uuid prefix; 255 bytes is the usual filesystem limit.
MAX_UPLOAD_NAME_BYTES = 150
MAX_SUFFIX_CHARS = 16


def page_number(value: str | None) -> int:
    """``?page=``: 1 for anything that is not a number, else clamped to ``1..MAX_PAGE``."""
    try:
        number = int(value or 1)
    except ValueError:  # also a string past Python's int digit limit
        return 1
    return max(1, min(MAX_PAGE, number))


def _cut(text: str, max_bytes: int) -> str:
    return text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")


def short_upload_name(name: str) -> str:
    """The upload's base name without NULs or separators, at most ``MAX_UPLOAD_NAME_BYTES``,
    extension kept (``"a" * 300 + ".jsonl"`` -> ``"aaa…a.jsonl"``)."""
    base = PurePath(name.replace("\\", "/")).name.replace("\x00", "").strip() or "upload"
    if len(base.encode("utf-8")) <= MAX_UPLOAD_NAME_BYTES:
        return base
    path = PurePath(base)
    suffix = path.suffix if 1 < len(path.suffix) <= MAX_SUFFIX_CHARS else ""
    stem = base[: len(base) - len(suffix)] if suffix else base
    return _cut(stem, MAX_UPLOAD_NAME_BYTES - len(suffix.encode("utf-8"))) + suffix


MAX_DB_ID = 2**63 - 1  # Postgres bigint


def db_id(value: str) -> int:
    """A primary key from a query string; ``ValueError`` unless it fits a bigint."""
    number = int(value)
    if not 0 < number <= MAX_DB_ID:
        raise ValueError(f"id out of range: {value[:30]!r}")
    return number
