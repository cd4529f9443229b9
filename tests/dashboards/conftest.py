"""Dashboard fixtures: a hand-counted cast of critiques and reviews.

Everything goes through the project's own paths: a PRMBench file through the importer,
teacher critiques through `import_critiques`, audits through `audit_run`, decisions
through `submit_review` / `adjudicate` / `undo_last`. Only what those paths decide by
hash or by text is pinned afterwards (which items are double-reviewed, which audit
signals fired, the critiques' timestamps), so every number below can be counted by hand.

The cast (step labels: C correct, I incorrect; verdicts Y / N / ? unparseable):

    run A1 (teacher-a, template v1), audited        run B (teacher-b, v1), audited
    a0 C  s0 Y  flawed, tag confidence               a0 C  Y  sound (double: S,S)
    a0 C  s1 N  open                                 a1 I  N  flawed (double: F,F)
    a1 I     Y  label wrong (adjudicated)            b0 I  N  sound (double: S,S)
    a2 C     Y  sound                                c2 I  N  label wrong proposed -> adjudication
    b0 I     N  flawed, tag calculation
    b1 C     Y  sound                                run A2 (teacher-a, template v2), not audited
    c0 C  s0 Y  sound                                d0 C  Y  (unqueued)
    c0 C  s1 ?  open                                 d1 I  Y  (unqueued)
    c1 C     Y  flawed, tag calculation
    c2 I     Y  sound
    d0 C     Y  double F (tag deception) / S -> adjudicated flawed, tag deception
    d1 I     N  open (a flawed review tagged deception was undone)

Classes: a, b counterfactual; c calculation; d deception. A1's a and b critiques are
written Sunday 2025-03-09 23:59:59 UTC (week of 03-03), the rest of A1 and A2 Monday
2025-03-10 00:00:00 UTC (week of 03-10), B on 2025-03-24 (week of 03-24).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from annotations.actions import import_file
from annotations.models import ErrorType
from inference.models import Critique, GenerationRun
from review.models import CritiqueAudit, ReviewItem
from tests.annotations.factories_files import prmbench_row, write_jsonl

PRM_ROWS = [
    ("a", "counterfactual", [2], 3),
    ("b", "counterfactual", [1], 2),
    ("c", "calculation", [3], 3),
    ("d", "deception", [2], 2),
]
CLASS_OF = {idx: cls for idx, cls, _, _ in PRM_ROWS}

# (solution, step index, sample, verdict or None for unparseable)
TEACHER_A1 = [
    ("a", 0, 0, "Yes"),
    ("a", 0, 1, "No"),
    ("a", 1, 0, "Yes"),
    ("a", 2, 0, "Yes"),
    ("b", 0, 0, "No"),
    ("b", 1, 0, "Yes"),
    ("c", 0, 0, "Yes"),
    ("c", 0, 1, None),
    ("c", 1, 0, "Yes"),
    ("c", 2, 0, "Yes"),
    ("d", 0, 0, "Yes"),
    ("d", 1, 0, "No"),
]
TEACHER_A2 = [("d", 0, 0, "Yes"), ("d", 1, 0, "Yes")]
TEACHER_B = [("a", 0, 0, "Yes"), ("a", 1, 0, "No"), ("b", 0, 0, "No"), ("c", 2, 0, "No")]

SUNDAY_LATE = datetime(2025, 3, 9, 23, 59, 59, tzinfo=UTC)
MONDAY = datetime(2025, 3, 10, 0, 0, 0, tzinfo=UTC)
LATER = datetime(2025, 3, 24, 12, 0, 0, tzinfo=UTC)


def critique_text(verdict: str | None) -> str:
    body = (
        "Previous Steps Analysis: Fine.\nNow Step Analysis: The Now Step computes the value.\n"
        "Data Source Analysis: From the problem.\nConsistency Analysis: Consistent.\n"
        "Calculation Analysis: Checked.\n"
    )
    if verdict is None:
        return body + "Conclusion: I cannot decide."
    word = "correct" if verdict == "Yes" else "incorrect"
    return (
        body + f"Conclusion: The Now Step is {word}.\nVerification: Is the step correct (Yes/No)? {verdict}"
    )


def ensure_taxonomy() -> None:
    """Transactional tests (live server) flush the migration-seeded error types."""
    from annotations.taxonomy import ERROR_TYPES

    for order, row in enumerate(ERROR_TYPES):
        ErrorType.objects.get_or_create(slug=row["slug"], defaults={**row, "order": order})


def second_template():
    """Version 2 of the default template (a changed system prompt)."""
    from inference.actions import save_template
    from inference.core.prompts import DEFAULT_TEMPLATE

    return save_template(
        dataclasses.replace(DEFAULT_TEMPLATE, system=DEFAULT_TEMPLATE.system + " Be thorough.")
    )


def import_teacher(tmp_path, dataset, rows, model: str, name: str, template=None) -> GenerationRun:
    from inference.critique_import import import_critiques

    lines = [
        {"solution_id": f"{s}/{CLASS_OF[s]}", "step_index": i, "sample_index": k, "text": critique_text(v)}
        for s, i, k, v in rows
    ]
    path = write_jsonl(tmp_path / f"{name}.jsonl", lines)
    run, _ = import_critiques(path, dataset=dataset, model_name=model, template=template)
    return run


@dataclass
class Cast:
    dataset: object
    a1: GenerationRun
    a2: GenerationRun
    b: GenerationRun
    critiques: dict = field(default_factory=dict)  # (run name, solution, step, sample) -> Critique

    def c(self, run: str, sol: str, step: int, sample: int = 0) -> Critique:
        return self.critiques[(run, sol, step, sample)]

    def item(self, run: str, sol: str, step: int, sample: int = 0) -> ReviewItem:
        return ReviewItem.objects.get(critique=self.c(run, sol, step, sample))


def build_cast(tmp_path, admin, reviewer, reviewer2) -> Cast:
    from django.test import override_settings

    from dashboards.summaries import refresh_now
    from review.audit import audit_run
    from review.queue import take_item
    from review.reviews import adjudicate, submit_review, undo_last

    ensure_taxonomy()
    rows = [prmbench_row(idx, cls, errs, n, question=f"Question {idx}?") for idx, cls, errs, n in PRM_ROWS]
    dataset = import_file(
        write_jsonl(tmp_path / "prm-mini.jsonl", rows), dataset_name="prm-mini", fmt="prmbench"
    ).dataset
    a1 = import_teacher(tmp_path, dataset, TEACHER_A1, "teacher-a", "a1")
    a2 = import_teacher(tmp_path, dataset, TEACHER_A2, "teacher-a", "a2", template=second_template())
    b = import_teacher(tmp_path, dataset, TEACHER_B, "teacher-b", "b")
    cast = Cast(dataset, a1, a2, b)
    for name, run, spec in (("A1", a1, TEACHER_A1), ("A2", a2, TEACHER_A2), ("B", b, TEACHER_B)):
        for s, i, k, _ in spec:
            cast.critiques[(name, s, i, k)] = Critique.objects.get(
                run=run, step__solution__source_id=f"{s}/{CLASS_OF[s]}", step__index=i, sample_index=k
            )
    with override_settings(REVIEW_DOUBLE_FRACTION=0):
        audit_run(a1.id)
        audit_run(b.id)

    # Timestamps decide the week buckets.
    Critique.objects.filter(
        run=a1, step__solution__source_id__in=["a/counterfactual", "b/counterfactual"]
    ).update(created_at=SUNDAY_LATE)
    Critique.objects.filter(run=a1, step__solution__source_id__in=["c/calculation", "d/deception"]).update(
        created_at=MONDAY
    )
    Critique.objects.filter(run=a2).update(created_at=MONDAY)
    Critique.objects.filter(run=b).update(created_at=LATER)

    # Audit signals and flags, pinned (the text checks would find little in these critiques).
    CritiqueAudit.objects.filter(critique__run__in=[a1, b]).update(signals=[], suspicion=0)
    ReviewItem.objects.filter(run__in=[a1, b]).update(flagged=False, suspicion=0)

    def signals(key, kinds):
        CritiqueAudit.objects.filter(critique=cast.c(*key)).update(
            signals=[{"kind": k, "strength": 1.0, "weight": 0.5, "message": k, "evidence": {}} for k in kinds]
        )

    signals(("A1", "a", 0, 0), ["sample_disagreement", "false_calculation_claim"])
    signals(("A1", "b", 0, 0), ["false_calculation_claim"])
    signals(("A1", "a", 2, 0), ["sample_disagreement"])
    signals(("A1", "d", 0, 0), ["p_yes_uncertain"])
    signals(("A1", "d", 1, 0), ["false_calculation_claim"])
    ReviewItem.objects.filter(critique__in=[cast.c("A1", "a", 0, 0), cast.c("A1", "a", 2, 0)]).update(
        flagged=True
    )

    double = [cast.c("A1", "d", 0), cast.c("B", "a", 0), cast.c("B", "a", 1), cast.c("B", "b", 0)]
    ReviewItem.objects.filter(critique__in=double).update(needs_double_review=True, reviews_needed=2)

    types = {t.slug: t for t in ErrorType.objects.all()}

    def review(user, key, decision, ms, tags=()):
        take_item(cast.item(*key).critique_id, user)  # deciding needs the lease
        return submit_review(
            cast.item(*key), user, decision, time_on_task_ms=ms, error_types=[types[t] for t in tags]
        )

    # reviewer: 13 active reviews of 10 s, 20 s, ... 130 s.
    review(reviewer, ("A1", "a", 0, 0), "flawed", 10_000, ["confidence"])
    review(reviewer, ("A1", "a", 2, 0), "sound", 20_000)
    review(reviewer, ("A1", "b", 0, 0), "flawed", 30_000, ["calculation"])
    review(reviewer, ("A1", "b", 1, 0), "sound", 40_000)
    review(reviewer, ("A1", "c", 0, 0), "sound", 50_000)
    review(reviewer, ("A1", "c", 1, 0), "flawed", 60_000, ["calculation"])
    review(reviewer, ("A1", "a", 1, 0), "label_wrong", 70_000)
    review(reviewer, ("A1", "c", 2, 0), "sound", 80_000)
    review(reviewer, ("A1", "d", 0, 0), "flawed", 90_000, ["deception"])
    review(reviewer, ("B", "a", 0, 0), "sound", 100_000)
    review(reviewer, ("B", "a", 1, 0), "flawed", 110_000)
    review(reviewer, ("B", "b", 0, 0), "sound", 120_000)
    review(reviewer, ("B", "c", 2, 0), "label_wrong", 130_000)
    # An undone review: neither its decision nor its tag counts anywhere.
    review(reviewer, ("A1", "d", 1, 0), "flawed", 999_000, ["deception"])
    undo_last(reviewer)
    # reviewer2: the second reviews of the double-reviewed items, 5 s, 15 s, 25 s, 35 s.
    review(reviewer2, ("A1", "d", 0, 0), "sound", 5_000)
    review(reviewer2, ("B", "a", 0, 0), "sound", 15_000)
    review(reviewer2, ("B", "a", 1, 0), "flawed", 25_000)
    review(reviewer2, ("B", "b", 0, 0), "sound", 35_000)

    adjudicate(cast.item("A1", "a", 1, 0), admin, "label_wrong")
    adjudicate(cast.item("A1", "d", 0, 0), admin, "flawed", error_types=[types["deception"]])
    refresh_now()
    return cast


@pytest.fixture
def cast(db, tmp_path, admin, reviewer, reviewer2) -> Cast:
    return build_cast(tmp_path, admin, reviewer, reviewer2)


def critique_ids(qs) -> set[int]:
    return set(qs.values_list("id", flat=True))


def dump(obj) -> str:  # for assertion messages
    return json.dumps(obj, default=str, indent=1)[:4000]


# --- a bigger, realistic-looking data set for the browser tests and screenshots -----------------


def build_showcase(tmp_path, admin, reviewer, reviewer2, *, seed: int = 7) -> dict:
    """Two teachers over six weeks on a PRMBench-like set of every class: ~1,400 critiques,
    ~450 reviews with some double reviews, adjudications, tags and audit signals. The
    flawed rate falls week by week and differs by class, so every chart has a shape."""
    import random
    from datetime import timedelta

    from django.test import override_settings
    from django.utils import timezone

    from annotations.taxonomy import ERROR_TYPES
    from dashboards.slices import monday
    from dashboards.summaries import refresh_now
    from inference.critique_import import import_critiques
    from inference.models import Critique
    from review.audit import audit_run
    from review.queue import take_item
    from review.reviews import adjudicate, submit_review

    rng = random.Random(seed)
    ensure_taxonomy()
    slugs = [row["slug"] for row in ERROR_TYPES]
    rows, solutions = [], []
    for i in range(60):
        cls = slugs[i % len(slugs)]
        errors = [] if cls == "multi_solutions" else [2 + i % 4]
        rows.append(prmbench_row(f"s{i}", cls, errors, 5, question=f"Showcase question {i}?"))
        solutions.append((f"s{i}/{cls}", cls, {e - 1 for e in errors}))
    dataset = import_file(
        write_jsonl(tmp_path / "showcase.jsonl", rows), dataset_name="prmbench-showcase", fmt="prmbench"
    ).dataset
    from inference.actions import default_template

    v1 = default_template()
    v2 = second_template()
    flaw_base = {
        "calculation": 0.4,
        "confidence": 0.35,
        "counterfactual": 0.25,
        "deception": 0.3,
        "domain_inconsistency": 0.2,
        "step_contradiction": 0.15,
        "missing_condition": 0.22,
        "circular": 0.12,
        "redundency": 0.06,
        "multi_solutions": 0.1,
    }
    this_monday = monday(timezone.now().date())
    runs = []
    for week in range(6):
        for teacher, accuracy in (("llama-3.3-70b-instruct", 0.8), ("qwen2.5-72b-instruct", 0.87)):
            chosen = rng.sample(solutions, 12)
            lines = []
            for sid, _cls, wrong in chosen:
                for step in range(5):
                    for sample in range(2):
                        right = rng.random() < (accuracy if step not in wrong else accuracy - 0.2)
                        says_yes = (step not in wrong) == right
                        verdict = None if rng.random() < 0.02 else ("Yes" if says_yes else "No")
                        lines.append(
                            {
                                "solution_id": sid,
                                "step_index": step,
                                "sample_index": sample,
                                "text": critique_text(verdict),
                                "p_yes": round(
                                    rng.uniform(0.55, 0.99) if says_yes else rng.uniform(0.01, 0.45), 3
                                ),
                            }
                        )
            path = write_jsonl(tmp_path / f"{teacher}-{week}.jsonl", lines)
            template = v2 if teacher.startswith("qwen") and week >= 3 else v1
            run, _ = import_critiques(path, dataset=dataset, model_name=teacher, template=template)
            start = timezone.make_aware(
                timezone.datetime.combine(
                    this_monday - timedelta(weeks=5 - week), timezone.datetime.min.time()
                )
            )
            Critique.objects.filter(run=run).update(created_at=start + timedelta(hours=rng.randint(1, 100)))
            runs.append((run, week, teacher))
    with override_settings(REVIEW_DOUBLE_FRACTION=0.1):
        for run, _, _ in runs:
            audit_run(run.id)
    types = {t.slug: t for t in ErrorType.objects.all()}
    class_of = {sid: cls for sid, cls, _ in solutions}
    items = list(
        ReviewItem.objects.filter(run__in=[r for r, _, _ in runs]).select_related(
            "critique", "step__solution"
        )
    )
    rng.shuffle(items)
    week_of = {run.id: week for run, week, _ in runs}
    strong = {"qwen2.5-72b-instruct"}
    teacher_of = {run.id: teacher for run, _, teacher in runs}
    signals_for: dict[int, list[str]] = {}
    reviewers = [reviewer, reviewer2]
    for n, item in enumerate(items[:430]):
        cls = class_of[item.step.solution.source_id]
        week = week_of[item.run_id]
        matched = item.queue == "matched"
        p_flaw = flaw_base[cls] * (1 - 0.12 * week) * (0.7 if teacher_of[item.run_id] in strong else 1)
        if matched:
            decision = "flawed" if rng.random() < p_flaw else "sound"
        elif item.queue == "disagreed":
            decision = "label_wrong" if rng.random() < 0.15 else ("skip" if rng.random() < 0.05 else "sound")
        else:
            decision = "skip"
        tags = []
        if decision == "flawed" and rng.random() < 0.6:
            tags = [types[rng.choice([cls, "calculation", "confidence"])]]
        first = reviewers[n % 2]
        ms = (
            int(rng.lognormvariate(3.3, 0.5) * 1000)
            if first == reviewer
            else int(rng.lognormvariate(3.0, 0.4) * 1000)
        )
        take_item(item.critique_id, first)
        submit_review(item, first, decision, time_on_task_ms=ms, error_types=tags)
        if item.needs_double_review and decision != "label_wrong":
            second = reviewers[(n + 1) % 2]
            other = (
                decision
                if rng.random() < 0.8 or decision == "skip"
                else ("sound" if decision == "flawed" else "flawed")
            )
            take_item(item.critique_id, second)
            submit_review(item, second, other, time_on_task_ms=int(rng.uniform(10, 60) * 1000))
        flawed = decision == "flawed"
        kinds = []
        for kind, p_if_flawed, p_if_sound in (
            ("false_calculation_claim", 0.5, 0.06),
            ("sample_disagreement", 0.45, 0.25),
            ("p_yes_uncertain", 0.3, 0.2),
            ("conclusion_contradicts_verdict", 0.2, 0.02),
            ("missing_sections", 0.05, 0.05),
        ):
            if rng.random() < (p_if_flawed if flawed else p_if_sound):
                kinds.append(kind)
        signals_for[item.critique_id] = kinds
    for critique_id, kinds in signals_for.items():
        CritiqueAudit.objects.filter(critique_id=critique_id).update(
            signals=[
                {"kind": k, "strength": 1.0, "weight": 0.5, "message": k, "evidence": {}} for k in kinds
            ],
            suspicion=0.6
            if {"false_calculation_claim", "conclusion_contradicts_verdict"} & set(kinds)
            else 0.1,
        )
        ReviewItem.objects.filter(critique_id=critique_id).update(
            flagged=bool({"false_calculation_claim", "conclusion_contradicts_verdict"} & set(kinds))
        )
    waiting = list(ReviewItem.objects.filter(state=ReviewItem.State.ADJUDICATION).order_by("id"))
    for item in waiting[: len(waiting) // 2]:
        decision = (
            "label_wrong"
            if item.final_decision == "" and item.step.label_corrections.filter(status="pending").exists()
            else "flawed"
        )
        adjudicate(item, admin, decision)
    # Reviews happen over the six weeks too (the throughput chart).
    from review.models import Review

    for review in Review.objects.select_related("critique"):
        Review.objects.filter(id=review.id).update(
            created_at=min(timezone.now(), review.critique.created_at + timedelta(days=rng.uniform(0, 6)))
        )
    refresh_now()
    return {"dataset": dataset, "runs": [r for r, _, _ in runs]}
