"""Format auto-detection from the first record's keys; overridable."""

from __future__ import annotations

import pytest

from annotations.actions import import_file
from annotations.importers import detect_format
from annotations.importers.errors import ImportValidationError
from tests.annotations.factories_files import (
    generic_row,
    gzipped,
    write_generic,
    write_jsonl,
    write_prm800k,
    write_prmbench,
    write_processbench,
    write_rprm_steps,
)

WRITERS = {
    "processbench": (write_processbench, "a.json"),
    "prm800k": (write_prm800k, "a.jsonl"),
    "prmbench": (write_prmbench, "a.jsonl"),
    "rprm_steps": (write_rprm_steps, "a.jsonl"),
    "generic": (write_generic, "a.jsonl"),
}


@pytest.mark.parametrize("fmt", WRITERS)
def test_it_detects_every_format_plain_and_gzipped(tmp_path, fmt):
    write, name = WRITERS[fmt]
    path = write(tmp_path / name)
    assert detect_format(path) == fmt
    assert detect_format(gzipped(path)) == fmt


@pytest.mark.parametrize("fmt", WRITERS)
@pytest.mark.django_db
def test_it_imports_every_format_from_gzip(tmp_path, fmt):
    write, name = WRITERS[fmt]
    result = import_file(gzipped(write(tmp_path / name)), dataset_name=fmt)
    assert result.format == fmt and result.dataset.source_format == fmt and result.n_solutions >= 2


def test_it_names_the_keys_it_could_not_place(tmp_path):
    path = write_jsonl(tmp_path / "odd.jsonl", [{"prompt": "x", "completion": "y"}])
    with pytest.raises(ImportValidationError) as exc:
        detect_format(path)
    assert str(exc.value) == (
        "odd.jsonl: line 1: cannot detect the format from the keys (completion, prompt); "
        "choose one of prm800k, prmbench, rprm_steps, processbench, generic"
    )


@pytest.mark.django_db
def test_it_lets_the_format_be_forced(tmp_path):
    # A generic file read as ProcessBench fails on ProcessBench's own fields.
    path = write_jsonl(tmp_path / "g.jsonl", [generic_row("a")])
    with pytest.raises(ImportValidationError, match="g.jsonl: line 1: field 'problem': is missing"):
        import_file(path, fmt="processbench")
    with pytest.raises(ImportValidationError, match="unknown format 'csv'"):
        import_file(path, fmt="csv")
