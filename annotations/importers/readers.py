"""Streaming record readers: JSONL and JSON arrays, plain or gzip, in flat memory.

A reader yields `(location, value)` pairs, where location is `line N` (JSONL,
1-based) or `record N` (JSON array, 0-based index), and exposes `bytes_done`
(bytes of the file on disk consumed so far, compressed bytes for .gz) for progress.
Memory stays flat in the file size: JSONL is read line by line, a JSON array is
decoded element by element with `raw_decode` over a sliding buffer.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import ImportValidationError

GZIP_MAGIC = b"\x1f\x8b"
CHUNK_CHARS = 1 << 20
# A JSON array element that still does not decode once this much text is buffered
# is reported as invalid rather than read to the end of the file into memory.
MAX_RECORD_CHARS = 64 << 20
_WS = " \t\n\r"


def display_name(path: Path) -> str:
    return path.name


class RecordReader:
    """Iterate the top-level records of `path`; use as a context manager."""

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or display_name(self.path)
        if not self.path.is_file():
            raise ImportValidationError(self.name, "", None, "no such file")
        self.size = self.path.stat().st_size
        self._raw: IO[bytes] | None = None
        self.compressed, self.layout = self._sniff()

    # -- opening -------------------------------------------------------------
    def _sniff(self) -> tuple[bool, str]:
        with open(self.path, "rb") as raw:
            compressed = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            stream: IO[bytes] = gzip.GzipFile(fileobj=raw) if compressed else raw
            try:
                head = stream.read(64 * 1024)
            except (OSError, EOFError) as exc:
                raise ImportValidationError(self.name, "", None, f"cannot decompress: {exc}") from exc
        head = head.removeprefix(b"\xef\xbb\xbf").lstrip()
        if not head:
            raise ImportValidationError(self.name, "", None, "the file is empty")
        if head[:1] == b"[":
            return compressed, "array"
        if head[:1] == b"{":
            return compressed, "jsonl"
        raise ImportValidationError(
            self.name, "", None, f"expected JSON Lines or a JSON array, file starts with {head[:20]!r}"
        )

    def _open(self) -> IO[bytes]:
        self._raw = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        return gzip.GzipFile(fileobj=self._raw) if self.compressed else self._raw

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()

    def __enter__(self) -> RecordReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def bytes_done(self) -> int:
        try:
            return self._raw.tell() if self._raw is not None and not self._raw.closed else 0
        except (OSError, ValueError):
            return 0

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        stream = self._open()
        try:
            if self.layout == "array":
                yield from self._iter_array(stream)
            else:
                yield from self._iter_jsonl(stream)
        except (OSError, EOFError) as exc:  # truncated or corrupt gzip stream
            raise ImportValidationError(self.name, "", None, f"cannot read the file: {exc}") from exc
        finally:
            self.close()

    # -- JSON Lines ----------------------------------------------------------
    def _iter_jsonl(self, stream: IO[bytes]) -> Iterator[tuple[str, Any]]:
        loads = json.loads
        for lineno, line in enumerate(stream, 1):
            if lineno == 1:
                line = line.removeprefix(b"\xef\xbb\xbf")
            if line.isspace() or not line:
                continue
            try:
                value = loads(line)
            except UnicodeDecodeError as exc:
                raise ImportValidationError(
                    self.name, f"line {lineno}", None, f"not valid UTF-8: {exc}"
                ) from exc
            except json.JSONDecodeError as exc:
                raise ImportValidationError(
                    self.name, f"line {lineno}", None, f"invalid JSON: {exc.msg} at column {exc.colno}"
                ) from exc
            yield f"line {lineno}", value

    # -- JSON array ----------------------------------------------------------
    def _iter_array(self, stream: IO[bytes]) -> Iterator[tuple[str, Any]]:
        text = io.TextIOWrapper(stream, encoding="utf-8-sig")
        decode = json.JSONDecoder().raw_decode
        buf = ""
        pos = 0
        eof = False
        line = 1  # line number at `counted`
        counted = 0  # position in buf up to which newlines are counted

        def fill() -> None:
            # Drop what is consumed and read more (at least as much as is buffered,
            # so a long element costs O(n) re-decodes in total, not O(n^2)).
            nonlocal buf, pos, eof, counted, line
            line += buf.count("\n", counted, pos)
            try:
                more = text.read(max(CHUNK_CHARS, len(buf) - pos))
            except UnicodeDecodeError as exc:
                raise ImportValidationError(self.name, "", None, f"not valid UTF-8: {exc}") from exc
            if not more:
                eof = True
            buf = buf[pos:] + more
            pos = counted = 0

        def skip_ws() -> str:
            # The next non-whitespace character ("" at end of file), with pos on it.
            nonlocal pos
            while True:
                n = len(buf)
                while pos < n and buf[pos] in _WS:
                    pos += 1
                if pos < n:
                    return buf[pos]
                if eof:
                    return ""
                fill()

        def where() -> str:
            nonlocal line, counted
            line += buf.count("\n", counted, pos)
            counted = pos
            return f"line {line}"

        fill()
        if skip_ws() != "[":  # pragma: no cover - _sniff checked it
            raise ImportValidationError(self.name, "", None, "expected a JSON array")
        pos += 1
        index = 0
        while True:
            ch = skip_ws()
            if index and ch == ",":
                pos += 1
                ch = skip_ws()
                if ch == "]":
                    raise ImportValidationError(
                        self.name,
                        f"record {index}",
                        None,
                        f"invalid JSON: trailing comma before ']' at {where()}",
                    )
            elif index and ch not in ("]", ""):
                raise ImportValidationError(
                    self.name, f"record {index}", None, f"invalid JSON: expected ',' or ']' at {where()}"
                )
            if ch == "]":
                pos += 1
                if skip_ws() != "":
                    raise ImportValidationError(
                        self.name, "", None, f"unexpected data after the array at {where()}"
                    )
                return
            if ch == "":
                raise ImportValidationError(
                    self.name, f"record {index}", None, "the array is not closed (truncated file?)"
                )
            while True:
                try:
                    value, end = decode(buf, pos)
                except json.JSONDecodeError as exc:
                    if eof or len(buf) - pos > MAX_RECORD_CHARS:
                        raise ImportValidationError(
                            self.name,
                            f"record {index}",
                            None,
                            f"invalid JSON: {exc.msg} (record starts at {where()})",
                        ) from exc
                    fill()
                    continue
                if end == len(buf) and not eof:
                    fill()  # a number or literal may continue in the next chunk
                    continue
                break
            where()
            pos = end
            yield f"record {index}", value
            index += 1


def first_record(path: str | Path, name: str | None = None) -> tuple[str, Any]:
    """The first record of the file (for format detection)."""
    reader = RecordReader(path, name)
    with reader:
        for item in reader:
            return item
    raise ImportValidationError(reader.name, "", None, "the file holds no records")
