"""The seeded error-type taxonomy: PRMBench's nine classes plus calculation error.

Slugs keep PRMBench's own spelling (``redundency``) so imported classifications map
one-to-one; names are spelled properly for people.
"""

ERROR_TYPES: list[dict[str, str]] = [
    {"slug": "redundency", "name": "Redundancy", "dimension": "simplicity",
     "definition": "The step is valid but unnecessary: removing it leaves the solution intact."},
    {"slug": "circular", "name": "Circular logic", "dimension": "simplicity",
     "definition": "The step assumes what it sets out to show, or loops back to an earlier claim."},
    {"slug": "counterfactual", "name": "Counterfactual", "dimension": "soundness",
     "definition": "The step states something that contradicts the problem's facts or known truths."},
    {"slug": "step_contradiction", "name": "Step contradiction", "dimension": "soundness",
     "definition": "The step contradicts an earlier step of the same solution."},
    {"slug": "domain_inconsistency", "name": "Domain inconsistency", "dimension": "soundness",
     "definition": "The step uses a concept, rule or theorem outside the domain where it holds."},
    {"slug": "confidence", "name": "Confident hallucination", "dimension": "soundness",
     "definition": "A wrong claim stated with unwarranted certainty, often as if verified."},
    {"slug": "missing_condition", "name": "Missing condition", "dimension": "sensitivity",
     "definition": "The step ignores a condition or case the problem requires."},
    {"slug": "deception", "name": "Deception", "dimension": "sensitivity",
     "definition": "A subtly altered step that looks right but changes the meaning or value."},
    {"slug": "multi_solutions", "name": "Multiple solutions", "dimension": "sensitivity",
     "definition": "A valid alternative path; a PRM should accept it (scored on positive F1 only)."},
    {"slug": "calculation", "name": "Calculation error", "dimension": "calculation",
     "definition": "An arithmetic or algebraic computation in the step is wrong."},
]

PRMBENCH_DIMENSIONS = {
    "simplicity": ["redundency", "circular"],
    "soundness": ["counterfactual", "step_contradiction", "domain_inconsistency", "confidence"],
    "sensitivity": ["missing_condition", "deception", "multi_solutions"],
}
