"""Dataset importers: streaming readers and one parser per format (plain Python).

    reader, parser = open_source("prm800k_phase2.jsonl.gz", options={"rating0": "neutral"})
    for solution in parser.parse(reader): ...

`annotations.actions.import_file` stores what they yield; docs/formats.md describes
the formats.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .base import ParsedSolution, Parser
from .errors import ImportValidationError
from .generic import GenericParser
from .limits import Limits
from .prm800k import PRM800KParser
from .prmbench import PRMBenchParser
from .processbench import ProcessBenchParser
from .readers import RecordReader, first_record
from .rprm_steps import RPRMStepsParser

# Detection order matters only for records that would match several (none do today).
PARSERS: dict[str, type[Parser]] = {
    p.fmt: p for p in (PRM800KParser, PRMBenchParser, RPRMStepsParser, ProcessBenchParser, GenericParser)
}
FORMATS = tuple(PARSERS)


def parser_class(fmt: str, file_name: str = "options") -> type[Parser]:
    try:
        return PARSERS[fmt]
    except KeyError:
        raise ImportValidationError(
            file_name, "options", "format", f"unknown format {fmt!r} (known: {', '.join(FORMATS)})"
        ) from None


def detect_format(path: str | Path, name: str | None = None, limits: Limits | None = None) -> str:
    """The format of `path`, from its first record's keys (the file name breaks ties)."""
    path = Path(path)
    loc, record = first_record(path, name, limits)
    name = name or path.name
    if not isinstance(record, dict):
        raise ImportValidationError(name, loc, None, "expected a JSON object, cannot detect the format")
    matching = [fmt for fmt, cls in PARSERS.items() if cls.matches(record)]
    if not matching:
        keys = ", ".join(sorted(record)[:12])
        raise ImportValidationError(
            name,
            loc,
            None,
            f"cannot detect the format from the keys ({keys}); choose one of {', '.join(FORMATS)}",
        )
    lowered = name.lower().replace("-", "").replace("_", "")
    for fmt in matching:
        if fmt.replace("_", "") in lowered:
            return fmt
    return matching[0]


def open_source(
    path: str | Path,
    fmt: str | None = None,
    options: dict[str, Any] | None = None,
    name: str | None = None,
    limits: Limits | None = None,
) -> tuple[RecordReader, Parser]:
    """A reader over the file and the parser for its format (detected when `fmt` is None)."""
    reader = RecordReader(path, name, limits)
    cls = parser_class(fmt or detect_format(reader.path, reader.name, limits), reader.name)
    return reader, cls(reader.name, options)


def parse_file(
    path: str | Path,
    fmt: str | None = None,
    options: dict[str, Any] | None = None,
    limits: Limits | None = None,
) -> Iterator[ParsedSolution]:
    """Every solution in the file, validated; no database needed."""
    reader, parser = open_source(path, fmt, options, limits=limits)
    with reader:
        yield from parser.parse(reader)
