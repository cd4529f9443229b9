"""The one error type a bad input file raises: it names the file, the place and the field."""

from __future__ import annotations

from typing import Any


def show(value: Any, limit: int = 60) -> str:
    """A short, unambiguous rendering of an offending value for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ImportValidationError(ValueError):
    """Bad input: `file: line 12: field 'label': expected ..., got 'x'`.

    `location` is `line N` (1-based, JSONL) or `record N` (0-based index in a JSON
    array, matching ids such as ProcessBench's `gsm8k-17`), or empty for file-level problems.
    """

    def __init__(self, file: str, location: str, field: str | None, message: str) -> None:
        self.file = file
        self.location = location
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [self.file]
        if self.location:
            parts.append(self.location)
        if self.field:
            parts.append(f"field '{self.field}'")
        parts.append(self.message)
        return ": ".join(parts)
