"""One rendering rule for text that mixes prose, money and LaTeX.

Problems, steps, critique sections and answers come from public sets written in two
styles: GSM8K prose with plain dollar amounts ("$1 off for every $20 you spend") and
MATH/olympiad text with ``$...$`` and ``\\(...\\)`` math. Every template shows such
text through the ``mathtext`` filter (a template builtin, see settings.TEMPLATES), which
splits it here, on the server, into escaped text and math spans; static/js/studio.js
then typesets each math span with KaTeX.

Why server-side splitting rather than KaTeX auto-render: auto-render pairs any two
``$`` delimiters, and its options cannot express pandoc's whitespace/digit conditions,
so "$1 off ... every $20" became italic math. Why not markdown-it-py + dollarmath:
it would also read ``*``, ``_``, ``#`` and indentation in step text as markdown and
change what the model or annotator wrote. This scanner recognises math delimiters and
nothing else, is one pure function with unit tests, and without JavaScript the page
still shows the text exactly as written.

The rule (pandoc's ``tex_math_dollars`` + ``tex_math_single_backslash``):
- ``$...$`` is inline math only when the opening ``$`` is followed by a non-space and
  the closing ``$`` is preceded by a non-space and not followed by a digit; a ``$``
  after a space inside the span ends the attempt ("$5 and $x^2$": only ``x^2`` is math);
  a blank line ends it too.
- ``$$...$$`` and ``\\[...\\]`` are display math; ``\\(...\\)`` is inline math (as in LaTeX).
- ``\\$`` shows a plain ``$``. Everything else is text, escaped.
"""

from __future__ import annotations

import re

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

_SPECIAL = re.compile(r"[$\\]")
_BLANK_LINE = re.compile(r"\n[ \t\r]*\n")


def _inline_dollar_end(text: str, i: int) -> int | None:
    """Index of the closing ``$`` of inline math opened at ``i``, or None (pandoc's rule)."""
    n = len(text)
    if i + 1 >= n or text[i + 1].isspace():
        return None
    j = i + 1
    while j < n:
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == "$":
            if text[j - 1].isspace():
                return None
            if j + 1 < n and "0" <= text[j + 1] <= "9":
                return None
            return j
        if c == "\n" and _BLANK_LINE.match(text, j):
            return None
        j += 1
    return None


def split_math(text: str) -> list[tuple[str, str, str]]:
    """``[(kind, content, source)]`` with kind "text", "inline" or "display"; for math,
    content is the TeX and source the original text with its delimiters."""
    out: list[tuple[str, str, str]] = []
    buf: list[str] = []
    n, i = len(text), 0

    def flush() -> None:
        joined = "".join(buf)
        buf.clear()
        if joined:
            out.append(("text", joined, ""))

    def math(kind: str, tex: str, source: str) -> None:
        flush()
        out.append((kind, tex, source))

    while i < n:
        m = _SPECIAL.search(text, i)
        if m is None:
            buf.append(text[i:])
            break
        k = m.start()
        buf.append(text[i:k])
        i = k
        two = text[i : i + 2]
        if two == "\\$":
            buf.append("$")
            i += 2
        elif two in ("\\(", "\\["):
            close = "\\)" if two == "\\(" else "\\]"
            end = text.find(close, i + 2)
            if end < 0:
                buf.append(two)
                i += 2
            else:
                math("inline" if two == "\\(" else "display", text[i + 2 : end], text[i : end + 2])
                i = end + 2
        elif two == "\\\\" or (text[i] == "\\"):
            buf.append(two)  # an escaped backslash or any other command stays as written
            i += len(two)
        elif two == "$$":
            end = text.find("$$", i + 2)
            if end < 0 or not text[i + 2 : end].strip():
                buf.append("$$")
                i += 2
            else:
                math("display", text[i + 2 : end], text[i : end + 2])
                i = end + 2
        else:  # a single "$"
            closing = _inline_dollar_end(text, i)
            if closing is None:
                buf.append("$")
                i += 1
            else:
                math("inline", text[i + 1 : closing], text[i : closing + 1])
                i = closing + 1
    flush()
    return out


def render_math_html(text: object) -> SafeString:
    """Escaped HTML: text as written, each formula a ``span.tex`` that KaTeX typesets.
    The span shows the formula's source until (and unless) KaTeX replaces it."""
    if text is None:
        return mark_safe("")
    parts: list[str] = []
    for kind, content, source in split_math(str(text)):
        if kind == "text":
            parts.append(escape(content))
        else:
            display = "1" if kind == "display" else "0"
            parts.append(
                f'<span class="tex{" tex-display" if display == "1" else ""}" data-display="{display}" '
                f'data-tex="{escape(content)}">{escape(source)}</span>'
            )
    return mark_safe("".join(parts))


@register.filter(name="mathtext", is_safe=True)
def mathtext(value: object) -> SafeString:
    return render_math_html(value)
