"""The commands' shared progress display and --json result line."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from rprm_web.cli import Progress
from tests.annotations.factories_files import write_processbench


def test_progress_writes_plain_lines_when_not_a_tty():
    out = io.StringIO()  # StringIO.isatty() is False, like a CI log or a pipe
    with Progress("score", total=3, unit="solutions", stream=out, every_s=3600) as bar:
        bar.update(1, status="warming up")  # first line at once
        bar.update(2)  # throttled: within every_s of the last line
        bar.update(3)  # the end is always written
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines == ["score: 1/3 solutions, warming up", "score: 3/3 solutions"]


def test_progress_is_a_tqdm_bar_on_a_tty():
    out = io.StringIO()
    with Progress("score", total=4, unit="solutions", stream=out, tty=True) as bar:
        bar.update(2, status="2 steps")
        bar.update(4)
    text = out.getvalue()
    assert "\r" in text and "4/4" in text and "100%" in text


@pytest.mark.django_db
def test_import_dataset_json_is_the_last_line(tmp_path):
    path = write_processbench(tmp_path / "processbench_gsm8k.json")
    out, err = io.StringIO(), io.StringIO()
    call_command("import_dataset", str(path), "--json", "--verbosity", "2", stdout=out, stderr=err)
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    assert result["dataset"] == "processbench_gsm8k" and result["already_imported"] is False
    assert result["counts"]["solutions"] == 3 and result["counts"]["steps"] == 10
    # verbosity 2 shows progress; on a non-TTY stream it is plain lines, no carriage returns
    assert "\r" not in err.getvalue() and "import: 100/100 %" in err.getvalue()


@pytest.mark.django_db
def test_import_template_and_token_commands_answer_json(tmp_path, reviewer):
    from inference.models import ApiToken

    template = tmp_path / "t.txt"
    template.write_text("### user\nQuestion: {question}\nPrevious: {previous_steps}\nNow: {now_step}\n")
    out = io.StringIO()
    call_command("import_template", str(template), "--name", "mine", "--json", stdout=out)
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    assert result["template"] == "mine" and len(result["sha256"]) == 64

    out = io.StringIO()
    call_command("create_api_token", "reviewer", "--json", stdout=out, stderr=io.StringIO())
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1  # the token appears once, inside the object
    token = json.loads(lines[0])
    assert token["user"] == "reviewer" and ApiToken.objects.filter(pk=token["id"]).exists()
