"""Issue 14: Parquet and zstd-compressed JSON import like the JSON they hold.

Files are written here with pyarrow and zstandard from the same rows as the JSON;
counts, labels and first-error indexes must match, and bad rows name `row N` and the field.
"""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from django.core.management import call_command

from annotations.actions import import_file
from annotations.importers import detect_format, parse_file
from annotations.importers.errors import ImportValidationError
from annotations.importers.readers import RecordReader
from annotations.models import Solution
from tests.annotations.factories_files import (
    generic_row,
    prm800k_row,
    prmbench_row,
    processbench_row,
    row_counts,
    write_json_array,
    write_jsonl,
)


def write_parquet(path: Path, rows: list[dict], row_group_size: int = 2) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)
    return path


def zstd(path: Path) -> Path:
    target = path.with_name(path.name + ".zst")
    target.write_bytes(zstandard.ZstdCompressor(level=3).compress(path.read_bytes()))
    return target


ROWS = {
    "processbench": [processbench_row(f"gsm8k-{i}", label=i % 3 - 1) for i in range(7)],
    "prmbench": [prmbench_row(f"p{i}", error_steps=[2] if i % 2 else []) for i in range(5)],
    "generic": [generic_row(f"g{i}", labels=[1, -1 if i % 2 else 1, None]) for i in range(5)],
    "prm800k": [prm800k_row() for _ in range(3)],
}


def summary(dataset) -> tuple:
    solutions = Solution.objects.filter(dataset=dataset).order_by("source_id")
    return (
        dataset.n_problems,
        dataset.n_solutions,
        dataset.n_steps,
        dataset.n_with_error,
        dataset.label_counts,
        [(s.source_id, s.first_error_index, s.n_steps) for s in solutions],
    )


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", list(ROWS))
def test_a_parquet_copy_imports_with_the_same_counts_as_its_json(tmp_path, fmt):
    rows = ROWS[fmt]
    as_json = write_json_array(tmp_path / f"{fmt}.json", rows)
    as_parquet = write_parquet(tmp_path / f"{fmt}.parquet", rows)
    assert detect_format(as_parquet) == fmt
    from_json = import_file(as_json, dataset_name="json", fmt=fmt).dataset
    from_parquet = import_file(as_parquet, dataset_name="parquet").dataset
    assert from_parquet.n_solutions == len(rows) or fmt == "prm800k"
    assert summary(from_parquet) == summary(from_json)
    assert from_parquet.source_format == fmt


@pytest.mark.parametrize("layout", ["jsonl", "array"])
def test_zstd_compressed_json_reads_like_the_plain_file(tmp_path, layout):
    rows = ROWS["processbench"]
    plain = (write_jsonl if layout == "jsonl" else write_json_array)(tmp_path / f"pb.{layout}", rows)
    packed = zstd(plain)
    reader = RecordReader(packed)
    assert (reader.compression, reader.layout) == ("zstd", layout)
    assert [s.source_id for s in parse_file(packed)] == [s.source_id for s in parse_file(plain)]
    with RecordReader(packed) as r:
        seen = [r.bytes_done for _ in r]
    assert seen[-1] == packed.stat().st_size


def test_a_truncated_zstd_file_is_an_error_not_fewer_records(tmp_path):
    # zstandard's own stream reader ends quietly at a cut; the last records would vanish.
    import os

    rows = [processbench_row(f"r{i}", pad=os.urandom(200).hex()) for i in range(2_000)]
    packed = zstd(write_jsonl(tmp_path / "pb.jsonl", rows))
    packed.write_bytes(packed.read_bytes()[:-40])
    with pytest.raises(ImportValidationError) as exc:
        list(parse_file(packed))
    assert str(exc.value) == (
        "pb.jsonl.zst: cannot read the file: the zstd stream ends in the middle of a frame (truncated file?)"
    )
    packed.write_bytes(packed.read_bytes()[:100])
    with pytest.raises(ImportValidationError, match=r"pb.jsonl.zst: cannot decompress: the zstd stream ends"):
        list(parse_file(packed))


def test_parquet_rows_are_named_in_errors(tmp_path):
    rows = [processbench_row("a"), processbench_row("b", label=9)]
    path = write_parquet(tmp_path / "pb.parquet", rows)
    with pytest.raises(ImportValidationError) as exc:
        list(parse_file(path, "processbench"))
    assert str(exc.value) == (
        "pb.parquet: row 1: field 'label': expected an integer between -1 and 2 (number of steps - 1), got 9"
    )


def test_parquet_nan_is_refused_with_row_and_field(tmp_path):
    rows = [processbench_row("a", score=0.5), processbench_row("b", score=math.nan)]
    path = write_parquet(tmp_path / "pb.parquet", rows)
    with pytest.raises(ImportValidationError) as exc:
        list(parse_file(path, "processbench"))
    assert str(exc.value) == "pb.parquet: row 1: field 'score': the number nan is not finite"


def test_parquet_columns_without_a_json_type_are_refused(tmp_path):
    import datetime

    table = pa.Table.from_pylist([processbench_row("a") | {"when": datetime.datetime(2024, 1, 1)}])
    path = tmp_path / "pb.parquet"
    pq.write_table(table, path)
    with pytest.raises(ImportValidationError) as exc:
        list(parse_file(path, "processbench"))
    assert str(exc.value) == (
        "pb.parquet: field 'when': Parquet type timestamp[us] has no JSON equivalent "
        "(use strings, numbers, booleans, lists)"
    )


def test_a_truncated_parquet_file_is_an_error(tmp_path):
    path = write_parquet(tmp_path / "pb.parquet", ROWS["processbench"])
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(ImportValidationError, match=r"pb.parquet: cannot read the Parquet file: "):
        list(parse_file(path))


def test_parquet_is_read_in_batches_with_flat_memory(tmp_path, monkeypatch):
    import tracemalloc

    from annotations.importers import readers

    monkeypatch.setattr(readers, "PARQUET_BATCH_ROWS", 500)
    rows = [processbench_row(f"r{i}", pad="y" * 400) for i in range(40_000)]
    path = write_parquet(tmp_path / "big.parquet", rows, row_group_size=2_000)
    del rows
    tracemalloc.start()
    try:
        with RecordReader(path) as reader:
            progress = [reader.bytes_done for _ in reader]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(progress) == 40_000 and progress == sorted(progress)
    assert peak < 12_000_000, peak


@pytest.mark.django_db
def test_a_bad_parquet_file_writes_nothing_through_the_command(tmp_path):
    from django.core.management.base import CommandError

    rows = [processbench_row(f"r{i}") for i in range(6)] + [processbench_row("r6", steps=[])]
    path = write_parquet(tmp_path / "pb.parquet", rows)
    before = row_counts()
    with pytest.raises(CommandError, match=r"pb.parquet: row 6: field 'steps': expected at least 1 item"):
        call_command("import_dataset", str(path))
    assert row_counts() == before


def test_zstd_files_of_several_frames_are_read_whole(tmp_path):
    first = write_jsonl(tmp_path / "a.jsonl", ROWS["processbench"][:3]).read_bytes()
    second = write_jsonl(tmp_path / "b.jsonl", ROWS["processbench"][3:]).read_bytes()
    c = zstandard.ZstdCompressor()
    path = tmp_path / "both.jsonl.zst"
    path.write_bytes(c.compress(first) + c.compress(second))
    assert [s.source_id for s in parse_file(path)] == [r["id"] for r in ROWS["processbench"]]
