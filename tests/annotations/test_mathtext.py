"""The one rendering rule for prose + money + LaTeX (rprm_web/mathtext.py)."""

import pytest
from django.template import engines

from rprm_web.mathtext import render_math_html, split_math


def kinds(text):
    return [(k, c) for k, c, _ in split_math(text)]


@pytest.mark.parametrize(
    "text",
    [
        # GSM8K: dollar amounts stay text, exactly as written.
        "Customers get rewards of $1 off their next purchase for every $20 they spend.",
        "He paid $20 and got $5 back.",
        "It costs $4.50, so $20+$30=$50 in total.",
        "A shirt costs $40 and is on sale for 25% off.",
        "Prices: 5$ and 6$ each.",
        "Unclosed $x and more",
        "$$ alone",
    ],
)
def test_money_is_text(text):
    assert kinds(text) == [("text", text)]


def test_mixed_money_and_math():
    assert kinds("costs $5 and $x^2$ apples") == [
        ("text", "costs $5 and "),
        ("inline", "x^2"),
        ("text", " apples"),
    ]


def test_math_delimiters():
    assert kinds("Let $x = 5$.") == [("text", "Let "), ("inline", "x = 5"), ("text", ".")]
    assert kinds(r"so \(x^2\) and \[y\]") == [
        ("text", "so "),
        ("inline", "x^2"),
        ("text", " and "),
        ("display", "y"),
    ]
    assert kinds("$$\\frac{1}{2}$$") == [("display", "\\frac{1}{2}")]
    # Escaped dollars are plain dollars, also next to math.
    assert kinds(r"costs \$5 and $y$") == [("text", "costs $5 and "), ("inline", "y")]
    # An escaped $ inside math does not close it.
    assert kinds(r"$a\$b$") == [("inline", r"a\$b")]


def test_pandoc_closing_rules():
    assert kinds("$x $ no") == [("text", "$x $ no")]  # space before the closing $
    assert kinds("$ x$ no") == [("text", "$ x$ no")]  # space after the opening $
    assert kinds("$a$5") == [("text", "$a$5")]  # closing $ followed by a digit
    assert kinds("$a\n\nb$") == [("text", "$a\n\nb$")]  # a blank line ends the attempt
    assert kinds("$a\nb$") == [("inline", "a\nb")]


def test_html_is_escaped_and_source_kept_for_no_js():
    html = render_math_html('<b>x</b> $a<b$ & "$1"')
    assert "<b>" not in html
    assert 'data-tex="a&lt;b"' in html and ">$a&lt;b$</span>" in html
    assert "&amp; &quot;$1&quot;" in html
    assert render_math_html(None) == ""


def test_filter_is_a_template_builtin():
    t = engines["django"].from_string("{{ v|mathtext }}")
    out = t.render({"v": "costs $5 and $x^2$ <i>"})
    assert out.startswith("costs $5 and ") and 'class="tex"' in out and "&lt;i&gt;" in out


def test_long_text_is_split_fast():
    import time

    text = ("Pay $20 for $x_1 + x_2$ items; " * 8000)[:200_000]
    t0 = time.perf_counter()
    parts = split_math(text)
    assert time.perf_counter() - t0 < 2.0
    assert sum(k == "inline" for k, _, _ in parts) >= 6000
