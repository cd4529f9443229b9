"""Blind all the way (issue 18, item 6): the dashboards a reviewer sees do not move while
an item is in blind double review, whatever they download or drill into.

Each check is made as the second reviewer (`reviewer2`), with the summaries rebuilt before
every look, and compared with what an admin sees at the same moment (which must move, or
the test could not fail).
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from annotations.models import ErrorType
from dashboards.models import DashboardRefresh
from dashboards.summaries import refresh_now
from review.models import ReviewItem
from review.reviews import adjudicate, final_tags
from tests.review.conftest import decide

CSVS = [
    "/dashboards/reviews/?csv=backlog",
    "/dashboards/reviews/?csv=progress",
    "/dashboards/reviews/?csv=reviewers",
    "/dashboards/reviews/?csv=signals&signals=all",
    "/dashboards/reviews/?csv=pairs",
    "/dashboards/?basis=tag&csv=types",
    "/dashboards/?csv=types",
    "/dashboards/?basis=tag&trend=calculation&csv=trend",
    "/dashboards/?basis=tag&trend=calculation&csv=confusion",
]
DRILLS = [
    "/dashboards/critiques/",
    "/dashboards/critiques/?outcome=partial",
    "/dashboards/critiques/?outcome=adjudication",
    "/dashboards/critiques/?outcome=awaiting",
    "/dashboards/critiques/?basis=tag&type=calculation",
    "/dashboards/critiques/?reviewer=reviewer",
    "/dashboards/critiques/?reviewer=reviewer2",
]
PAGES = ["/dashboards/", "/dashboards/?basis=tag&trend=calculation", "/dashboards/reviews/"]


def _strip(html: str) -> str:
    """A page without what changes on every request: the CSRF token, the summaries' age."""
    html = re.sub(r'"X-CSRFToken": ?"[^"]+"', "", html)
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    return re.sub(r'<div id="dash-refresh".*?</div>', "", html, flags=re.S)


def snapshot(client, user) -> dict[str, str]:
    refresh_now()
    client.force_login(user)
    out = {}
    for url in CSVS + DRILLS + PAGES:
        response = client.get(url)
        assert response.status_code == 200, url
        out[url] = _strip(response.content.decode())
    return out


def changed(a: dict[str, str], b: dict[str, str]) -> list[str]:
    return [url for url in a if a[url] != b[url]]


@pytest.fixture
def sealed_item(make_run, settings, reviewer, reviewer2):
    """Every item double-reviewed; one already settled by agreement (so the numbers are not
    all zero), and the next matched item, not yet decided, returned."""
    settings.REVIEW_DOUBLE_FRACTION = 1.0
    run = make_run(n_samples=1)
    calc = ErrorType.objects.get(slug="calculation")
    items = list(ReviewItem.objects.filter(run=run, queue="matched").order_by("id")[:2])
    settled, item = items
    decide(settled, reviewer, "flawed", error_types=[calc])
    decide(settled, reviewer2, "flawed", error_types=[calc])
    assert ReviewItem.objects.get(pk=settled.pk).state == "done"
    return item


def test_the_second_reviewer_sees_no_dashboard_move_until_adjudication(
    client, sealed_item, reviewer, reviewer2, admin
):
    item, calc = sealed_item, ErrorType.objects.get(slug="calculation")
    blind0, admin0 = snapshot(client, reviewer2), snapshot(client, admin)

    decide(item, reviewer, "flawed", error_types=[calc], note="the sum is wrong")
    blind1, admin1 = snapshot(client, reviewer2), snapshot(client, admin)
    assert changed(blind0, blind1) == []
    assert "/dashboards/reviews/?csv=progress" in changed(admin0, admin1)  # partial +1 for admins

    decide(item, reviewer2, "sound")
    assert ReviewItem.objects.get(pk=item.pk).state == "adjudication"
    blind2, admin2 = snapshot(client, reviewer2), snapshot(client, admin)
    assert changed(blind0, blind2) == []
    assert "/dashboards/reviews/?csv=backlog" in changed(admin1, admin2)  # disagreements +1

    adjudicate(ReviewItem.objects.get(pk=item.pk), admin, "sound")
    blind3 = snapshot(client, reviewer2)
    assert "/dashboards/reviews/?csv=progress" in changed(blind0, blind3)
    assert str(item.critique.uuid) in blind3["/dashboards/critiques/"]
    # Adjudicated sound: the overruled reviewer's tag is not the critique's tag any more.
    assert final_tags([item.critique_id]) == {}
    calc_row = [r for r in blind3["/dashboards/?basis=tag&csv=types"].splitlines() if ",calculation," in r]
    assert calc_row and calc_row[0].split(",")[4] == "1"  # critiques: the settled item only
    assert calc_row == [
        r for r in blind0["/dashboards/?basis=tag&csv=types"].splitlines() if ",calculation," in r
    ]
    assert str(item.critique.uuid) not in blind3["/dashboards/critiques/?basis=tag&type=calculation"]


def test_a_reviewer_cannot_refresh_the_dashboards(client, sealed_item, reviewer2, admin):
    before = DashboardRefresh.objects.count()
    client.force_login(reviewer2)
    assert client.post(reverse("dashboards:refresh")).status_code == 403
    assert DashboardRefresh.objects.count() == before
    client.force_login(admin)
    assert client.post(reverse("dashboards:refresh")).status_code == 302
    assert DashboardRefresh.objects.filter(status="succeeded").count() == before + 1


def test_tags_follow_the_final_decision(sealed_item, reviewer, reviewer2, admin):
    """Adjudicated flawed: the upheld reviewer's tag and the adjudicator's count, the
    overruled sound reviewer had none; undone reviews never count."""
    item = sealed_item
    types = {t.slug: t for t in ErrorType.objects.all()}
    decide(item, reviewer, "flawed", error_types=[types["calculation"]])
    decide(item, reviewer2, "sound", error_types=[types["confidence"]])
    assert final_tags([item.critique_id], "errortype__slug") == {
        item.critique_id: {"calculation", "confidence"}
    }  # before adjudication (admins' view of a pending item): every active review's tags
    adjudicate(ReviewItem.objects.get(pk=item.pk), admin, "flawed", error_types=[types["deception"]])
    assert final_tags([item.critique_id], "errortype__slug") == {
        item.critique_id: {"calculation", "deception"}
    }
