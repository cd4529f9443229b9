"""Train/eval overlap of problem texts.

PRMBench builds 3,203 of its items from PRM800K phase-1 *train* problems, so a
model trained on PRM800K is contaminated there. :func:`overlap_report` finds eval
questions whose text is also a training question, verbatim and after
:func:`normalize_question`, so the contaminated share can be reported (and
excluded) next to the score.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

# Markup that changes how a problem looks, not what it says.
_NOISE = re.compile(
    r"\\(?:left|right|displaystyle|textstyle|limits|nolimits|quad|qquad|[,;:! ])"
    r"|\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\b"
    r"|\$|\\\(|\\\)|\\\[|\\\]"
)
# Punctuation goes; math operators and digits stay, so "x+1" and "x-1" differ.
_PUNCT = re.compile(r"[^\w\s+\-*/=<>^|]")
_AROUND_OPS = re.compile(r"\s*([+\-*/=<>^|])\s*")


def normalize_question(text: str) -> str:
    """Lowercased text without LaTeX spacing/markup noise, punctuation or extra whitespace.

    NFKC first (full-width digits, ligatures); ``\\dfrac``/``\\tfrac`` read as
    ``\\frac``; braces and backslashes go, so ``\\frac{1}{2}`` and ``\\frac12``
    agree; spaces around operators go, so ``x + 1`` and ``x+1`` agree.
    """
    s = unicodedata.normalize("NFKC", text or "").lower()
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = _NOISE.sub(" ", s)
    s = re.sub(r"\\([a-z]+)", r" \1 ", s)  # a command is a word: "}\cdot 8" == "} \cdot 8"
    s = re.sub(r"[{}\\]", "", s)  # grouping only: "\frac{1}{2}" and "\frac12" agree
    s = _PUNCT.sub(" ", s)
    s = s.replace("_", " ")
    s = _AROUND_OPS.sub(r"\1", s)
    return re.sub(r"\s+", " ", s).strip()


def overlap_report(eval_questions: Mapping[Any, str], train_questions: Iterable[str]) -> dict[str, Any]:
    """Which eval questions also occur in the training questions.

    ``exact``: the text equals a training text after stripping outer whitespace.
    ``normalized``: equal after :func:`normalize_question` (a superset of exact).
    Ids are listed in the order of ``eval_questions``; rates are fractions of the
    eval questions. Empty texts never match.
    """
    exact_set: set[str] = set()
    norm_set: set[str] = set()
    for text in train_questions:
        if text and text.strip():
            exact_set.add(text.strip())
            norm_set.add(normalize_question(text))
    norm_set.discard("")
    exact_ids, norm_ids = [], []
    for qid, text in eval_questions.items():
        if not text or not text.strip():
            continue
        if text.strip() in exact_set:
            exact_ids.append(qid)
        if normalize_question(text) in norm_set:
            norm_ids.append(qid)
    n = len(eval_questions)
    return {
        "n_eval": n,
        "n_train": len(exact_set),
        "exact": {"count": len(exact_ids), "rate": len(exact_ids) / n if n else 0.0, "ids": exact_ids},
        "normalized": {"count": len(norm_ids), "rate": len(norm_ids) / n if n else 0.0, "ids": norm_ids},
    }
