"""CSV cells that a spreadsheet cannot execute (OWASP "CSV injection").

Every CSV the app writes goes through :func:`csv_writer`. A text cell that starts with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``, so Excel,
LibreOffice and Sheets show it as text instead of evaluating it (``=HYPERLINK(...)``,
``+cmd|' /C calc'!A0``, a username ``-2+3``). Numbers (``int``, ``float``, ``Decimal``)
are written as numbers: ``-0.5`` in a numeric column is a value, not a formula, and a
prefix would turn it into text. Only ``str`` cells are neutralised, so a number that
arrives as text (``"-0.5"``) is prefixed too: columns that hold numbers must carry them
as numbers.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Protocol

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


def safe_cell(value: Any) -> Any:
    """The value, with a ``'`` before text a spreadsheet would read as a formula."""
    if isinstance(value, bool | int | float | Decimal) or value is None:
        return value
    text = value if isinstance(value, str) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def safe_row(row: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in row]


class SafeWriter:
    """``csv.writer`` whose every row (the header too) goes through :func:`safe_row`."""

    def __init__(self, out: _Writable) -> None:
        self._writer = csv.writer(out)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow(safe_row(row))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(out: _Writable) -> SafeWriter:
    """The one way the app writes CSV."""
    return SafeWriter(out)
