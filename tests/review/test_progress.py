"""Progress counts: per queue scope (queue page, review screen), per reviewer and dataset
(team pages); blind: the second decision moves them alike whether or not it agrees."""

from __future__ import annotations

import re

from django.urls import reverse

from review import team
from review.models import Assignment, ReviewItem
from review.progress import assignment_rows, dataset_rows, reviewer_rows, scope_progress
from review.queue import QueueFilter, claim_next

from .conftest import decide, split_teacher


def _num(html: str, id_: str) -> str:
    return re.search(rf'id="{id_}">([^<]+)<', html).group(1)


def test_it_counts_done_left_and_today_per_queue(client, make_run, reviewer, reviewer2, settings):
    settings.REVIEW_DOUBLE_FRACTION = 0.0
    run = make_run(n_samples=2)
    total = ReviewItem.objects.filter(run=run, queue="matched").count()
    for _ in range(3):
        decide(claim_next(reviewer, QueueFilter()), reviewer, "sound")
    decide(claim_next(reviewer2, QueueFilter()), reviewer2, "flawed")
    p = scope_progress(QueueFilter(queue="matched"), reviewer)
    assert (p.done, p.left.n, p.total.n, p.today, p.mine_done, p.mine_today) == (4, total - 4, total, 4, 3, 3)
    client.force_login(reviewer)
    page = client.get(reverse("review:queue") + "?queue=matched").content.decode()
    assert _num(page, "progress-done") == "4" and _num(page, "progress-left") == str(total - 4)
    assert _num(page, "progress-total") == str(total) and _num(page, "progress-mine") == "3"
    item = claim_next(reviewer, QueueFilter())
    screen = client.get(reverse("review:item", args=[item.critique.uuid]) + "?queue=matched").content.decode()
    assert re.search(rf"<b>4</b> of <b>{total}</b> · <b>{total - 4}</b> left · you <b>3</b> today", screen)


def test_it_moves_the_counts_alike_whether_the_second_review_agrees(make_run, reviewer, reviewer2, settings):
    settings.REVIEW_DOUBLE_FRACTION = 1.0
    make_run(split_teacher, n_samples=2)
    first, second = ReviewItem.objects.filter(queue="matched").order_by("id")[:2]
    seen = []
    for item, verdict in ((first, "sound"), (second, "flawed")):
        decide(item, reviewer, "sound")
        before = scope_progress(QueueFilter(queue="matched"), reviewer)
        decide(item, reviewer2, verdict)
        after = scope_progress(QueueFilter(queue="matched"), reviewer)
        seen.append((after.done - before.done, after.left.n - before.left.n, after.today - before.today))
    assert seen[0] == seen[1] == (1, -1, 1)


def test_it_tabulates_reviewers_datasets_and_targets(make_run, admin, reviewer, reviewer2, settings, demo):
    settings.REVIEW_DOUBLE_FRACTION = 0.0
    run = make_run(n_samples=1)
    team.assign(admin, reviewer, run=run, target=4)
    for _ in range(2):
        decide(claim_next(reviewer, QueueFilter()), reviewer, "sound")
    rows = {r.user.username: r for r in reviewer_rows([reviewer, reviewer2])}
    assert (rows["reviewer"].total, rows["reviewer"].today, rows["reviewer"].week) == (2, 2, 2)
    assert rows["reviewer2"].total == 0 and rows["reviewer2"].per_hour is None
    [row] = dataset_rows()
    open_n = ReviewItem.objects.filter(state="open").count()
    assert (row.name, row.done, row.left.n, row.today, row.week) == ("demo", 2, open_n, 2, 2)
    [a] = assignment_rows(list(Assignment.objects.all()))
    assert (a.done, a.percent_of_target, a.left.n) == (2, 50, open_n)
