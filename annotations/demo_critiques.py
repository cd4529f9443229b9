"""Hand-written critiques of the demo dataset: a recorded "demo teacher".

The quickstart's tiny random model writes noise, so the review queue would have
nothing worth auditing. These critiques are written by us, in the R-PRM format,
and imported through the same path as critiques produced elsewhere (an offline
`vllm serve` job, another team's teacher): `import_critiques`. They are shown as
a separate run whose model is named "demo-teacher (hand-written)". Some are sound;
some reach the right verdict for the wrong reason (plausible-but-wrong), so the
audit signals have real cases to find.
"""

from __future__ import annotations

import json
from pathlib import Path

Q = "Verification: Is the step correct (Yes/No)?"


def critique(prev: str, now: str, data: str, cons: str, calc: str, concl: str, verdict: str) -> str:
    return (
        f"Previous Steps Analysis: {prev}\n"
        f"Now Step Analysis: {now}\n"
        f"Data Source Analysis: {data}\n"
        f"Consistency Analysis: {cons}\n"
        f"Calculation Analysis: {calc}\n"
        f"Conclusion: {concl}\n"
        f"{Q} {verdict}"
    )


# (solution source id, 0-based step index, sample index, text)
DEMO_CRITIQUES: list[tuple[str, int, int, str]] = [
    (
        "demo-0",
        1,
        0,
        critique(
            "Step 1 restates the two quantities, 210 and 91, correctly.",
            "The Now Step adds the morning and afternoon muffins.",
            "Both numbers come from the problem statement and are used as given.",
            "Adding the two batches is the right operation for a total.",
            "$210 + 91 = 301$, but the Now Step writes 300. Reversing: $300 - 91 = 209 \\ne 210$.",
            "The Now Step makes an arithmetic error, so it is incorrect.",
            "No",
        ),
    ),
    # Plausible but wrong, and the verdict disagrees with the label.
    (
        "demo-0",
        1,
        1,
        critique(
            "Step 1 restates the two quantities correctly.",
            "The Now Step adds the two batches.",
            "The numbers come from the problem.",
            "Addition is the right operation.",
            "Adding, $210 + 91 = 300$, which matches the Now Step.",
            "The Now Step is correct.",
            "Yes",
        ),
    ),
    (
        "demo-1",
        1,
        0,
        critique(
            "Step 1 restates the two quantities correctly.",
            "The Now Step adds the morning and afternoon muffins.",
            "210 and 91 are taken from the problem.",
            "A total calls for addition; nothing contradicts Step 1.",
            "$210 + 91 = 301$. Reversing: $301 - 91 = 210$, which checks out.",
            "The Now Step is correct.",
            "Yes",
        ),
    ),
    # Right verdict, wrong check: the reverse subtraction it claims is false.
    (
        "demo-1",
        1,
        1,
        critique(
            "Step 1 is a correct restatement.",
            "The Now Step computes the total number of muffins.",
            "The numbers come from the problem.",
            "The step is consistent with Step 1.",
            "Checking by reversing the addition: $301 - 91 = 200$, consistent with the morning batch.",
            "The calculation holds, so the Now Step is correct.",
            "Yes",
        ),
    ),
    (
        "demo-2",
        0,
        0,
        critique(
            "There are no previous steps; this is the first step.",
            "The Now Step counts all pencils in the three boxes.",
            "3 boxes and 12 pencils per box come from the problem.",
            "Multiplying boxes by pencils per box is the right operation.",
            "$3 \\times 12 = 36$; dividing back, $36 / 3 = 12$.",
            "The Now Step is correct.",
            "Yes",
        ),
    ),
    # The conclusion says the step is wrong but the verdict line says Yes.
    (
        "demo-3",
        0,
        0,
        critique(
            "There are no previous steps.",
            "The Now Step multiplies boxes by pencils per box.",
            "The numbers come from the problem.",
            "The operation is the right one.",
            "$3 \\times 12 = 36$, not 32.",
            "The Now Step is incorrect because the product is wrong.",
            "Yes",
        ),
    ),
    (
        "demo-3",
        0,
        1,
        critique(
            "There are no previous steps.",
            "The Now Step multiplies boxes by pencils per box.",
            "The numbers come from the problem.",
            "The operation is right but the result is not.",
            "$3 \\times 12 = 36$, while the Now Step writes 32.",
            "The Now Step is incorrect.",
            "No",
        ),
    ),
    (
        "demo-4",
        1,
        0,
        critique(
            "Step 1 correctly states that distance is speed times time.",
            "The Now Step applies the formula to 60 km/h and 2.5 hours.",
            "Speed and time come from the problem; the formula from Step 1.",
            "The Now Step follows Step 1.",
            "$60 \\times 2.5 = 150$; check: $150 / 2.5 = 60$.",
            "The Now Step is correct.",
            "Yes",
        ),
    ),
    # The second sample disagrees with the first on the same step.
    (
        "demo-4",
        1,
        1,
        critique(
            "Step 1 states the formula.",
            "The Now Step computes the distance.",
            "The numbers come from the problem.",
            "Consistent with Step 1.",
            "$60 \\times 2.5 = 150$.",
            "The units do not match, so the Now Step is incorrect.",
            "No",
        ),
    ),
    # Right verdict, wrong arithmetic inside the check.
    (
        "demo-6",
        0,
        0,
        critique(
            "There are no previous steps; this is the first step.",
            "The Now Step subtracts 7 from both sides of $3x + 7 = 22$.",
            "The equation comes from the problem.",
            "Subtracting the same amount from both sides keeps the equation true.",
            "$22 - 7 = 16$, and the step says $3x = 15$; rounding aside, this is the expected value.",
            "The Now Step is correct.",
            "Yes",
        ),
    ),
    (
        "demo-7",
        0,
        0,
        critique(
            "There are no previous steps.",
            "The Now Step subtracts 7 from both sides.",
            "The equation comes from the problem.",
            "The operation is right but the right-hand side is wrong.",
            "$22 - 7 = 15$, while the Now Step writes $3x = 29$ (it added 7 instead).",
            "The Now Step is incorrect.",
            "No",
        ),
    ),
    # Cites a step that does not exist (the solution has three steps).
    (
        "demo-9",
        1,
        0,
        critique(
            "Step 1 computes the discount: 0.25 * $40 = $10, correct.",
            "The Now Step subtracts the discount from the price.",
            "40 comes from the problem and 10 from Step 1; Step 5 confirms the price.",
            "Consistent with Step 1.",
            "$40 - $10 = $30, but the Now Step writes $20.",
            "The Now Step is incorrect.",
            "No",
        ),
    ),
    (
        "demo-10",
        1,
        0,
        critique(
            "Step 1 states the formula $n(n+1)/2$ correctly.",
            "The Now Step evaluates it at $n = 10$.",
            "n comes from the problem, the formula from Step 1.",
            "Consistent with Step 1.",
            "$10 \\cdot 11 = 110$ and $110 / 2 = 55$.",
            "The Now Step is correct.",
            "Yes",
        ),
    ),
    (
        "demo-11",
        0,
        0,
        critique(
            "There are no previous steps.",
            "The Now Step states a formula for the sum of the first n integers.",
            "The formula is not from the problem; it is recalled.",
            "The correct formula is $n(n+1)/2$; the step uses $n(n-1)/2$.",
            "For $n = 3$: $1 + 2 + 3 = 6$ but $3 \\cdot 2 / 2 = 3$.",
            "The Now Step is incorrect.",
            "No",
        ),
    ),
]


def write_demo_critiques(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for solution_id, step_index, sample_index, text in DEMO_CRITIQUES:
            out.write(
                json.dumps(
                    {
                        "solution_id": solution_id,
                        "step_index": step_index,
                        "sample_index": sample_index,
                        "text": text,
                    }
                )
                + "\n"
            )
    return path
