"""`manage.py import_dataset`: exit status, the precise error, a summary as the last line."""

from __future__ import annotations

import pytest
from django.core.management import call_command, execute_from_command_line

from annotations.models import Dataset, Step
from tests.annotations.factories_files import (
    prmbench_row,
    processbench_row,
    row_counts,
    write_json_array,
    write_jsonl,
    write_prm800k,
    write_processbench,
)


@pytest.fixture
def manage(monkeypatch, capsys):
    """Run the command as `manage.py` would (exit status included) inside the test's transaction."""
    monkeypatch.setattr("django.core.management.base.connections.close_all", lambda: None)

    def run(*args: str) -> tuple[int, str, str]:
        code = 0
        try:
            execute_from_command_line(["manage.py", "import_dataset", *args])
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.mark.django_db
def test_it_exits_zero_with_a_summary_as_last_line(tmp_path, manage):
    code, out, _ = manage(str(write_processbench(tmp_path / "processbench_gsm8k.json")))
    assert code == 0
    last = out.strip().splitlines()[-1]
    assert last.startswith(
        "imported processbench_gsm8k (processbench): 2 problems, 3 solutions, 10 steps (2 with an error) in "
    )
    assert last.endswith(" s")
    code, out, _ = manage(str(tmp_path / "processbench_gsm8k.json"))
    assert code == 0
    assert out.strip().splitlines()[-1] == (
        "already imported: processbench_gsm8k.json (processbench) is dataset 'processbench_gsm8k'; nothing written"
    )
    assert Dataset.objects.count() == 1


@pytest.mark.django_db
def test_it_exits_non_zero_with_file_record_and_field(tmp_path, manage):
    path = write_json_array(tmp_path / "pb.json", [processbench_row("a"), processbench_row("b", label=7)])
    before = row_counts()
    code, out, err = manage(str(path))
    assert code == 1 and out == ""
    assert err.strip() == (
        "CommandError: pb.json: record 1: field 'label': expected an integer between -1 and 2 (number of steps - 1), got 7"
    )
    assert row_counts() == before


@pytest.mark.django_db
def test_it_passes_format_name_split_and_rating0(tmp_path, manage):
    code, out, _ = manage(str(write_prm800k(tmp_path / "x.jsonl")), "--format", "prm800k", "--name", "phase2-train",
                          "--split", "train", "--rating0", "neutral")  # fmt: skip
    assert code == 0 and out.strip().splitlines()[-1].startswith(
        "imported phase2-train (prm800k): 1 problems, 2 solutions"
    )
    ds = Dataset.objects.get()
    assert (ds.name, ds.split, ds.import_options) == ("phase2-train", "train", {"rating0": "neutral"})
    assert Step.objects.filter(label="neutral").count() == 1


@pytest.mark.django_db
def test_it_rejects_an_unknown_rating0_and_format(tmp_path, manage):
    path = str(write_processbench(tmp_path / "pb.json"))
    assert manage(path, "--rating0", "maybe")[0] == 2
    assert manage(path, "--format", "csv")[0] == 2
    assert not Dataset.objects.exists()


@pytest.mark.django_db
def test_it_prints_warnings_before_the_summary(tmp_path, manage):
    code, out, _ = manage(str(write_jsonl(tmp_path / "prmbench.jsonl", [prmbench_row("p", error_steps=[9])])))
    lines = out.strip().splitlines()
    assert code == 0 and lines[0] == "1 warning(s):" and "past the last step" in lines[1]
    assert lines[-1].startswith("imported prmbench (prmbench)")


@pytest.mark.django_db
def test_it_reports_a_missing_file(tmp_path):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="nope.json: no such file"):
        call_command("import_dataset", str(tmp_path / "nope.json"))
