"""Gold items (issue 18, item 4): known answers served blind, seeded planted flaws, and
reviewers' accuracy on them. Data through the project's importer, run processor, audit
and review actions."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from annotations.models import ErrorType
from dashboards.models import DashboardCell
from dashboards.summaries import refresh_now
from inference.models import Critique
from review import gold
from review.agreement import agreement
from review.models import GoldItem, GoldServing, LabelCorrection, ReviewItem
from review.queue import QueueFilter, claim_next
from review.reviews import submit_review, undo_last
from review.seeding import detected
from tests.review.conftest import critique, decide
from training.export import create_export_job, run_export_job
from training.pools import eligible_critiques

MATCHED = QueueFilter(queue="matched")


def checked_teacher(now, i):
    """Sound-looking critiques whose Calculation Analysis states a true equation."""
    return critique("Yes", calc="Recomputed: 7 * 8 = 56, as the step says."), 0.9


@pytest.fixture
def sound(make_run, settings, reviewer2):
    """One run, single review; every matched critique reviewed sound by reviewer2."""
    settings.REVIEW_DOUBLE_FRACTION = 0.0
    settings.REVIEW_GOLD_RATE = 0.0
    run = make_run(checked_teacher, n_samples=1)
    items = list(ReviewItem.objects.filter(run=run, queue="matched").select_related("critique"))
    for item in items:
        decide(item, reviewer2, "sound")
    return run, items


def test_the_planted_arithmetic_flaw_is_caught_by_the_projects_own_audit(sound):
    _, items = sound
    source = items[0].critique
    g = gold.seed_flaw(source, "arithmetic")
    assert g.flaw == "arithmetic" and g.error_type.slug == "calculation" and g.answer == "flawed"
    assert "7 * 8 = 57" in g.text and "7 * 8 = 56" not in g.text
    assert g.text.rstrip().endswith("Verification: Is the step correct (Yes/No)? Yes")  # the verdict stays
    assert detected(g.text, "yes") and not detected(source.text, "yes")
    # The other kinds: a premise the problem never states, a conclusion against its analysis.
    premise = gold.seed_flaw(source, "premise")
    assert premise.error_type.slug == "counterfactual" and "as the problem states" in premise.text
    assert premise.flaw_detail["after"] not in source.step.solution.problem.question
    contra = gold.seed_flaw(source, "contradiction")
    assert "does not match the previous steps, so the Now Step is correct" in contra.text
    assert GoldItem.objects.filter(critique=source).count() == 3


def test_seeded_copies_never_reach_exports_agreement_or_the_error_type_dashboards(
    sound, reviewer, reviewer2, admin, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    run, items = sound
    calc = ErrorType.objects.get(slug="calculation")
    g = gold.seed_flaw(items[0].critique, "arithmetic")
    refresh_now()
    cells_before = sum(DashboardCell.objects.filter(error_type__isnull=True).values_list("n", flat=True))
    pairs_before = [(p.reviewer_a, p.reviewer_b, p.items) for p in agreement()]
    # Both reviewers are served the seeded flaw and tag it: a copy each.
    settings.REVIEW_GOLD_RATE = 1.0
    copies = []
    for user in (reviewer, admin):
        item = gold.claim_next(user, MATCHED)
        assert item.critique.gold_copy and item.critique.text == g.text
        submit_review(item, user, "flawed", error_types=[calc])
        copies.append(item.critique)
    assert GoldServing.objects.filter(gold=g).count() == 2
    uuids = {str(c.uuid) for c in copies}

    assert not set(eligible_critiques().values_list("uuid", flat=True)) & {c.uuid for c in copies}
    for kinds in (["sft"], ["dpo"]):
        job = run_export_job(
            create_export_job(admin, {"kinds": kinds, "balance": False, "val_fraction": 0.0}, queue=False).id
        )
        assert job.status == "succeeded", job.error
        for name in job.files:
            if name.endswith(".jsonl"):
                text = (job.folder() / name).read_text()
                assert not uuids & set(re.findall(r"[0-9a-f-]{36}", text)) and "7 * 8 = 57" not in text
    assert [(p.reviewer_a, p.reviewer_b, p.items) for p in agreement()] == pairs_before
    refresh_now()
    cells_after = sum(DashboardCell.objects.filter(error_type__isnull=True).values_list("n", flat=True))
    assert cells_after == cells_before == Critique.objects.filter(gold_copy=False).count()
    assert not DashboardCell.objects.filter(error_type=calc, via="tag").exists()  # the copies' tags
    drill = reverse("dashboards:critiques") + "?basis=tag&type=calculation"
    client = Client()
    client.force_login(admin)
    assert not uuids & set(re.findall(r'data-critique="([0-9a-f-]+)"', client.get(drill).content.decode()))


def test_a_gold_item_is_served_blind_and_only_to_its_reviewer(client, sound, reviewer, reviewer2, settings):
    run, items = sound
    source = items[0].critique
    gold.mark_gold(source, None, "sound")
    settings.REVIEW_GOLD_RATE = 1.0
    client.force_login(reviewer)
    response = client.post(reverse("review:claim"), {"queue": "matched"})
    copy = GoldServing.objects.get(reviewer=reviewer).copy
    assert response.status_code == 302 and str(copy.uuid) in response.url
    page = client.get(response.url).content.decode()
    # Same sample number as its source, and the source is not shown beside it.
    assert f"sample {source.sample_index}" in page and str(source.uuid) not in page
    assert "gold" not in page.lower()
    # reviewer2 reviewed the source: never served it; nobody else can claim the copy.
    assert list(gold.unseen(reviewer2)) == []
    settings.REVIEW_GOLD_RATE = 0.0
    item = ReviewItem.objects.get(critique=copy)
    item.lease_holder = item.lease_expires_at = item.leased_at = None
    item.save()
    while (other := claim_next(reviewer2, MATCHED)) is not None:
        assert other.pk != item.pk
        decide(other, reviewer2, "skip")


def test_calibration_scores_reviewers_with_intervals_and_flags_the_weak(
    client, sound, reviewer, admin, settings
):
    run, items = sound
    settings.REVIEW_GOLD_MIN_N, settings.REVIEW_GOLD_MIN_ACCURACY = 2, 0.7
    gold.seed_flaw(items[0].critique, "arithmetic")
    gold.seed_flaw(items[1].critique, "premise")
    gold.mark_gold(items[2].critique, admin, "sound")
    settings.REVIEW_GOLD_RATE = 1.0
    answers = {"arithmetic": "sound", "premise": "flawed", "": "flawed"}  # 1 of 3 right
    for _ in range(3):
        item = gold.claim_next(reviewer, MATCHED)
        served = GoldServing.objects.get(copy=item.critique)
        submit_review(item, reviewer, answers[served.gold.flaw])
    (c,) = gold.calibration()
    assert (c.reviewer, c.right, c.answered, c.flagged) == ("reviewer", 1, 3, True)
    assert c.accuracy["lo"] < 1 / 3 < c.accuracy["hi"]
    assert {r["key"]: (r["k"], r["n"]) for r in c.types} == {"calculation": (0, 1), "counterfactual": (1, 1)}
    assert {r["key"]: (r["k"], r["n"]) for r in c.answers} == {"flawed": (1, 2), "sound": (0, 1)}
    client.force_login(reviewer)
    assert client.get(reverse("review:calibration")).status_code == 403
    client.force_login(admin)
    html = client.get(reverse("review:calibration")).content.decode()
    assert 'id="flagged-reviewers"' in html and "<b>reviewer</b> (1/3)" in html
    assert "1/3 · [" in html


def test_an_adjudicated_item_becomes_gold(make_run, reviewer, reviewer2, admin, settings):
    from review.reviews import adjudicate

    settings.REVIEW_DOUBLE_FRACTION = 1.0
    run = make_run(n_samples=1)
    item = ReviewItem.objects.filter(run=run, queue="matched").first()
    decide(item, reviewer, "sound")
    decide(item, reviewer2, "flawed")
    adjudicate(
        ReviewItem.objects.get(pk=item.pk),
        admin,
        "flawed",
        error_types=[ErrorType.objects.get(slug="calculation")],
    )
    g = GoldItem.objects.get(critique_id=item.critique_id)
    assert (g.source, g.answer, g.error_type.slug) == ("adjudicated", "flawed", "calculation")
    assert json.dumps(g.flaw_detail) == "{}"


def test_it_keeps_a_label_wrong_answer_on_a_gold_copy_off_the_source_step(sound, reviewer, admin, settings):
    _, items = sound
    source = items[0].critique
    gold.mark_gold(source, admin, "label_wrong")
    settings.REVIEW_GOLD_RATE = 1.0
    item = gold.claim_next(reviewer, MATCHED)
    served = GoldServing.objects.get(reviewer=reviewer)
    assert item.critique_id == served.copy_id and item.step_id == source.step_id
    submit_review(item, reviewer, "label_wrong", note="the step is right, the label is not")
    # A test of the reviewer, not a claim about the data: no correction on the source step.
    assert not LabelCorrection.objects.filter(step_id=source.step_id).exists()
    served.refresh_from_db()
    flipped = {"correct": "incorrect", "incorrect": "correct"}[source.step.label]
    assert served.proposed_label == flipped
    (c,) = gold.calibration()
    assert (c.right, c.answered) == (1, 1)
    assert undo_last(reviewer) is not None
    served.refresh_from_db()
    assert served.proposed_label == "" and not LabelCorrection.objects.exists()


def test_it_marks_gold_from_the_review_and_adjudication_screens(
    client, make_run, reviewer, reviewer2, admin, settings
):
    settings.REVIEW_DOUBLE_FRACTION = 1.0
    run = make_run(n_samples=1)
    first, second = ReviewItem.objects.filter(run=run, queue="matched").select_related("critique")[:2]
    decide(first, reviewer, "sound")
    decide(first, reviewer2, "flawed")  # a disagreement: waits for adjudication
    review_url = reverse("review:item", args=[second.critique.uuid])
    client.force_login(reviewer)
    assert 'id="mark-gold"' not in client.get(review_url).content.decode()  # reviewers never see it
    client.force_login(admin)
    page = client.get(review_url).content.decode()
    assert 'id="mark-gold"' in page and "not gold" in page
    calc = ErrorType.objects.get(slug="calculation")
    posted = client.post(
        reverse("review:mark_gold"),
        {"critique": second.critique.uuid, "answer": "flawed", "error_type": calc.id, "next": review_url},
    )
    assert posted.status_code == 302 and posted.url == review_url
    g = GoldItem.objects.get(critique=second.critique)
    assert (g.source, g.answer, g.error_type, g.created_by) == ("marked", "flawed", calc, admin)
    assert "gold answer:" in client.get(review_url).content.decode()
    adjudicate_url = reverse("review:adjudicate", args=[first.critique.uuid])
    assert 'id="mark-gold"' in client.get(adjudicate_url).content.decode()
    posted = client.post(
        reverse("review:mark_gold"),
        {"critique": first.critique.uuid, "answer": "sound", "next": adjudicate_url},
    )
    assert posted.url == adjudicate_url and GoldItem.objects.get(critique=first.critique).answer == "sound"
    # An off-site `next` falls back to the calibration page.
    posted = client.post(
        reverse("review:mark_gold"),
        {"critique": first.critique.uuid, "answer": "sound", "next": "https://evil.example/"},
    )
    assert posted.url == reverse("review:calibration")
    # A gold copy is never offered for marking.
    settings.REVIEW_GOLD_RATE = 1.0
    served = gold.serve(reviewer)
    assert (
        'id="mark-gold"'
        not in client.get(reverse("review:item", args=[served.critique.uuid])).content.decode()
    )
