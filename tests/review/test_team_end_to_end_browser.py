"""Issue 18's done-when, end to end in Debian's chromium on Postgres with a real Celery
worker: an admin builds a team on the team page (two reviewers, an adjudicator) and
assigns a dataset; critiques arrive through the project's own import, audited and queued
by the worker; the admin marks a gold item on the review screen and seeds planted flaws
on the calibration page; both reviewers review with the keyboard (the gold copies come
blind among their items); the adjudicator settles the disagreements with keys only and
save-and-next. The progress counts, gold accuracy with its Wilson interval and kappa
with its bootstrap interval and n on the pages are checked against numbers computed
here, independently of the app's own code."""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter

import pytest

from annotations.actions import import_file
from annotations.demo import write_demo_processbench
from annotations.models import Step
from inference.critique_import import import_critiques
from review.models import Adjudication, GoldItem, GoldServing, Review, ReviewItem
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD, wait_for

from .conftest import critique, decide, ensure_taxonomy

pytestmark = [pytest.mark.browser, pytest.mark.integration]

NEW_PASSWORD = "team-e2e-pass-42"
# A sound critique whose Calculation Analysis states a true equation: seeding can make it false.
SOUND = critique("Yes", calc="Recomputed: 7 * 8 = 56, as the step says.")
N_ITEMS = 8  # critiques of the second import; each reviewer decides the first REVIEWED of them
REVIEWED = 6
ANA = ["sound", "sound", "sound", "flawed", "sound", "flawed"]
BEN = ["sound", "flawed", "sound", "flawed", "sound", "sound"]
SETTLE = {1: "s", 5: "f"}  # the adjudicator's key per disagreeing position
KEYS = {"sound": "s", "flawed": "f", "label_wrong": "l"}
UUID_RE = re.compile(r"/(?:critiques|adjudication)/([0-9a-f-]{36})/")


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _kappa(pairs: list[tuple[str, str]]) -> float | None:
    n = len(pairs)
    p_o = sum(a == b for a, b in pairs) / n
    ca, cb = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    p_e = sum(ca[x] * cb[x] for x in ca) / (n * n)
    return None if p_e == 1 else (p_o - p_e) / (1 - p_e)


def _bootstrap(pairs: list[tuple[str, str]], reps: int = 4000) -> tuple[float, float]:
    """Percentile interval of kappa over items resampled with replacement."""
    rng = random.Random(7)
    values = sorted(k for _ in range(reps) if (k := _kappa([rng.choice(pairs) for _ in pairs])) is not None)
    return values[int(0.025 * len(values))], values[int(0.975 * len(values)) - 1]


