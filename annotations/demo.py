"""A small hand-written demo dataset in ProcessBench format.

Written for the quickstart and the tests: grade-school problems with correct
solutions and solutions whose first error is an arithmetic slip or a wrong
reading of the question, so every page and audit signal has something to show.
"""

from __future__ import annotations

import json
from pathlib import Path

# (id, problem, steps, label = 0-based first wrong step or -1, final_answer_correct)
DEMO_ROWS: list[tuple[str, str, list[str], int, bool]] = [
    ("demo-0", "A baker makes 210 muffins in the morning and 91 in the afternoon. How many muffins does she make in total?",
     ["In the morning she makes 210 muffins and in the afternoon 91 muffins.",
      "The total is $210 + 91 = 300$ muffins.",
      "So she makes 300 muffins in total."], 1, False),
    ("demo-1", "A baker makes 210 muffins in the morning and 91 in the afternoon. How many muffins does she make in total?",
     ["In the morning she makes 210 muffins and in the afternoon 91 muffins.",
      "The total is $210 + 91 = 301$ muffins.",
      "So she makes 301 muffins in total."], -1, True),
    ("demo-2", "Tom has 3 boxes with 12 pencils each. He gives away 15 pencils. How many pencils does he have left?",
     ["Tom has $3 \\times 12 = 36$ pencils.",
      "After giving away 15 he has $36 - 15 = 21$ pencils.",
      "The answer is 21."], -1, True),
    ("demo-3", "Tom has 3 boxes with 12 pencils each. He gives away 15 pencils. How many pencils does he have left?",
     ["Tom has $3 \\times 12 = 32$ pencils.",
      "After giving away 15 he has $32 - 15 = 17$ pencils.",
      "The answer is 17."], 0, False),
    ("demo-4", "A train travels at 60 km/h for 2.5 hours. How far does it travel?",
     ["Distance is speed times time.",
      "So the distance is $60 \\times 2.5 = 150$ km.",
      "The train travels 150 km."], -1, True),
    ("demo-5", "A train travels at 60 km/h for 2.5 hours. How far does it travel?",
     ["Distance is speed divided by time.",
      "So the distance is $60 / 2.5 = 24$ km.",
      "The train travels 24 km."], 0, False),
    ("demo-6", "Solve for $x$: $3x + 7 = 22$.",
     ["Subtract 7 from both sides: $3x = 15$.",
      "Divide both sides by 3: $x = 5$.",
      "The answer is $x = 5$."], -1, True),
    ("demo-7", "Solve for $x$: $3x + 7 = 22$.",
     ["Subtract 7 from both sides: $3x = 29$.",
      "Divide both sides by 3: $x = 29/3$.",
      "The answer is $x = \\frac{29}{3}$."], 0, False),
    ("demo-8", "A shirt costs $40 and is on sale for 25% off. What is the sale price?",
     ["25% of $40 is 0.25 * $40 = $10.",
      "The sale price is $40 - $10 = $30.",
      "The answer is $30."], -1, True),
    ("demo-9", "A shirt costs $40 and is on sale for 25% off. What is the sale price?",
     ["25% of $40 is 0.25 * $40 = $10.",
      "The sale price is $40 - $10 = $20.",
      "The answer is $20."], 1, False),
    ("demo-10", "What is the sum of the first 10 positive integers?",
     ["The sum of the first $n$ positive integers is $\\frac{n(n+1)}{2}$.",
      "For $n = 10$ this is $\\frac{10 \\cdot 11}{2} = 55$.",
      "The answer is 55."], -1, True),
    ("demo-11", "What is the sum of the first 10 positive integers?",
     ["The sum of the first $n$ positive integers is $\\frac{n(n-1)}{2}$.",
      "For $n = 10$ this is $\\frac{10 \\cdot 9}{2} = 45$.",
      "The answer is 45."], 0, False),
]


def write_demo_processbench(path: Path) -> Path:
    rows = [
        {"id": rid, "generator": "demo-writer", "problem": problem, "steps": steps,
         "final_answer_correct": final_ok, "label": label}
        for rid, problem, steps, label, final_ok in DEMO_ROWS
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1))
    return path
