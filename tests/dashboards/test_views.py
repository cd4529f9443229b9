"""Dashboard views: access, query counts, CSV = table numbers, htmx partials, drill-down."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.urls import reverse

from dashboards.models import DashboardRefresh

PAGES = ["dashboards:error_types", "dashboards:compare", "dashboards:reviews", "dashboards:critiques"]


def _csv(response) -> list[dict]:
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def _chart(response, name: str) -> dict:
    match = re.search(
        rf'<script id="{name}-data" type="application/json">(.*?)</script>', response.content.decode(), re.S
    )
    assert match, name
    return json.loads(match.group(1))


def test_anonymous_users_are_sent_to_log_in(client, db):
    for name in PAGES + ["dashboards:refresh_status"]:
        response = client.get(reverse(name))
        assert response.status_code == 302 and response.url.startswith(reverse("login")), name
    assert client.post(reverse("dashboards:refresh")).status_code == 302


def test_outsiders_get_403_and_reviewers_and_admins_get_in(client, cast, outsider, reviewer, admin):
    client.force_login(outsider)
    for name in PAGES + ["dashboards:refresh_status"]:
        assert client.get(reverse(name)).status_code == 403, name
    assert client.post(reverse("dashboards:refresh")).status_code == 403
    for user in (reviewer, admin):
        client.force_login(user)
        for name in PAGES:
            assert client.get(reverse(name)).status_code == 200, (user, name)


@pytest.mark.parametrize(
    "name, params, limit",
    [
        ("dashboards:error_types", {}, 16),
        (
            "dashboards:error_types",
            {"teacher": "TEACHER", "basis": "tag", "trend": "calculation", "weeks": "52"},
            16,
        ),
        ("dashboards:compare", {"same": "1"}, 14),
        ("dashboards:reviews", {"signals": "all"}, 16),
        ("dashboards:critiques", {"type": "calculation", "outcome": "reviewed"}, 12),
    ],
)
def test_each_dashboard_needs_a_fixed_number_of_queries(
    client, cast, admin, django_assert_max_num_queries, name, params, limit
):
    client.force_login(admin)
    params = {k: str(cast.a1.endpoint_id) if v == "TEACHER" else v for k, v in params.items()}
    with django_assert_max_num_queries(limit):
        assert client.get(reverse(name), params).status_code == 200


def test_the_error_type_page_shows_the_table_definitions_and_charts(client, cast, reviewer):
    client.force_login(reviewer)
    response = client.get(
        reverse("dashboards:error_types"), {"teacher": cast.a1.endpoint_id, "basis": "class"}
    )
    html = response.content.decode()
    assert 'id="definitions"' in html and "How a critique gets an error type" in html
    # Hover help from ErrorType.definition.
    assert (
        'title="The step states something that contradicts the problem&#x27;s facts or known truths."' in html
    )
    row = re.search(r'<tr data-type="counterfactual">(.*?)</tr>', html, re.S).group(1)
    assert "50.0%" in row and "15.0–85.0" in row and "20.0%" in row  # PBW 2/4, label wrong 1/5
    pbw = _chart(response, "pbw")
    i = pbw["labels"].index("Counterfactual")
    assert pbw["datasets"][0]["data"][i] == 50.0 and pbw["datasets"][0]["counts"][i] == [2, 4]
    assert pbw["datasets"][0]["intervals"][i] == [15.0, 85.0]
    assert (
        "matches=1" in pbw["datasets"][0]["links"][i] and "outcome=flawed" in pbw["datasets"][0]["links"][i]
    )
    assert _chart(response, "trend")["labels"] == ["2025-03-03", "2025-03-10"]
    assert 'id="evaluation-panel"' not in html  # no evaluation yet
    assert "Numbers as of" in html


def test_csv_downloads_carry_the_same_numbers(client, cast, reviewer, admin):
    client.force_login(reviewer)
    params = {"teacher": cast.a1.endpoint_id, "basis": "either"}
    rows = {
        r["error_type"]: r
        for r in _csv(client.get(reverse("dashboards:error_types"), {**params, "csv": "types"}))
    }
    calc = rows["calculation"]
    assert (calc["critiques"], calc["pbw_k"], calc["pbw_n"], calc["steps"]) == ("5", "2", "3", "4")
    assert float(calc["pbw_rate"]) == pytest.approx(2 / 3, abs=1e-6)
    assert rows[""]["critiques"] == "14" and rows["none"]["critiques"] == "0"
    weeks = _csv(client.get(reverse("dashboards:error_types"), {**params, "csv": "trend"}))
    assert [(w["week"], w["critiques"]) for w in weeks] == [("2025-03-03", "6"), ("2025-03-10", "8")]
    cells = _csv(client.get(reverse("dashboards:error_types"), {**params, "csv": "confusion"}))
    yes = next(c for c in cells if (c["label"], c["verdict"]) == ("correct", "yes"))
    assert (yes["critiques"], yes["flawed"], yes["unqueued"]) == ("7", "3", "1")
    signals = {
        s["signal"]: s for s in _csv(client.get(reverse("dashboards:reviews"), {**params, "csv": "signals"}))
    }
    assert (signals["false_calculation_claim"]["tp"], signals["false_calculation_claim"]["recall_n"]) == (
        "2",
        "4",
    )
    assert _csv(client.get(reverse("dashboards:reviews"), {"csv": "pairs"})) == []  # admins only
    client.force_login(admin)
    kappa = _csv(client.get(reverse("dashboards:reviews"), {"csv": "pairs"}))
    assert float(kappa[0]["kappa_decisions"]) == pytest.approx(0.5)
    client.force_login(reviewer)
    people = {r["reviewer"]: r for r in _csv(client.get(reverse("dashboards:reviews"), {"csv": "reviewers"}))}
    assert (people["reviewer"]["reviews"], people["reviewer"]["median_s"]) == ("13", "70.0")
    progress = {
        q["queue"]: q for q in _csv(client.get(reverse("dashboards:reviews"), {**params, "csv": "progress"}))
    }
    assert progress["matched"]["reviewed"] == "7"
    backlog = _csv(client.get(reverse("dashboards:reviews"), {"csv": "backlog"}))
    assert backlog[0]["n"] == "1"
    compare = _csv(
        client.get(
            reverse("dashboards:compare"),
            {
                "a": f"teacher:{cast.a1.endpoint_id}",
                "b": f"teacher:{cast.b.endpoint_id}",
                "same": "1",
                "basis": "class",
                "csv": "compare",
            },
        )
    )
    cf = {r["side"]: r for r in compare if r["error_type"] == "counterfactual"}
    assert (cf["A"]["pbw_k"], cf["A"]["pbw_n"], cf["B"]["pbw_k"], cf["B"]["pbw_n"]) == ("2", "2", "1", "3")


def test_htmx_filter_changes_swap_only_the_body(client, cast, reviewer):
    client.force_login(reviewer)
    for name in ("dashboards:error_types", "dashboards:compare", "dashboards:reviews"):
        response = client.get(
            reverse(name), {"basis": "tag"}, headers={"HX-Request": "true", "HX-Target": "dash-body"}
        )
        html = response.content.decode()
        assert html.lstrip().startswith('<div id="dash-body">') and "<html" not in html, name


def test_the_compare_page_defaults_to_two_teachers(client, cast, reviewer):
    client.force_login(reviewer)
    response = client.get(reverse("dashboards:compare"), {"same": "1", "basis": "class"})
    html = response.content.decode()
    assert f'value="teacher:{cast.a1.endpoint_id}" selected' in html
    assert f'value="teacher:{cast.b.endpoint_id}" selected' in html
    row = re.search(r'<tr data-type="counterfactual">(.*?)</tr>', html, re.S).group(1)
    assert "100.0%" in row and "33.3%" in row and "-66.7 pts" in row
    pbw = _chart(response, "compare-pbw")
    assert [d["label"] for d in pbw["datasets"]] == ["A: teacher-a", "B: teacher-b"]
    assert "same=teacher" in pbw["datasets"][0]["links"][pbw["labels"].index("Counterfactual")]


def test_the_review_operations_page(client, cast, admin):
    client.force_login(admin)
    response = client.get(reverse("dashboards:reviews"))
    html = response.content.decode()
    assert re.search(r'class="num kappa-decisions"><span class="kappa-value">0\.50<', html)
    assert re.search(r'data-reviewer="reviewer".*?class="num median">70\.0<', html, re.S)
    assert reverse("review:adjudication_list") in html  # admins get the link to act on the backlog
    assert _chart(response, "time")["datasets"][0]["intervals"][0] == [40.0, 100.0]
    progress = _chart(response, "progress")
    assert progress["labels"][0] == "matched the label"


def test_drill_down_lists_the_critiques_with_review_and_critique_links(client, cast, reviewer):
    client.force_login(reviewer)
    params = {"teacher": cast.a1.endpoint_id, "type": "calculation", "matches": "1", "outcome": "flawed"}
    html = client.get(reverse("dashboards:critiques"), params).content.decode()
    shown = set(re.findall(r'<tr data-critique="([0-9a-f-]+)">', html))
    assert shown == {str(cast.c("A1", "b", 0).uuid), str(cast.c("A1", "c", 1).uuid)}
    for key in (("A1", "b", 0), ("A1", "c", 1)):
        uuid = cast.c(*key).uuid
        assert (
            reverse("review:item", args=[uuid]) in html
            and reverse("inference:critique_detail", args=[uuid]) in html
        )
    assert "error type calculation" in html and "verdict matches the label" in html
    # Bad parameters are ignored, not errors.
    assert (
        client.get(reverse("dashboards:critiques"), {"type": "nope", "week": "x", "same": "a:b"}).status_code
        == 200
    )


@pytest.mark.parametrize(
    "name, params",
    [
        ("dashboards:error_types", {"basis": "either"}),
        ("dashboards:error_types", {"basis": "tag", "trend": "calculation"}),
        ("dashboards:reviews", {}),
        ("dashboards:reviews", {"signals": "all"}),
        ("dashboards:compare", {"same": "1", "basis": "class"}),
    ],
)
def test_every_number_links_to_a_list_of_exactly_that_many_critiques(client, cast, reviewer, name, params):
    client.force_login(reviewer)
    html = client.get(reverse(name), {"teacher": cast.a1.endpoint_id, **params}).content.decode()
    links = re.findall(r'<a href="(/dashboards/critiques/\?[^"]+)"[^>]*>(\d+)</a>', html)
    assert len(links) > 10
    for url, n in links:
        listed = client.get(url.replace("&amp;", "&")).content.decode().count("<tr data-critique=")
        assert listed == int(n), url


def test_evaluation_results_appear_next_to_the_teacher(client, cast, reviewer, tmp_path):
    from evaluation.workflow import create_evaluation
    from tests.evaluation.conftest import write_scores

    scores = {
        "a/counterfactual": [0.9, 0.8, 0.9],
        "b/counterfactual": [0.2, 0.3],
        "c/calculation": [0.9, 0.9, 0.1],
        "d/deception": [0.6, 0.7],
    }
    create_evaluation(
        benchmark="prmbench",
        datasets=[cast.dataset],
        name="prm-x",
        scores_path=write_scores(tmp_path / "s.jsonl", scores),
    )
    client.force_login(reviewer)
    response = client.get(reverse("dashboards:error_types"))
    assert 'id="evaluation-panel"' in response.content.decode()
    chart = _chart(response, "evaluation")
    i = chart["labels"].index("Counterfactual")
    assert chart["datasets"][1]["label"] == "PRM: prm-x" and chart["datasets"][1]["data"][i] == 40.0
    rows = {
        r["error_type"]: r for r in _csv(client.get(reverse("dashboards:error_types"), {"csv": "evaluation"}))
    }
    assert (rows["counterfactual"]["prm_error[prm-x]_k"], rows["counterfactual"]["prm_error[prm-x]_n"]) == (
        "2",
        "5",
    )


def test_refresh_now_and_the_polled_status(client, cast, reviewer, admin):
    before = DashboardRefresh.objects.filter(status="succeeded").count()
    # Reviewers see the last refresh: refreshing on demand is for admins (issue 18).
    client.force_login(reviewer)
    assert client.post(reverse("dashboards:refresh"), {"next": "/dashboards/reviews/"}).status_code == 403
    assert DashboardRefresh.objects.count() == before
    assert 'id="refresh-now"' not in client.get(reverse("dashboards:reviews")).content.decode()
    client.force_login(admin)
    assert 'id="refresh-now"' in client.get(reverse("dashboards:reviews")).content.decode()
    response = client.post(reverse("dashboards:refresh"), {"next": "/dashboards/reviews/"})
    assert response.status_code == 302 and response.url == "/dashboards/reviews/"
    assert (
        DashboardRefresh.objects.filter(status="succeeded").count() == before + 1
    )  # small: rebuilt right away
    assert client.post(reverse("dashboards:refresh"), {"next": "https://evil.example/"}).url == "/dashboards/"
    latest = DashboardRefresh.objects.filter(status="succeeded").first()
    # The page showed an older summary: the poll asks htmx to reload it.
    stale = client.get(reverse("dashboards:refresh_status"), {"shown": "0"})
    assert stale.status_code == 204 and stale["HX-Refresh"] == "true"
    # Up to date and nothing pending: stop polling.
    done = client.get(reverse("dashboards:refresh_status"), {"shown": str(latest.id)})
    assert done.status_code == 286 and b"Numbers as of" in done.content
    # Something queued: keep polling.
    DashboardRefresh.objects.create()
    pending = client.get(reverse("dashboards:refresh_status"), {"shown": str(latest.id)})
    assert (
        pending.status_code == 200
        and b"refreshing" in pending.content
        and b'hx-trigger="every 2s"' in pending.content
    )


def test_the_nav_links_to_the_dashboards(client, cast, reviewer):
    client.force_login(reviewer)
    html = client.get(reverse("dashboards:reviews")).content.decode()
    assert re.search(r'<a href="/dashboards/" aria-current="page">Dashboards</a>', html)


def test_the_drill_down_has_the_dashboards_filters_and_a_csv_of_every_row(client, cast, reviewer):
    client.force_login(reviewer)
    url = reverse("dashboards:critiques")
    params = {"teacher": cast.a1.endpoint_id, "basis": "tag", "type": "deception"}
    html = client.get(url, params).content.decode()
    shown = set(re.findall(r'<tr data-critique="([0-9a-f-]+)">', html))
    assert shown == {str(cast.c("A1", "d", 0).uuid)}
    # The same slice controls as the dashboards, plus the drill-down's own coordinates.
    for control in ('name="teacher"', 'name="basis"', 'name="weeks"', 'name="outcome"', 'name="reviewer"'):
        assert control in html, control
    assert '<option value="deception" selected>' in html and 'id="critiques-csv"' in html
    rows = _csv(client.get(url, {**params, "csv": "critiques"}))
    assert [(r["critique"], r["tags"], r["outcome"]) for r in rows] == [
        (str(cast.c("A1", "d", 0).uuid), "Deception", "flawed")
    ]
    # The CSV carries every page, not the first 50.
    everything = _csv(client.get(url, {"csv": "critiques"}))
    assert len(everything) == 18 and len({r["critique"] for r in everything}) == 18
    # A filter change swaps only the body.
    partial = client.get(url, params, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="dash-body").content.decode()
    assert partial.lstrip().startswith('<div id="dash-body">') and "<html" not in partial


def test_kappa_is_shown_with_its_interval_its_n_and_a_warning_under_30(client, cast, admin, reviewer):
    client.force_login(admin)
    html = client.get(reverse("dashboards:reviews")).content.decode()
    table = html[html.index('id="kappa-table"') :]
    assert "kappa-ci" in table and "n&nbsp;4" in table and "kappa-few" in table
    row = _csv(client.get(reverse("dashboards:reviews"), {"csv": "pairs"}))[0]
    lo, hi = float(row["kappa_decisions_ci_low"]), float(row["kappa_decisions_ci_high"])
    assert lo < 0.5 < hi and row["under_30_items"] == "True"
    page = client.get(reverse("review:agreement")).content.decode()
    by_type = page[page.index('id="kappa-by-type"') :]
    deception = by_type[by_type.index('data-type="deception"') :].split("</tr>")[0]
    assert "kappa-ci" in deception and "n&nbsp;4" in deception and "kappa-few" in deception
    # Reviewers get neither (blind double review).
    client.force_login(reviewer)
    assert 'id="kappa-by-type"' not in client.get(reverse("review:agreement")).content.decode()


def test_the_dashboards_count_teacher_critiques_unless_asked(client, cast, reviewer):
    """Student samples are the student's, not the teacher's: out of every dashboard number
    by default, in with "Critiques: all" or on their own with "student"."""
    from inference.models import GenerationRun

    GenerationRun.objects.filter(id=cast.b.id).update(kind=GenerationRun.Kind.STUDENT_SAMPLE)
    client.force_login(reviewer)
    url = reverse("dashboards:critiques")
    runs_of = lambda rows: {r["run"] for r in rows}  # noqa: E731
    teacher = _csv(client.get(url, {"csv": "critiques"}))
    everything = _csv(client.get(url, {"csv": "critiques", "role": "all"}))
    student = _csv(client.get(url, {"csv": "critiques", "role": "student"}))
    b_rows = [r for r in everything if r["run"] == str(cast.b.id)]
    assert b_rows and len(everything) == 18
    assert len(teacher) == 18 - len(b_rows) and str(cast.b.id) not in runs_of(teacher)
    assert runs_of(student) == {str(cast.b.id)} and len(student) == len(b_rows)
    # A run picked by id is shown whatever its role; the choice rides on the drill-down links.
    assert len(_csv(client.get(url, {"csv": "critiques", "run": cast.b.id}))) == len(b_rows)
    page = client.get(reverse("dashboards:error_types"), {"role": "all"}).content.decode()
    assert 'name="role"' in page and "role=all" in page
