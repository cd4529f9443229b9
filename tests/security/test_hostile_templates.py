"""Templates are data, not code: hostile prompt files are refused at import with one line
naming the file and the field, and nothing is stored (issue 19, item 5)."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from inference.core.prompts import MAX_RENDERED_CHARS, PromptTemplate
from inference.models import PromptTemplate as StoredTemplate

HOSTILE = [
    # attribute access leaks str's class tree and docstring; {{}} are not fields
    ("{{}}{{}}{{}} Q={0} P={1} N={2} LEAK={0.__class__.__mro__} DOC={0.__doc__}", "{0.__class__.__mro__}"),
    # 23 bytes that rendered 20 MB per prompt
    ("{} {} {{}} {:>20000000}", "format spec"),
    # a width of 3e9 raised an uncaught MemoryError at import
    ("{} {} {:>3000000000}", "format spec"),
    ("{} {} {!r}", "conversion"),
    ("{} {} {0[0]}", "{0[0]}"),
    ("{{}} {{}} {{}}", "found 0"),
    ("{} {1} {2}", "mixes"),
]


@pytest.mark.parametrize(("text", "reason"), HOSTILE)
@pytest.mark.parametrize("suffix", [".txt", ".json"])
def test_it_refuses_hostile_positional_fields_in_one_line(db, tmp_path, text, reason, suffix):
    path = tmp_path / f"hostile{suffix}"
    body = json.dumps({"template": text, "examples": []}) if suffix == ".json" else text
    path.write_text(body, encoding="utf-8")
    with pytest.raises(CommandError) as info:
        call_command("import_template", str(path))
    message = str(info.value)
    key = "'template'" if suffix == ".json" else "'user'"
    assert "\n" not in message and str(path) in message and key in message and reason in message
    assert not StoredTemplate.objects.exists()


def test_it_refuses_a_5_mb_template_without_reading_it_into_a_page(db, tmp_path):
    path = tmp_path / "huge.txt"
    path.write_text("{} {} {}" + "x" * (5 * 1024 * 1024), encoding="utf-8")
    with pytest.raises(CommandError, match=r"huge\.txt: .*over the limit"):
        call_command("import_template", str(path))
    assert not StoredTemplate.objects.exists()


def test_it_refuses_a_template_field_over_64_kb_naming_the_field(db, tmp_path):
    path = tmp_path / "long.json"
    path.write_text(json.dumps({"template": "{} {} {}", "system-prompt": "s" * 70_000}), encoding="utf-8")
    with pytest.raises(CommandError) as info:
        call_command("import_template", str(path))
    assert "long.json" in str(info.value) and "'system'" in str(info.value) and "65,536" in str(info.value)


def test_it_refuses_a_rendering_over_the_length_limit_naming_the_template_and_field():
    template = PromptTemplate(name="t", version=1, system="", user="{} {} {}", chat=False, style="positional",
                              source="t.txt")  # fmt: skip
    with pytest.raises(ValueError, match=r"t\.txt: field 'user': the rendered prompt is"):
        template.render_user_from_row("q" * MAX_RENDERED_CHARS, "p", "n")


def test_escaped_braces_are_text_and_plain_fields_render_like_str_format():
    text = "{{x}} Q: {}\nP: {}\nN: {} left-bracketsright-brackets"
    template = PromptTemplate(name="t", version=1, system="", user=text, chat=False, style="positional")
    expected = text.format("a{b}", "{0}", "c").replace("left-brackets", "{").replace("right-brackets", "}")
    assert template.render_user_from_row("a{b}", "{0}", "c") == expected