def _write(path, steps: list[Step]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for step in steps:
            fh.write(
                json.dumps({"solution_id": step.solution.source_id, "step_index": step.index, "text": SOUND})
                + "\n"
            )


def _import(tmp_path, name: str, dataset, steps: list[Step]) -> int:
    """Critiques through the project's import; the worker audits them and queues them."""
    _write(tmp_path / name, steps)
    run, created = import_critiques(tmp_path / name, dataset=dataset, model_name="cluster-teacher")
    assert created
    wait_for(lambda: ReviewItem.objects.filter(run=run).count() == len(steps), timeout=120, what="audit")
    return run.id


def _create(page, base: str, username: str, role: str) -> str:
    page.goto(f"{base}/team/")
    page.fill("#id_username", username)
    page.fill("#id_password", NEW_PASSWORD)
    page.check(f'#new-roles input[value="{role}"]')
    page.click("#create-member")
    page.wait_for_selector("#roles-form")
    return page.url


def _assign(page, member_url: str, dataset_name: str) -> None:
    page.goto(member_url)
    page.select_option("#assign-form select[name=dataset]", label=dataset_name)
    page.click("#assign")
    page.wait_for_selector(f"#assignments >> text={dataset_name}")


def _as(page, live_server, username: str, password: str = NEW_PASSWORD) -> None:
    page.context.clear_cookies()
    log_in(page, live_server, username, password)


def _review(
    page, live_server, username: str, plan: list[str], order: list[str], wrong: set[str]
) -> list[str]:
    """Review by keyboard until `plan` is done: gold copies get their answer (except the
    flaws in `wrong`, answered sound), the run's items the plan's decision by their
    position in `order` (the first reviewer's order, filled as she goes)."""
    _as(page, live_server, username)
    page.goto(f"{live_server.url}/review/?queue=matched")
    page.wait_for_selector("#queue-progress")
    page.keyboard.press("Enter")
    seen: list[str] = []
    while len([u for u in seen if u in order]) < len(plan):
        page.wait_for_selector("#decision-form")
        here = page.url
        uuid = UUID_RE.search(here).group(1)
        served = GoldServing.objects.filter(copy__uuid=uuid).select_related("gold").first()
        if served is not None:
            answer = "sound" if served.gold.flaw in wrong else served.gold.answer
        else:
            if uuid not in order:
                order.append(uuid)
            answer = plan[order.index(uuid)]
        seen.append(uuid)
        page.keyboard.press(KEYS[answer])
        page.wait_for_function(f"location.href !== {here!r}")
    return seen


def test_it_runs_the_review_team_end_to_end(
    page, live_server, start_worker, worker_env, reviewer, reviewer2, admin, shot, settings, tmp_path
):
    # Every critique gets two reviews (the worker builds the items); gold comes first while unseen.
    worker_env["REVIEW_DOUBLE_FRACTION"] = "1.0"
    settings.REVIEW_DOUBLE_FRACTION = 1.0
    settings.REVIEW_GOLD_RATE = 1.0
    ensure_taxonomy()
    dataset = import_file(
        write_demo_processbench(tmp_path / "demo.json"), dataset_name="demo", fmt="processbench"
    ).dataset
    correct = list(
        Step.objects.filter(solution__dataset=dataset, label="correct")
        .select_related("solution")
        .order_by("id")
    )
    assert len(correct) > N_ITEMS
    start_worker("default")
    base = live_server.url

    # Earlier work: one critique reviewed sound by two of the cast, the source of the gold.
    first_run = _import(tmp_path, "earlier.jsonl", dataset, correct[:1])
    source = ReviewItem.objects.select_related("critique").get(run_id=first_run)
    decide(source, reviewer, "sound")
    decide(ReviewItem.objects.get(pk=source.pk), reviewer2, "sound")

    log_in(page, live_server, "admin", PASSWORD)
    page.goto(f"{base}/review/critiques/{source.critique.uuid}/")
    page.click('#mark-gold button[data-gold-answer="sound"]')
    page.wait_for_selector("#gold-answer >> text=gold answer:")
    shot(page, "e2e-mark-gold")
    page.goto(f"{base}/review/calibration/")
    page.click("#seed-flaws")
    page.wait_for_selector("text=planted flaws from sound")
    golds = list(GoldItem.objects.values_list("flaw", "answer"))
    assert ("", "sound") in golds and ("arithmetic", "flawed") in golds
    shot(page, "e2e-calibration-seeded")

    ana_url = _create(page, base, "ana", "reviewer")
    ben_url = _create(page, base, "ben", "reviewer")
    _create(page, base, "cleo", "adjudicator")
    _assign(page, ana_url, "demo")
    _assign(page, ben_url, "demo")
    shot(page, "e2e-team-member")

    # The critiques to review arrive now, through the import and the worker's audit.
    run = _import(tmp_path, "critiques.jsonl", dataset, correct[1 : 1 + N_ITEMS])
    order: list[str] = []
    n_gold = len(golds)
    ana_seen = _review(page, live_server, "ana", ANA, order, wrong=set())
    # The review screen's chip: an item is done once both reviews are in (none of ana's
    # yet but the earlier one); her own gold copies count like any item she decides.
    chip = " ".join(page.inner_text("#progress").split())
    assert (
        chip
        == f"matched: {1 + n_gold} of {1 + N_ITEMS + n_gold} · {N_ITEMS} left · you {n_gold + REVIEWED} today"
    )
    shot(page, "e2e-review-ana")
    ben_seen = _review(page, live_server, "ben", BEN, order, wrong={"arithmetic"})
    chip = " ".join(page.inner_text("#progress").split())
    done, total = 1 + REVIEWED + n_gold, 1 + N_ITEMS + n_gold
    assert chip == f"matched: {done} of {total} · {N_ITEMS - REVIEWED} left · you {n_gold + REVIEWED} today"
    shot(page, "e2e-review-ben")
    assert len(ana_seen) == len(ben_seen) == n_gold + REVIEWED  # every gold item served to each, blind
    assert (
        len(order) == REVIEWED
        and ReviewItem.objects.filter(run_id=run, critique__uuid__in=order).count() == REVIEWED
    )

    # The adjudicator settles the two disagreements with keys only, save-and-next.
    _as(page, live_server, "cleo")
    page.goto(f"{base}/review/adjudication/")
    assert page.locator("#adjudication-items tbody tr").count() == len(SETTLE)
    shot(page, "e2e-adjudication-list")
    page.keyboard.press("Enter")
    for _ in SETTLE:
        page.wait_for_selector("#decision-form")
        assert page.locator("#adjudication-reviews .review-card").count() == 2
        here = page.url
        uuid = UUID_RE.search(here).group(1)
        page.keyboard.press(SETTLE[order.index(uuid)])
        page.wait_for_function(f"location.href !== {here!r}")
    page.wait_for_selector("text=Nothing else waits for your adjudication.")
    settled = {
        order.index(str(c)): d
        for c, d in Adjudication.objects.values_list("item__critique__uuid", "decision")
    }
    assert settled == {1: "sound", 5: "flawed"}

    _as(page, live_server, "admin", PASSWORD)
    # Progress: of the run's N_ITEMS, REVIEWED have both reviews in; the earlier item is done too.
    page.goto(f"{base}/team/progress/")
    row = page.locator('#dataset-progress tr[data-dataset="demo"]')
    assert row.locator("td.done").inner_text() == str(REVIEWED + 1)
    assert row.locator("td.left").inner_text() == str(N_ITEMS - REVIEWED)
    shot(page, "e2e-team-progress")

    # Gold accuracy: ana answered every gold item right, ben missed the planted arithmetic flaw.
    page.goto(f"{base}/review/calibration/")
    for name, right in (("ana", n_gold), ("ben", n_gold - 1)):
        lo, hi = _wilson(right, n_gold)
        cell = page.locator(f'#calibration tr[data-reviewer="{name}"] .accuracy').inner_text()
        expected = f"{round(100 * right / n_gold)}% {right}/{n_gold} · [{round(100 * lo)}–{round(100 * hi)}%]"
        assert " ".join(cell.split()) == expected, (name, cell, expected)
    calc = page.locator('#calibration tr[data-reviewer="ben"] [data-type="calculation"]').inner_text()
    assert "0/1" in calc
    shot(page, "e2e-calibration")

    # Kappa over the six items both decided, with its interval and n.
    page.goto(f"{base}/review/agreement/")
    pair = page.locator("#pairs tr", has_text="ana · ben")
    pairs = list(zip(ANA, BEN, strict=True))
    kappa, (lo, hi) = _kappa(pairs), _bootstrap(pairs)
    assert pair.locator("td").nth(1).inner_text() == str(REVIEWED)
    assert pair.locator(".kappa-decisions .kappa-value").inner_text() == f"{kappa:.2f}"
    shown = re.match(
        r"\[(-?[\d.]+), (-?[\d.]+)\] · n\s(\d+)", pair.locator(".kappa-decisions .kappa-ci").inner_text()
    )
    assert shown and int(shown.group(3)) == REVIEWED
    assert abs(float(shown.group(1)) - lo) <= 0.15 and abs(float(shown.group(2)) - hi) <= 0.15, (
        shown.groups(),
        lo,
        hi,
    )
    assert pair.locator(".kappa-decisions .kappa-few").count() == 1  # n < 30 is flagged
    shot(page, "e2e-agreement")
    assert (
        Review.objects.filter(reviewer__username__in=["ana", "ben"], critique__gold_copy=True).count()
        == 2 * n_gold
    )
    assert page.js_errors == []
