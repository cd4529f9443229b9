"""Streaming readers: JSONL with line numbers, JSON arrays element by element, gzip."""

from __future__ import annotations

import json

import pytest

from annotations.importers import readers
from annotations.importers.errors import ImportValidationError
from annotations.importers.limits import Limits
from annotations.importers.readers import RecordReader
from tests.annotations.factories_files import gzipped, write_json_array, write_jsonl


def read(path) -> list:
    with RecordReader(path) as reader:
        return list(reader)


def test_it_reads_jsonl_with_line_numbers_skipping_blank_lines(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n   \n{"a": 3}\n')
    assert read(path) == [("line 1", {"a": 1}), ("line 3", {"a": 2}), ("line 5", {"a": 3})]


def test_it_reads_a_json_array_by_record_index(tmp_path):
    path = write_json_array(tmp_path / "a.json", [{"a": i} for i in range(5)])
    assert read(path) == [(f"record {i}", {"a": i}) for i in range(5)]


def test_it_reads_arrays_whose_elements_straddle_chunks(tmp_path, monkeypatch):
    # Tiny chunks force raw_decode to see truncated elements, numbers and strings.
    monkeypatch.setattr(readers, "CHUNK_CHARS", 7)
    rows = [{"text": "é" * 30 + str(i), "n": 12345678901234567890 + i, "ok": True} for i in range(40)] + [
        123456,
        "x",
    ]
    path = write_json_array(tmp_path / "a.json", rows, indent=2)
    assert [value for _, value in read(path)] == rows


def test_it_reads_an_empty_array_and_a_compact_one(tmp_path):
    (tmp_path / "e.json").write_text(" [ ] ")
    assert read(tmp_path / "e.json") == []
    (tmp_path / "c.json").write_text('[{"a":1},{"a":2}]')
    assert [v for _, v in read(tmp_path / "c.json")] == [{"a": 1}, {"a": 2}]


def test_it_reads_gzip_files_of_both_layouts(tmp_path):
    rows = [{"a": i} for i in range(3)]
    jsonl = gzipped(write_jsonl(tmp_path / "a.jsonl", rows))
    array = gzipped(write_json_array(tmp_path / "a.json", rows))
    assert [v for _, v in read(jsonl)] == rows
    assert [v for _, v in read(array)] == rows
    reader = RecordReader(jsonl)
    assert reader.compressed and reader.layout == "jsonl"


def test_it_reports_bytes_done_as_it_goes(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"pad": "x" * 1000} for _ in range(200)])
    reader = RecordReader(path)
    seen = [reader.bytes_done for _ in reader]
    assert seen[-1] > 0 and seen == sorted(seen)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"a": 1}\n{"a": }\n', "a.jsonl: line 2: invalid JSON: Expecting value at column 7"),
        ("", "a.jsonl: the file is empty"),
        ("hello", "a.jsonl: expected JSON Lines, a JSON array or Parquet, file starts with b'hello'"),
    ],
)
def test_it_names_the_line_of_invalid_jsonl(tmp_path, content, message):
    path = tmp_path / "a.jsonl"
    path.write_text(content)
    with pytest.raises(ImportValidationError) as exc:
        read(path)
    assert str(exc.value) == message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '[\n {"a": 1},\n {"a": }\n]',
            "a.json: record 1: invalid JSON: Expecting value (record starts at line 3)",
        ),
        ('[{"a": 1} {"a": 2}]', "a.json: record 1: invalid JSON: expected ',' or ']' at line 1"),
        ('[{"a": 1},]', "a.json: record 1: invalid JSON: trailing comma before ']' at line 1"),
        ('[{"a": 1},\n{"a": 2}', "a.json: record 2: the array is not closed (truncated file?)"),
        ('[{"a": 1}] x', "a.json: unexpected data after the array at line 1"),
    ],
)
def test_it_names_the_record_of_an_invalid_array(tmp_path, content, message):
    path = tmp_path / "a.json"
    path.write_text(content)
    with pytest.raises(ImportValidationError) as exc:
        read(path)
    assert str(exc.value) == message


def test_it_stops_buffering_at_the_record_size_limit(tmp_path, monkeypatch):
    # Not "Unterminated string": the record is too long, and the message says so.
    monkeypatch.setattr(readers, "CHUNK_CHARS", 16)
    path = tmp_path / "a.json"
    path.write_text('[{"a": "' + "x" * 10_000 + "]")  # an unterminated string
    with (
        pytest.raises(ImportValidationError) as exc,
        RecordReader(path, limits=Limits(max_record_bytes=64)) as r,
    ):
        list(r)
    assert str(exc.value) == (
        "a.json: record 0: the record is longer than 64 bytes (IMPORT_MAX_RECORD_BYTES; it starts at line 1)"
    )


def test_it_keeps_memory_flat_on_a_long_array(tmp_path):
    # A 24 MB array is read with a few MB at most: one chunk plus one record.
    import tracemalloc

    path = tmp_path / "big.json"
    with open(path, "w") as f:
        f.write("[" + ",".join(json.dumps({"i": i, "pad": "y" * 400}) for i in range(60_000)) + "]")
    assert path.stat().st_size > 24_000_000
    tracemalloc.start()
    try:
        n = sum(1 for _ in RecordReader(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == 60_000
    assert peak < 8_000_000, peak


def test_it_rejects_a_missing_file(tmp_path):
    with pytest.raises(ImportValidationError, match="nope.jsonl: no such file"):
        RecordReader(tmp_path / "nope.jsonl")
