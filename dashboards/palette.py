"""Colours of the dashboards' charts and the confusion matrix's HTML outcome bars."""

from __future__ import annotations

from typing import TypedDict

from .slices import OUTCOME_NAMES

COLORS = {
    "a": "#2456c7",
    "b": "#d9822b",
    "bad": "#c0392b",
    "ok": "#1a7f4b",
    "neutral": "#b7791f",
    "muted": "#8a94a3",
    "purple": "#5b2fa6",
    "teal": "#138a8a",
}
OUTCOME_COLORS = {
    "sound": COLORS["ok"],
    "flawed": COLORS["bad"],
    "label_wrong": COLORS["neutral"],
    "partial": "#7aa2ff",
    "adjudication": COLORS["purple"],
    "open": "#c5ccd6",
    "unqueued": "#e6e9ee",
}
# Stacking orders: flawed first where the question is "how much is wrong", sound first
# in the review queue's progress.
FLAWED_FIRST = ("flawed", "sound", "label_wrong", "adjudication", "partial", "open", "unqueued")
SOUND_FIRST = ("sound", "flawed", "label_wrong", "adjudication", "partial", "open", "unqueued")


def palette(i: int) -> str:
    order = ["a", "b", "teal", "purple", "ok", "neutral", "bad", "muted"]
    return COLORS[order[i % len(order)]]


class Segment(TypedDict):
    outcome: str
    name: str
    n: int
    width: float
    color: str
    link: str | None


def minibar(outcomes: dict[str, int], links: dict[str, str] | None = None) -> list[Segment]:
    """A confusion-matrix cell's outcome bar (HTML segments, the chart's colours)."""
    total = sum(outcomes.values()) or 1
    return [
        {
            "outcome": o,
            "name": OUTCOME_NAMES[o],
            "n": outcomes[o],
            "width": round(100 * outcomes[o] / total, 2),
            "color": OUTCOME_COLORS[o],
            "link": (links or {}).get(o),
        }
        for o in FLAWED_FIRST
        if outcomes.get(o)
    ]
