"""Model text made storable (inference/core/text.py): no Django, no database."""

from inference.core.text import REPLACEMENT, is_truncated, repair, repair_json, repair_text


def test_nul_and_lone_surrogates_become_replacement_characters():
    text, repaired = repair_text("a\x00b\ud800c\udfffd")
    assert text == f"a{REPLACEMENT}b{REPLACEMENT}c{REPLACEMENT}d"
    assert repaired is True
    text.encode("utf-8")  # storable now


def test_clean_text_is_returned_unchanged_and_not_flagged():
    # RTL, combining marks, emoji (a valid surrogate *pair* in Python is one code point), controls.
    s = "שלום عليكم e\u0301\u0302 \U0001f600 tab\tbell\x07 \ufffe"
    assert repair_text(s) == (s, False)
    assert repair_text(None) == ("", False)


def test_repair_json_walks_keys_and_values_and_reports():
    value, repaired = repair_json({"k\x00": ["ok", {"x": "b\ud83d"}], "n": 3, "t": ("a", None)})
    assert value == {f"k{REPLACEMENT}": ["ok", {"x": f"b{REPLACEMENT}"}], "n": 3, "t": ("a", None)}
    assert repaired is True
    assert repair_json({"a": [1, "b"]}) == ({"a": [1, "b"]}, False)
    assert repair("x\x00") == f"x{REPLACEMENT}"


def test_truncation_is_read_from_the_finish_reason_backends_report():
    assert is_truncated("length") and is_truncated("LENGTH")
    assert not is_truncated("stop") and not is_truncated(None) and not is_truncated("eos")
