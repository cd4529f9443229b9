"""The bad-input corpus (issue 13): hostile or broken files, each with the exact message.

Every case writes its file into the test's tmp folder and names the limits it runs
under (settings overrides: small caps stand in for a real 2 GiB line). The same
corpus goes through the reader, `manage.py import_dataset`, the import job and the web
upload; each must fail with the message and write nothing.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.annotations.factories_files import generic_row, write_json_array, write_jsonl


@dataclass
class Case:
    id: str
    write: Callable[[Path], Path]
    message: str  # the whole error after the file name ("re:" + a pattern where it varies)
    settings: dict[str, int] = field(default_factory=dict)


def _line(path: Path, text: bytes) -> Path:
    path.write_bytes(text + b"\n")
    return path


def _generic(path: Path, meta_json: str, **over: str) -> Path:
    """A generic record whose metadata (or another field) is raw JSON text."""
    row = json.dumps(generic_row("r1") | {"metadata": {}} | {k: "@" + k for k in over})
    row = row.replace('"metadata": {}', f'"metadata": {meta_json}')
    for k, raw in over.items():
        row = row.replace(f'"@{k}"', raw)
    return _line(path, row.encode())


def gzip_bomb(path: Path) -> Path:
    # ~64 MiB of one line in a file of ~64 KB: refused at the line cap, read no further.
    target = path / "bomb.jsonl.gz"
    with gzip.open(target, "wb", compresslevel=1) as f:
        f.write(b'{"id": "a", "question": "')
        chunk = b"x" * (1 << 20)
        for _ in range(64):
            f.write(chunk)
        f.write(b'"}\n')
    return target


def ratio_bomb(path: Path) -> Path:
    # Many short lines: no line is long, but the whole expands far past 100:1.
    target = path / "ratio.jsonl.gz"
    line = (json.dumps(generic_row("x")) + "\n").encode()
    with gzip.open(target, "wb", compresslevel=9) as f:
        f.write(line * 60_000)
    return target


def deep(path: Path) -> Path:
    return _generic(path / "deep.jsonl", "[" * 100_000 + "]" * 100_000)


def array_with_invalid_utf8(path: Path) -> Path:
    rows = [generic_row(f"r{i}") for i in range(5)]
    rows[3]["steps"][1] = "caf@"
    target = write_json_array(path / "bad-utf8.json", rows)
    target.write_bytes(target.read_bytes().replace(b"caf@", b"caf\xff"))
    return target


def long_record(path: Path) -> Path:
    rows = [generic_row("r0"), generic_row("r1", question="y" * 5_000)]
    return write_json_array(path / "long.json", rows)


CASES = [
    Case(
        "gzip-bomb-line",
        gzip_bomb,
        "line 1: the line is longer than 1 MiB (IMPORT_MAX_RECORD_BYTES)",
        {"IMPORT_MAX_RECORD_BYTES": 1 << 20},
    ),
    Case(
        "gzip-ratio",
        ratio_bomb,
        r"re:line \d+: the file expands more than 5:1 when decompressed \(.* became .*; "
        r"IMPORT_MAX_DECOMPRESSION_RATIO\)",
        {"IMPORT_MAX_DECOMPRESSION_RATIO": 5, "IMPORT_RATIO_FLOOR_BYTES": 4096},
    ),
    Case("deep-nesting", deep, "line 1: field 'metadata': nested deeper than 64 levels"),
    Case(
        "huge-integer",
        lambda p: _generic(p / "int.jsonl", '{"n": ' + "9" * 10_000 + "}"),
        "line 1: field 'metadata.n': an integer with 10,000 digits (the limit is 100)",
    ),
    Case(
        "nan",
        lambda p: _generic(p / "nan.jsonl", '{"score": NaN}'),
        "line 1: field 'metadata.score': NaN is not a number JSON allows",
    ),
    Case(
        "1e999",
        lambda p: _generic(p / "inf.jsonl", '{"scores": [0.5, 1e999]}'),
        "line 1: field 'metadata.scores[1]': the number 1e999 is out of range (not finite)",
    ),
    Case(
        "lone-surrogate",
        lambda p: _generic(p / "surrogate.jsonl", "{}", question='"What is \\ud800?"'),
        "line 1: field 'question': contains a lone surrogate \\ud800, which is not valid Unicode",
    ),
    Case(
        "invalid-utf8-in-array",
        array_with_invalid_utf8,
        "record 3: field 'steps[1]': is not valid UTF-8 (byte 0xff)",
    ),
    Case(
        "record-over-limit",
        long_record,
        "record 1: the record is longer than 4,096 bytes (IMPORT_MAX_RECORD_BYTES; it starts at line 13)",
        {"IMPORT_MAX_RECORD_BYTES": 4096},
    ),
]


def check(case: Case, path: Path, error: str) -> None:
    """`error` is the case's message for the file at `path`."""
    import re

    prefix = f"{path.name}: "
    assert error.startswith(prefix), error
    if case.message.startswith("re:"):
        assert re.fullmatch(case.message[3:], error[len(prefix) :]), error
    else:
        assert error[len(prefix) :] == case.message


def valid_generic(path: Path, n: int = 3) -> Path:
    return write_jsonl(path, [generic_row(f"ok{i}") for i in range(n)])
