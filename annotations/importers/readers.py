"""Streaming record readers: JSONL, JSON arrays and Parquet, plain, gzip or zstd, in flat memory.

A reader yields `(location, value)` pairs, where location is `line N` (JSONL,
1-based), `record N` (JSON array, 0-based index) or `row N` (Parquet, 0-based), and
exposes `bytes_done` (bytes of the file on disk consumed so far, compressed bytes for
.gz/.zst) for progress. Memory stays flat in the file size: JSONL is read line by line
(each line capped), a JSON array is decoded element by element with `raw_decode` over a
sliding buffer (each element capped), Parquet through pyarrow's record batches.
Every value passes the checks of `limits.Limits` (see limits.py).
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import ImportValidationError
from .limits import DEFAULT_LIMITS, Decoder, LimitExceeded, Limits, find_problem

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
PARQUET_MAGIC = b"PAR1"
CHUNK_CHARS = 1 << 20
PARQUET_BATCH_ROWS = 2_048
_WS = " \t\n\r"


def display_name(path: Path) -> str:
    return path.name


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB" if n >= 1 << 20 else f"{n:,} bytes"


class _Guarded(io.RawIOBase):
    """The decompressed stream, counting bytes: stops a file that expands too far, early."""

    def __init__(self, inner: io.BufferedIOBase, raw: IO[bytes], limits: Limits, compressed: bool) -> None:
        self.inner, self.raw, self.limits, self.compressed = inner, raw, limits, compressed
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self.inner.readinto(b)
        self.total += n
        limits = self.limits
        if self.total > limits.max_decompressed_bytes:
            raise LimitExceeded(
                f"the file holds more than {_mib(limits.max_decompressed_bytes)} of data "
                "(IMPORT_MAX_DECOMPRESSED_BYTES)"
            )
        if self.compressed and self.total > limits.ratio_floor_bytes:
            read = max(self.raw.tell(), 1)
            if self.total > limits.max_ratio * read:
                raise LimitExceeded(
                    f"the file expands more than {limits.max_ratio}:1 when decompressed "
                    f"({_mib(read)} became {_mib(self.total)}; IMPORT_MAX_DECOMPRESSION_RATIO)"
                )
        return n


def _decompressor(kind: str, raw: io.BufferedReader) -> io.BufferedIOBase:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw)
    if kind == "zstd":
        return io.BufferedReader(_ZstdReader(raw), 1 << 16)
    return raw


class _ZstdReader(io.RawIOBase):
    """zstd frames, one after another; a truncated frame is an error (zstandard's
    stream_reader ends quietly there, which would drop the last records unseen)."""

    def __init__(self, raw: IO[bytes]) -> None:
        import zstandard

        self.raw, self._new = raw, zstandard.ZstdDecompressor().decompressobj
        self._d = self._new()
        self._pending = b""
        self._started = False  # a frame has begun and not ended

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._pending:
            chunk = self.raw.read(1 << 16)
            if not chunk:
                if self._started:
                    raise EOFError("the zstd stream ends in the middle of a frame (truncated file?)")
                return 0
            while chunk:
                self._started = True
                self._pending += self._d.decompress(chunk)
                chunk = b""
                if self._d.eof:  # a frame ended: the rest starts the next one
                    chunk, self._d, self._started = self._d.unused_data, self._new(), False
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _stream_errors() -> tuple[type[BaseException], ...]:
    """What a truncated or corrupt compressed stream raises."""
    errors: tuple[type[BaseException], ...] = (OSError, EOFError)
    try:
        import zstandard

        errors += (zstandard.ZstdError,)
    except ImportError:  # pragma: no cover - zstandard is a declared dependency
        pass
    return errors


class RecordReader:
    """Iterate the top-level records of `path`; use as a context manager."""

    def __init__(self, path: str | Path, name: str | None = None, limits: Limits | None = None) -> None:
        self.path = Path(path)
        self.name = name or display_name(self.path)
        self.limits = limits or DEFAULT_LIMITS
        if not self.path.is_file():
            raise ImportValidationError(self.name, "", None, "no such file")
        self.size = self.path.stat().st_size
        self._raw: IO[bytes] | None = None
        self._rows_done = 0
        self._rows_total = 0
        self.compression, self.layout = self._sniff()
        self.compressed = self.compression != ""

    # -- opening -------------------------------------------------------------
    def _sniff(self) -> tuple[str, str]:
        with open(self.path, "rb") as raw:
            magic = raw.read(4)
            if magic == PARQUET_MAGIC:
                return "", "parquet"
            kind = "gzip" if magic[:2] == GZIP_MAGIC else "zstd" if magic == ZSTD_MAGIC else ""
            raw.seek(0)
            stream = _decompressor(kind, raw)
            try:
                head = stream.read(64 * 1024)
            except _stream_errors() as exc:
                raise ImportValidationError(self.name, "", None, f"cannot decompress: {exc}") from exc
        head = head.removeprefix(b"\xef\xbb\xbf").lstrip()
        if not head:
            raise ImportValidationError(self.name, "", None, "the file is empty")
        if head[:1] == b"[":
            return kind, "array"
        if head[:1] == b"{":
            return kind, "jsonl"
        raise ImportValidationError(
            self.name,
            "",
            None,
            f"expected JSON Lines, a JSON array or Parquet, file starts with {head[:20]!r}",
        )

    def _open(self) -> IO[bytes]:
        self._raw = raw = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        guarded = _Guarded(_decompressor(self.compression, raw), raw, self.limits, self.compressed)
        return io.BufferedReader(guarded, 1 << 16)

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()

    def __enter__(self) -> RecordReader:
        return self

    def parts(self) -> Iterator[RecordReader]:
        """The files this source reads, in order (one; see MultiReader)."""
        yield self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def bytes_done(self) -> int:
        if self.layout == "parquet":
            return self.size * self._rows_done // self._rows_total if self._rows_total else 0
        try:
            return self._raw.tell() if self._raw is not None and not self._raw.closed else 0
        except (OSError, ValueError):
            return 0

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        if self.layout == "parquet":
            yield from self._iter_parquet()
            return
        stream = self._open()
        try:
            if self.layout == "array":
                yield from self._iter_array(stream)
            else:
                yield from self._iter_jsonl(stream)
        except _stream_errors() as exc:  # truncated or corrupt compressed stream
            raise ImportValidationError(self.name, "", None, f"cannot read the file: {exc}") from exc
        finally:
            self.close()

    def _limit_error(self, loc: str, exc: LimitExceeded) -> ImportValidationError:
        return ImportValidationError(self.name, loc, exc.field, exc.message)

    # -- JSON Lines ----------------------------------------------------------
    def _iter_jsonl(self, stream: IO[bytes]) -> Iterator[tuple[str, Any]]:
        decoder = Decoder(self.limits)
        cap = self.limits.max_record_bytes
        lineno = 0
        while True:
            lineno += 1
            try:
                # Read at most one byte over the cap: a 2 GiB line costs the cap, not 2 GiB.
                line = stream.readline(cap + 1)
            except LimitExceeded as exc:
                raise self._limit_error(f"line {lineno}", exc) from None
            if not line:
                return
            if len(line) > cap and not line.endswith(b"\n"):
                raise ImportValidationError(
                    self.name,
                    f"line {lineno}",
                    None,
                    f"the line is longer than {_mib(cap)} (IMPORT_MAX_RECORD_BYTES)",
                )
            if lineno == 1:
                line = line.removeprefix(b"\xef\xbb\xbf")
            if line.isspace():
                continue
            try:
                value = decoder.loads(line)
            except LimitExceeded as exc:
                raise self._limit_error(f"line {lineno}", exc) from None
            except json.JSONDecodeError as exc:
                raise ImportValidationError(
                    self.name, f"line {lineno}", None, f"invalid JSON: {exc.msg} at column {exc.colno}"
                ) from exc
            yield f"line {lineno}", value

    # -- Parquet -------------------------------------------------------------
    def _iter_parquet(self) -> Iterator[tuple[str, Any]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            # No pre-buffering: it reads every requested row group's bytes ahead (the whole file).
            pf = pq.ParquetFile(self.path, pre_buffer=False)
        except (pa.ArrowException, OSError) as exc:
            raise ImportValidationError(self.name, "", None, f"cannot read the Parquet file: {exc}") from exc
        has_float = False
        for field in pf.schema_arrow:
            has_float |= _check_parquet_type(self.name, field.name, field.type)
        self._rows_total = pf.metadata.num_rows
        max_depth = self.limits.max_depth
        index = 0
        try:
            # One row group at a time, one thread: memory is one row group, whatever the file size.
            batches = (
                batch
                for group in range(pf.num_row_groups)
                for batch in pf.iter_batches(
                    batch_size=PARQUET_BATCH_ROWS, row_groups=[group], use_threads=False
                )
            )
            for batch in batches:
                for row in batch.to_pylist():
                    loc = f"row {index}"
                    if has_float:  # NaN and infinities are valid Parquet doubles, not valid JSON
                        try:
                            find_problem(row, max_depth)
                        except LimitExceeded as exc:
                            raise self._limit_error(loc, exc) from None
                    self._rows_done = index
                    yield loc, row
                    index += 1
        except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
            raise ImportValidationError(
                self.name, f"row {index}", None, f"cannot read the Parquet file: {exc}"
            ) from exc
        finally:
            self._rows_done = index

    # -- JSON array ----------------------------------------------------------
    def _iter_array(self, stream: IO[bytes]) -> Iterator[tuple[str, Any]]:
        # surrogateescape: an invalid byte becomes a lone surrogate that the decoder's
        # check reports with its record and field, not a position in a 1 MiB chunk.
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape")
        scan = _ArrayScanner(text, self._limit_error)
        decode = Decoder(self.limits).raw_decode
        scan.fill()
        if scan.skip_ws() != "[":  # pragma: no cover - _sniff checked it
            raise ImportValidationError(self.name, "", None, "expected a JSON array")
        scan.pos += 1
        while True:
            ch = self._array_separator(scan)
            if ch == "]":
                scan.pos += 1
                if scan.skip_ws() != "":
                    raise ImportValidationError(
                        self.name, "", None, f"unexpected data after the array at {scan.where()}"
                    )
                return
            if ch == "":
                raise ImportValidationError(
                    self.name, f"record {scan.index}", None, "the array is not closed (truncated file?)"
                )
            value, end = self._decode_element(scan, decode)
            if end - scan.pos > self.limits.max_record_bytes:
                raise self._too_long(scan.index, self.limits.max_record_bytes, scan.where())
            scan.where()
            scan.pos = end
            yield f"record {scan.index}", value
            scan.index += 1

    def _array_separator(self, scan: _ArrayScanner) -> str:
        """The character that starts the next element, after the ',' between elements
        ("]" at the array's end, "" at the end of the file)."""
        ch = scan.skip_ws()
        if scan.index and ch == ",":
            scan.pos += 1
            ch = scan.skip_ws()
            if ch == "]":
                raise ImportValidationError(
                    self.name,
                    f"record {scan.index}",
                    None,
                    f"invalid JSON: trailing comma before ']' at {scan.where()}",
                )
        elif scan.index and ch not in ("]", ""):
            raise ImportValidationError(
                self.name,
                f"record {scan.index}",
                None,
                f"invalid JSON: expected ',' or ']' at {scan.where()}",
            )
        return ch

    def _decode_element(
        self, scan: _ArrayScanner, decode: Callable[[str, int], tuple[Any, int]]
    ) -> tuple[Any, int]:
        """(the element at `scan.pos`, the position after it), reading more of the file
        until the element is complete."""
        cap = self.limits.max_record_bytes
        while True:
            try:
                value, end = decode(scan.buf, scan.pos)
            except LimitExceeded as exc:
                raise self._limit_error(f"record {scan.index}", exc) from None
            except json.JSONDecodeError as exc:
                if len(scan.buf) - scan.pos > cap:
                    raise self._too_long(scan.index, cap, scan.where()) from None
                if scan.eof:
                    raise ImportValidationError(
                        self.name,
                        f"record {scan.index}",
                        None,
                        f"invalid JSON: {exc.msg} (record starts at {scan.where()})",
                    ) from exc
                scan.fill()
                continue
            if end == len(scan.buf) and not scan.eof:
                scan.fill()  # a number or literal may continue in the next chunk
                continue
            return value, end

    def _too_long(self, index: int, cap: int, where: str) -> ImportValidationError:
        return ImportValidationError(
            self.name,
            f"record {index}",
            None,
            f"the record is longer than {_mib(cap)} (IMPORT_MAX_RECORD_BYTES; it starts at {where})",
        )


class _ArrayScanner:
    """The buffered text of a JSON array read element by element: `buf[pos:]` is unread,
    `line` is the line number at `counted` (newlines are counted lazily, for messages)."""

    def __init__(self, text: IO[str], limit_error: Callable[[str, LimitExceeded], Exception]) -> None:
        self.text, self.limit_error = text, limit_error
        self.buf, self.pos, self.eof = "", 0, False
        self.line, self.counted = 1, 0
        self.index = 0  # the element being read

    def fill(self) -> None:
        """Drop what is consumed and read more (at least as much as is buffered, so a long
        element costs O(n) re-decodes in total, not O(n^2))."""
        self.line += self.buf.count("\n", self.counted, self.pos)
        try:
            more = self.text.read(max(CHUNK_CHARS, len(self.buf) - self.pos))
        except LimitExceeded as exc:
            raise self.limit_error(f"record {self.index}", exc) from None
        if not more:
            self.eof = True
        self.buf = self.buf[self.pos :] + more
        self.pos = self.counted = 0

    def skip_ws(self) -> str:
        """The next non-whitespace character ("" at end of file), with pos on it."""
        while True:
            buf, n = self.buf, len(self.buf)
            pos = self.pos
            while pos < n and buf[pos] in _WS:
                pos += 1
            self.pos = pos
            if pos < n:
                return buf[pos]
            if self.eof:
                return ""
            self.fill()

    def where(self) -> str:
        self.line += self.buf.count("\n", self.counted, self.pos)
        self.counted = self.pos
        return f"line {self.line}"


class MultiReader:
    """Several files read one after another as one source (one dataset, one transaction).

    `parts()` hands out each file's RecordReader in turn, so errors name the file they are
    in; `bytes_done` and `size` add up over the files, for progress."""

    def __init__(self, readers: list[RecordReader]) -> None:
        if not readers:
            raise ValueError("no files")
        self.readers = readers
        self.size = sum(r.size for r in readers)
        self.name = describe_files([r.name for r in readers])
        self._done_before = 0
        self._current: RecordReader | None = None

    @property
    def bytes_done(self) -> int:
        return self._done_before + (self._current.bytes_done if self._current is not None else 0)

    def parts(self) -> Iterator[RecordReader]:
        for reader in self.readers:
            self._current = reader
            yield reader
            self._current = None
            self._done_before += reader.size

    def close(self) -> None:
        for reader in self.readers:
            reader.close()

    def __enter__(self) -> MultiReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe_files(names: list[str], limit: int = 200) -> str:
    """`a.jsonl` or `a.jsonl + 15 more files` (a job's file name, within its column)."""
    if len(names) == 1:
        return names[0]
    more = f" + {len(names) - 1} more file{'s' if len(names) > 2 else ''}"
    return names[0][: limit - len(more)] + more


def _check_parquet_type(file: str, column: str, typ: Any) -> bool:
    """Refuse column types with no JSON equivalent; True when a float can occur (NaN check)."""
    import pyarrow.types as t

    if t.is_string(typ) or t.is_large_string(typ) or t.is_integer(typ) or t.is_boolean(typ) or t.is_null(typ):
        return False
    if t.is_floating(typ):
        return True
    if t.is_list(typ) or t.is_large_list(typ) or t.is_fixed_size_list(typ):
        return _check_parquet_type(file, column, typ.value_type)
    if t.is_struct(typ):
        return any(
            [_check_parquet_type(file, f"{column}.{f.name}", f.type) for f in typ]
        )  # check every field
    if t.is_dictionary(typ):
        return _check_parquet_type(file, column, typ.value_type)
    raise ImportValidationError(
        file, "", column, f"Parquet type {typ} has no JSON equivalent (use strings, numbers, booleans, lists)"
    )


def first_record(path: str | Path, name: str | None = None, limits: Limits | None = None) -> tuple[str, Any]:
    """The first record of the file (for format detection)."""
    reader = RecordReader(path, name, limits)
    with reader:
        for item in reader:
            return item
    raise ImportValidationError(reader.name, "", None, "the file holds no records")
