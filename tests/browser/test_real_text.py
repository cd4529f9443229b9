"""Text written like the public sets, in chromium, on every page that shows it:
GSM8K money reads exactly as written, MATH $...$ and \\(...\\) are typeset, a mixed
sentence gets both right; odd model output (NUL, RTL, combining marks, 200 KB) is
flagged and does not break the review screen's layout. Screenshots: test-results/."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotations.actions import import_file
from evaluation.models import GuidanceResult, GuidanceRun
from evaluation.workflow import create_evaluation, process_evaluation
from inference.actions import create_run, endpoint_for
from inference.models import Critique, ModelEndpoint
from inference.runner import process_run
from review.audit import audit_run
from tests.annotations.factories_files import write_jsonl
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD
from tests.evaluation.conftest import ScriptedScorer
from tests.review.conftest import WriterBackend, critique

pytestmark = pytest.mark.browser

GSM8K_Q = ("A store gives customers rewards of $1 off their next purchase for every $20 they spend. "
           "Ann spends $60. How many dollars off does she get?")  # fmt: skip
GSM8K_STEPS = ["She spends $60, and $60 / $20 = 3.", "So she gets 3 rewards of $1, which is $3 off."]
MATH_Q = r"If $f(x) = x^2 + 1$, what is \(f(3)\)?"
MATH_STEPS = ["We substitute: $f(3) = 3^2 + 1$.", r"So \[f(3) = 10.\]", "The answer is $$10$$"]
MIXED_Q = "An apple costs $5 and $x^2$ apples are bought. What do they cost when $x = 3$?"
MIXED_STEPS = ["There are $x^2 = 9$ apples.", "They cost 9 * $5 = $45."]
ROWS = [
    {"id": "gsm8k-4", "generator": "m", "problem": GSM8K_Q, "steps": GSM8K_STEPS, "label": -1,
     "final_answer_correct": True},
    {"id": "math-0", "generator": "m", "problem": MATH_Q, "steps": MATH_STEPS, "label": -1,
     "final_answer_correct": True},
    {"id": "mixed-0", "generator": "m", "problem": MIXED_Q, "steps": MIXED_STEPS, "label": 1,
     "final_answer_correct": False},
]  # fmt: skip
ODD = "RTL: שלום עולם مرحبا بالعالم. Combining: " + "Z\u0351\u0352\u0353\u0354" * 300 + " NUL:\x00 end. "


def teacher(now, i):
    if i == 0:  # money and math as a real teacher writes them
        return critique("Yes", calc="The step pays $60 for $x$ items; $60 / 20 = 3$ holds, so $1 each."), 0.9
    return critique("Yes", calc=ODD + "y" * 200_000), 0.8  # 200 KB, RTL, combining, NUL


@pytest.fixture
def real(db, tmp_path, admin):
    ds = import_file(write_jsonl(tmp_path / "pb.jsonl", ROWS), dataset_name="public-like", fmt="processbench",
                     split="gsm8k", user=admin).dataset  # fmt: skip
    run = create_run(dataset=ds, endpoint=endpoint_for("teacher", backend="transformers"), queue=False,
                     n_samples=2)  # fmt: skip
    process_run(run.id, backend=WriterBackend(teacher))
    audit_run(run.id)
    return ds, run


def no_horizontal_overflow(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def take(page) -> None:
    """A critique opened by link is taken (a POST, key `t`) before it can be decided."""
    page.wait_for_selector("#take-form")
    page.keyboard.press("t")
    page.wait_for_selector("#decision-form")


def test_public_text_reads_as_written_on_every_page(page, live_server, admin, real, shot, tmp_path):
    ds, run = real
    log_in(page, live_server, "admin", PASSWORD)
    sols = {s.source_id: s for s in ds.solutions.all()}

    # Solution page, GSM8K: the sentence exactly as written, nothing typeset.
    page.goto(f"{live_server.url}{reverse('annotations:solution_detail', args=[sols['gsm8k-4'].uuid])}")
    page.wait_for_selector("#steps")
    assert page.inner_text("#problem") == GSM8K_Q
    assert page.locator("#problem .katex, #steps .katex").count() == 0
    assert "She spends $60, and $60 / $20 = 3." in page.inner_text("#steps")
    shot(page, "realtext-solution-gsm8k")

    # MATH: $...$, \(...\), \[...\] and $$...$$ typeset; no delimiter left showing.
    page.goto(f"{live_server.url}{reverse('annotations:solution_detail', args=[sols['math-0'].uuid])}")
    page.wait_for_selector("#problem .katex")
    assert page.locator("#problem .katex").count() == 2
    assert page.locator("#steps .katex-display").count() == 2 and page.locator("#steps .katex").count() == 3
    assert "$" not in page.inner_text("#problem") and "\\(" not in page.inner_text("#problem")
    shot(page, "realtext-solution-math")

    # Mixed: "$5" stays money, "$x^2$" is math.
    page.goto(f"{live_server.url}{reverse('annotations:solution_detail', args=[sols['mixed-0'].uuid])}")
    page.wait_for_selector("#problem .katex")
    assert page.locator("#problem .katex").count() == 2
    assert page.inner_text("#problem").startswith("An apple costs $5 and ")
    assert "They cost 9 * $5 = $45." in page.inner_text("#steps")
    shot(page, "realtext-solution-mixed")

    # Dataset list: the question column uses the same rule.
    page.goto(f"{live_server.url}{reverse('annotations:dataset_detail', args=[ds.uuid])}")
    page.wait_for_selector("#solutions")
    assert "rewards of $1 off their next purchase for every $20" in page.inner_text("#solutions")
    assert page.locator("#solutions .katex").count() >= 3

    # Review screen with the odd sibling sample: GSM8K step as written, flags, layout holds.
    normal = Critique.objects.get(run=run, step__solution__source_id="gsm8k-4", step__index=0, sample_index=0)
    page.goto(f"{live_server.url}{reverse('review:item', args=[normal.uuid])}")
    take(page)
    assert "She spends $60, and $60 / $20 = 3." in page.inner_text("#steps")
    assert page.inner_text("#problem") == GSM8K_Q
    sections = page.inner_text("#critique-sections")
    assert "The step pays $60 for" in sections and "holds, so $1 each." in sections
    assert page.locator("#critique-sections .katex").count() == 2  # $x$ and $60 / 20 = 3$
    assert page.locator("#samples .badge.warn", has_text="text repaired").count() == 1
    assert no_horizontal_overflow(page)
    shot(page, "realtext-review-gsm8k")

    odd = Critique.objects.get(run=run, step__solution__source_id="gsm8k-4", step__index=0, sample_index=1)
    assert odd.text_repaired and len(odd.text) > 200_000
    page.goto(f"{live_server.url}{reverse('review:item', args=[odd.uuid])}")
    take(page)
    assert page.locator("#text-repaired").is_visible()
    assert "שלום עולם" in page.inner_text("#critique-sections") and "NUL:\ufffd end." in page.inner_text(
        "#critique-sections")  # fmt: skip
    assert no_horizontal_overflow(page)
    box = page.locator("#critique-sections .steptext").nth(4).bounding_box()
    assert box["height"] <= 36 * 16 + 40  # long text scrolls inside its box
    assert page.locator("#decision-form").is_visible()
    shot(page, "realtext-review-odd")

    # The review queue filters on flagged model text (matched queue: 6 odd samples of correct steps).
    page.goto(f"{live_server.url}{reverse('review:queue')}?queue=matched")
    page.wait_for_selector("#queue-items")
    assert page.locator("#queue-items tbody tr").count() == 12
    page.select_option("#id_text", "repaired")
    page.wait_for_function("document.querySelectorAll('#queue-items tbody tr').length === 6")
    assert "text=repaired" in page.url
    shot(page, "realtext-queue-repaired")

    # Critique detail: flag visible, sections typeset.
    page.goto(f"{live_server.url}{reverse('inference:critique_detail', args=[odd.uuid])}")
    page.wait_for_selector("#text-repaired")
    assert no_horizontal_overflow(page)
    shot(page, "realtext-critique-odd")
    page.goto(f"{live_server.url}{reverse('inference:critique_detail', args=[normal.uuid])}")
    page.wait_for_selector(".katex")
    assert page.locator("#text-repaired").count() == 0
    shot(page, "realtext-critique")

    # Run summary counts the repaired critiques.
    page.goto(f"{live_server.url}{reverse('inference:run_detail', args=[run.uuid])}")
    page.wait_for_selector("#text-repaired")
    assert page.inner_text("#text-repaired").startswith("7")  # one odd sample per step

    # Dashboard drill-down shows the step, same rule.
    page.goto(f"{live_server.url}{reverse('dashboards:critiques')}?run={run.id}")
    page.wait_for_selector("#drill-table")
    assert "She spends $60, and $60 / $20 = 3." in page.inner_text("#drill-table")
    assert page.locator("#drill-table .katex").count() >= 1
    shot(page, "realtext-drilldown")

    # Evaluation: the worst-scored table.
    endpoint = ModelEndpoint.objects.create(name="student", role="student", backend="transformers",
                                            path_or_url="x")  # fmt: skip
    ev = create_evaluation(benchmark="processbench", datasets=[ds], endpoint=endpoint, n_samples=1, queue=False)
    process_evaluation(ev.id, backend=ScriptedScorer(lambda p, i: 0.3))
    page.goto(f"{live_server.url}{reverse('evaluation:run_detail', args=[ev.uuid])}")
    page.wait_for_selector("#worst-table")
    worst = page.inner_text("#worst-table")
    assert "rewards of $1 off their next purchase for every $20" in worst
    assert page.locator("#worst-table .katex").count() >= 3
    shot(page, "realtext-evaluation")

    # Guidance: problem, reference, candidate steps and answers.
    guide = GuidanceRun.objects.create(kind="best_of_n", dataset=ds, policy=endpoint, scorer=endpoint,
                                       template=run.template, status="succeeded")  # fmt: skip
    GuidanceResult.objects.create(
        run=guide, problem=sols["mixed-0"].problem, reference_answer="$45",
        candidates=[{"steps": MIXED_STEPS, "step_scores": [0.9, 0.8], "answer": "$45", "correct": True}],
        selections={"min": {"index": 0, "answer": "$45", "correct": True},
                    "last": {"index": 0, "answer": "$45", "correct": True}},
    )  # fmt: skip
    page.goto(f"{live_server.url}{reverse('evaluation:guidance_detail', args=[guide.uuid])}")
    page.wait_for_selector("#guidance-problems")
    page.click("#guidance-problems details summary")
    table = page.inner_text("#guidance-problems")
    assert "An apple costs $5 and" in table and "They cost 9 * $5 = $45." in table
    assert page.locator("#guidance-problems .katex").count() >= 3
    shot(page, "realtext-guidance")
    assert page.js_errors == []
