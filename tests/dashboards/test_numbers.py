"""Dashboard numbers against the hand-counted cast (tests/dashboards/conftest.py)."""

from __future__ import annotations

import copy
import math
from datetime import date, datetime, timedelta

import pytest
from django.utils import timezone

from annotations.models import ErrorType
from dashboards import by_type, drill, links, operations, slices, summaries
from dashboards.drill import Drill
from dashboards.models import DashboardCell, DashboardRefresh
from dashboards.slices import Slice
from inference.models import Critique
from tests.dashboards.conftest import critique_ids

Z2 = 1.959964**2


def kn(r: dict) -> tuple[int, int]:
    return r["k"], r["n"]


def by_slug(table: dict) -> dict[str, dict]:
    return {r["slug"]: r for r in table["rows"]}


def teacher_a(cast, **kw) -> Slice:
    return Slice(teacher=cast.a1.endpoint_id, **kw)


# --- statistics --------------------------------------------------------------------------


def test_it_gives_wilson_intervals_that_match_the_formula_by_hand():
    # k = 0: the upper bound is z^2 / (n + z^2).
    r = slices.rate(0, 5)
    assert (r["rate"], r["lo"]) == (0.0, 0.0) and r["hi"] == pytest.approx(Z2 / (5 + Z2))
    assert r["hi"] == pytest.approx(0.43448, abs=1e-5)
    # k = n: the lower bound is n / (n + z^2).
    assert slices.rate(3, 3)["lo"] == pytest.approx(3 / (3 + Z2)) and slices.rate(3, 3)["hi"] == 1.0
    # 2 of 4: centred on 0.5; half-width z*sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n).
    half = 1.959964 * math.sqrt(0.25 / 4 + Z2 / 64) / (1 + Z2 / 4)
    r = slices.rate(2, 4)
    assert (r["lo"], r["hi"]) == (pytest.approx(0.5 - half), pytest.approx(0.5 + half))
    assert (round(r["lo"], 4), round(r["hi"], 4)) == (0.1500, 0.8500)
    # No data: no rate, no interval (never "0%").
    assert slices.rate(0, 0) == {"k": 0, "n": 0, "rate": None, "lo": None, "hi": None, "pct": None, "ci": ""}
    # The strings the tables show come with the rate.
    assert (r["pct"], r["ci"]) == ("50.0%", "15.0–85.0")
    assert (slices.rate(1, 3)["pct"], slices.rate(0, 5)["pct"]) == ("33.3%", "0.0%")


def test_it_links_copies_of_the_rows_and_leaves_the_counted_ones_unchanged(cast):
    table = by_type.error_type_table(teacher_a(cast), "class")
    before = copy.deepcopy(table)
    linked = links.type_rows(table, {"teacher": str(cast.a1.endpoint_id)})
    assert table == before and "links" not in table["total"]
    assert [r["slug"] for r in linked["rows"]] == [r["slug"] for r in table["rows"]]
    assert {k: v for k, v in linked["total"].items() if k != "links"} == table["total"]
    assert (
        "outcome=flawed" in linked["total"]["links"]["pbw_k"]
        and "type=" not in linked["total"]["links"]["pbw_k"]
    )
    matrix = by_type.confusion(teacher_a(cast))
    cells = links.matrix_cells(matrix, {})
    assert "link" not in matrix["rows"][0]["cells"][0] and cells["rows"][0]["cells"][0]["link"].startswith(
        "/"
    )


def test_it_interpolates_percentiles_like_postgres():
    values = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130]
    assert operations.percentile_cont(values, 0.5) == 70
    assert operations.percentile_cont(values, 0.25) == 40  # position (13 - 1) * 0.25 = 3
    assert operations.percentile_cont([5, 15, 25, 35], 0.25) == 12.5  # position 0.75: 5 + 0.75 * 10
    assert operations.percentile_cont([5, 15, 25, 35], 0.75) == 27.5
    assert operations.percentile_cont([], 0.5) is None


# --- error types -----------------------------------------------------------------------------


def test_it_counts_each_error_type_by_solution_class(cast):
    table = by_type.error_type_table(teacher_a(cast), "class")
    rows = by_slug(table)
    cf, calc, dec = rows["counterfactual"], rows["calculation"], rows["deception"]
    # counterfactual: a0 s0/s1, a1, a2, b0, b1 (run A1).
    assert (cf["steps"], cf["critiques"], kn(cf["agreement"]), cf["reviewed"]) == (5, 6, (4, 6), 5)
    assert kn(cf["pbw"]) == (2, 4)  # a0 s0 and b0 flawed, of a0 s0, a2, b0, b1
    assert kn(cf["label_wrong"]) == (1, 5)  # a1, adjudicated
    assert cf["pbw"]["lo"] == pytest.approx(slices.rate(2, 4)["lo"])
    # calculation: c0 s0, c0 s1 (unparseable: not labelled), c1, c2.
    assert (calc["steps"], calc["critiques"], kn(calc["agreement"]), calc["reviewed"]) == (3, 4, (2, 3), 3)
    assert (kn(calc["pbw"]), kn(calc["label_wrong"])) == ((1, 2), (0, 3))
    # deception: d0, d1 in A1 and again in A2 (unaudited): steps count once per run.
    assert (dec["steps"], dec["critiques"], kn(dec["agreement"]), dec["reviewed"]) == (4, 4, (3, 4), 1)
    assert kn(dec["pbw"]) == (1, 1)  # d0, adjudicated flawed
    assert all(
        r["critiques"] == 0
        for slug, r in rows.items()
        if slug not in {"counterfactual", "calculation", "deception"}
    )
    assert table["untyped"]["critiques"] == 0
    total = table["total"]
    assert (total["critiques"], total["steps"], kn(total["agreement"]), total["reviewed"]) == (
        14,
        12,
        (9, 13),
        9,
    )
    assert (kn(total["pbw"]), kn(total["label_wrong"])) == ((4, 7), (1, 9))
    assert total["awaiting"] == 0 and total["outcomes"]["unqueued"] == 2 and total["outcomes"]["open"] == 3


def test_it_counts_reviewer_tags_and_ignores_undone_ones(cast):
    rows = by_slug(by_type.error_type_table(teacher_a(cast), "tag"))
    assert (rows["confidence"]["critiques"], kn(rows["confidence"]["pbw"])) == (1, (1, 1))  # a0 s0
    calc = rows["calculation"]  # b0 (class counterfactual) and c1
    assert (calc["steps"], calc["critiques"], kn(calc["pbw"])) == (2, 2, (2, 2))
    # d0: tagged by a reviewer and by the adjudicator, counted once; d1's tag was undone.
    assert (rows["deception"]["critiques"], rows["deception"]["steps"]) == (1, 1)
    assert rows["counterfactual"]["critiques"] == 0
    table = by_type.error_type_table(teacher_a(cast), "tag")
    assert table["untyped"]["critiques"] == 14 - 4


def test_it_takes_the_union_of_class_and_tags(cast):
    table = by_type.error_type_table(teacher_a(cast), "either")
    rows = by_slug(table)
    calc = rows["calculation"]  # c0 s0, c0 s1, c1, c2 by class, plus b0 by tag
    assert (calc["steps"], calc["critiques"], kn(calc["agreement"]), calc["reviewed"]) == (4, 5, (3, 4), 4)
    assert (kn(calc["pbw"]), kn(calc["label_wrong"])) == ((2, 3), (0, 4))
    assert rows["confidence"]["critiques"] == 1 and rows["counterfactual"]["critiques"] == 6
    assert rows["deception"]["critiques"] == 4  # d0 once, though it has the class and the tag
    assert table["untyped"]["critiques"] == 0 and table["total"]["critiques"] == 14


def test_it_slices_by_template_dataset_run_and_everything(cast):
    v2 = cast.a2.template_id
    only_v2 = by_type.error_type_table(Slice(template=v2), "class")
    assert only_v2["total"]["critiques"] == 2 and by_slug(only_v2)["deception"]["critiques"] == 2
    assert by_type.error_type_table(Slice(run=cast.b.id), "class")["total"]["critiques"] == 4
    everything = by_type.error_type_table(Slice(), "class")
    assert everything["total"]["critiques"] == 18
    assert by_type.error_type_table(Slice(dataset=cast.dataset.id), "class")["total"]["critiques"] == 18
    cf = by_slug(everything)["counterfactual"]  # A1's six and B's three
    assert (kn(cf["agreement"]), kn(cf["pbw"]), cf["steps"]) == ((7, 9), (3, 7), 8)
    # B's c2 awaits adjudication: not reviewed, awaiting.
    assert by_slug(everything)["calculation"]["awaiting"] == 1


def test_it_buckets_weeks_from_monday_utc_and_fills_gaps(cast):
    weeks = by_type.weekly_trend(teacher_a(cast), "either")
    # Sunday 23:59:59 belongs to the week before the Monday 00:00:00 critiques.
    assert [w["week"] for w in weeks] == [date(2025, 3, 3), date(2025, 3, 10)]
    first, second = weeks
    assert (first["critiques"], kn(first["agreement"]), kn(first["pbw"])) == (6, (4, 6), (2, 4))
    assert (second["critiques"], kn(second["agreement"]), kn(second["pbw"])) == (8, (5, 7), (2, 3))
    every = by_type.weekly_trend(Slice(), "either")
    assert [w["week"] for w in every] == [
        date(2025, 3, 3),
        date(2025, 3, 10),
        date(2025, 3, 17),
        date(2025, 3, 24),
    ]
    assert every[2]["critiques"] == 0 and every[2]["pbw"]["rate"] is None and every[3]["critiques"] == 4
    calc = by_type.weekly_trend(teacher_a(cast), "either", ErrorType.objects.get(slug="calculation"))
    assert [(w["week"], w["critiques"]) for w in calc] == [(date(2025, 3, 3), 1), (date(2025, 3, 10), 4)]
    # "Last N weeks" counts from the current week and lists the empty weeks up to it.
    recent = by_type.weekly_trend(Slice(weeks=2), "either", today=date(2025, 3, 27))
    assert [(w["week"], w["critiques"]) for w in recent] == [(date(2025, 3, 17), 0), (date(2025, 3, 24), 4)]


def test_it_splits_verdict_against_label_by_review_outcome(cast):
    m = by_type.confusion(teacher_a(cast))
    cells = {(c["label"], c["verdict"]): c for row in m["rows"] for c in row["cells"]}
    yes = cells[("correct", "yes")]  # a0 s0 F, a2 S, b1 S, c0 s0 S, c1 F, d0 F, A2 d0 unqueued
    assert (yes["n"], yes["reviewed"], yes["outcomes"]["flawed"], yes["outcomes"]["sound"]) == (7, 6, 3, 3)
    assert yes["outcomes"]["unqueued"] == 1 and yes["matches"] is True
    assert (cells[("correct", "no")]["n"], cells[("correct", "unparseable")]["n"]) == (1, 1)
    wrong_yes = cells[("incorrect", "yes")]  # a1 label wrong, c2 sound, A2 d1 unqueued
    assert (wrong_yes["n"], wrong_yes["outcomes"]["label_wrong"], wrong_yes["matches"]) == (3, 1, False)
    assert cells[("incorrect", "no")]["n"] == 2 and cells[("other", "yes")]["n"] == 0
    assert sum(c["n"] for c in cells.values()) == 14


def test_it_compares_two_teachers_on_the_steps_both_critiqued(cast):
    a, b = ("teacher", cast.a1.endpoint_id), ("teacher", cast.b.endpoint_id)
    same = by_type.compare(Slice(), a, b, "class", same_steps=True)
    cf = next(r for r in same["rows"] if r["slug"] == "counterfactual")
    # B critiqued a0, a1, b0 and c2; A's critiques of those: a0 s0, a0 s1, a1, b0 (and c2).
    assert (cf["a"]["critiques"], kn(cf["a"]["agreement"]), kn(cf["a"]["pbw"]), cf["a"]["steps"]) == (
        4,
        (2, 4),
        (2, 2),
        3,
    )
    assert (cf["b"]["critiques"], kn(cf["b"]["agreement"]), kn(cf["b"]["pbw"]), cf["b"]["steps"]) == (
        3,
        (3, 3),
        (1, 3),
        3,
    )
    assert cf["pbw_diff"] == pytest.approx(1 / 3 - 1)
    assert (same["total"]["a"]["critiques"], same["total"]["b"]["critiques"]) == (5, 4)
    apart = by_type.compare(Slice(), a, b, "class")
    assert (apart["total"]["a"]["critiques"], apart["total"]["b"]["critiques"]) == (14, 4)
    assert [w["week"] for w in apart["trend"]] == [date(2025, 3, 3) + timedelta(weeks=i) for i in range(4)]
    # Two runs of the same teacher: the v1 run vs the v2 run on their common steps (d0, d1).
    runs = by_type.compare(Slice(), ("run", cast.a1.id), ("run", cast.a2.id), "class", same_steps=True)
    assert (runs["total"]["a"]["critiques"], runs["total"]["b"]["critiques"]) == (2, 2)


def test_it_measures_which_signals_predict_flawed(cast):
    table = operations.signal_table(teacher_a(cast))
    rows = {r["signal"]: r for r in table["rows"]}
    # Reviewed label-matching A critiques: a0 s0 F, a2 S, b0 F, b1 S, c0 s0 S, c1 F, d0 F.
    assert (table["reviewed"], table["flawed"], kn(table["base_rate"])) == (7, 4, (4, 7))
    calc = rows["false_calculation_claim"]  # a0 s0 (F), b0 (F), and d1 (not reviewed)
    assert (calc["fired"], calc["fired_reviewed"], calc["tp"], calc["fp"], calc["fn"]) == (3, 2, 2, 0, 2)
    assert (kn(calc["precision"]), kn(calc["recall"])) == ((2, 2), (2, 4))
    assert calc["lift"] == pytest.approx(1 / (4 / 7))
    disagree = rows["sample_disagreement"]  # a0 s0 (F), a2 (S)
    assert (kn(disagree["precision"]), kn(disagree["recall"]), disagree["lift"]) == (
        (1, 2),
        (1, 4),
        pytest.approx(0.875),
    )
    assert (kn(rows["p_yes_uncertain"]["precision"]), kn(rows["p_yes_uncertain"]["recall"])) == (
        (1, 1),
        (1, 4),
    )
    assert (kn(rows["flagged"]["precision"]), kn(rows["flagged"]["recall"])) == ((1, 2), (1, 4))
    assert rows["unparseable"]["fired"] == 0 and rows["unparseable"]["precision"]["rate"] is None
    everything = operations.signal_table(teacher_a(cast), matched_only=False)
    assert (everything["reviewed"], everything["flawed"]) == (9, 4)  # plus a1 (label wrong), c2 (sound)


def test_it_reports_progress_per_queue(cast):
    q = {r["queue"]: r for r in operations.queue_progress(teacher_a(cast))}
    assert (
        q["matched"]["critiques"],
        q["matched"]["reviewed"],
        q["matched"]["open"],
        q["matched"]["unqueued"],
    ) == (9, 7, 1, 1)
    assert (q["disagreed"]["critiques"], q["disagreed"]["reviewed"]) == (4, 2)
    assert (q["other"]["critiques"], q["other"]["open"]) == (1, 1)
    assert (q["flagged"]["critiques"], q["flagged"]["reviewed"], kn(q["flagged"]["progress"])) == (
        2,
        2,
        (2, 2),
    )


def test_it_reports_throughput_and_time_on_task_per_reviewer(cast, reviewer, reviewer2):
    activity = operations.reviewer_activity(Slice(), weeks=4)
    rows = {r["reviewer"]: r for r in activity["rows"]}
    r1, r2 = rows["reviewer"], rows["reviewer2"]
    assert (r1["reviews"], r1["undone"], r1["decisions"]) == (
        13,
        1,
        {"sound": 6, "flawed": 5, "label_wrong": 2, "skip": 0},
    )
    assert (r1["median_s"], r1["p25_s"], r1["p75_s"], r1["mean_s"]) == (70, 40, 100, 70)
    assert (r2["reviews"], r2["median_s"], r2["p25_s"], r2["p75_s"]) == (4, 20, 12.5, 27.5)
    assert len(activity["weeks"]) == 4 and r1["weeks"] == [0, 0, 0, 13] and r1["per_week"] == 13 / 4
    assert set(rows) == {"reviewer", "reviewer2"}  # the admin adjudicated but did not review
    # Sliced to teacher B's run: its four items.
    only_b = {r["reviewer"]: r["reviews"] for r in operations.reviewer_activity(Slice(run=cast.b.id))["rows"]}
    assert only_b == {"reviewer": 4, "reviewer2": 3}


def test_it_computes_kappa_per_reviewer_pair(cast):
    (pair,) = operations.reviewer_pairs(Slice())
    # Items both decided: d0 (F, S), B a0 (S, S), B a1 (F, F), B b0 (S, S).
    # p_o = 3/4; p_e = (2*1 + 2*3) / 16 = 1/2; kappa = (3/4 - 1/2) / (1/2) = 1/2.
    assert (pair["a"], pair["b"], pair["items"], pair["percent_agree"]) == ("reviewer", "reviewer2", 4, 75.0)
    assert pair["kappa_decisions"] == pytest.approx(0.5)
    # Tags over 4 items x 10 types: one disagreement (d0, deception); p_o = p_e = 39/40: kappa 0.
    assert pair["kappa_tags"] == pytest.approx(0.0)
    assert operations.reviewer_pairs(Slice(run=cast.a2.id)) == []


def test_it_reports_the_adjudication_backlog(cast):
    backlog = operations.adjudication_backlog(Slice())
    assert (backlog["n"], backlog["label_disputes"], backlog["disagreements"], backlog["under_1d"]) == (
        1,
        1,
        0,
        1,
    )
    assert (backlog["decided_7d"], backlog["over_7d"]) == (2, 0)
    later = operations.adjudication_backlog(Slice(), now=timezone.now() + timedelta(days=10))
    assert (later["over_7d"], later["decided_7d"], round(later["oldest_days"])) == (1, 0, 10)
    assert operations.adjudication_backlog(teacher_a(cast))["n"] == 0


def test_it_puts_prm_error_rates_next_to_the_teachers(cast, tmp_path):
    from evaluation.workflow import create_evaluation
    from tests.evaluation.conftest import write_scores

    assert by_type.evaluation_comparison(Slice()) is None
    scores = {
        "a/counterfactual": [0.9, 0.8, 0.9],
        "b/counterfactual": [0.2, 0.3],
        "c/calculation": [0.9, 0.9, 0.1],
        "d/deception": [0.6, 0.7],
    }
    create_evaluation(
        benchmark="prmbench",
        datasets=[cast.dataset],
        scores_path=write_scores(tmp_path / "s.jsonl", scores),
        name="prm-x",
    )
    result = by_type.evaluation_comparison(Slice())
    rows = {r["slug"]: r for r in result["rows"]}
    # counterfactual steps a0 a1 a2 b0 b1 = C I C I C; predicted C C C I I: a1 is a FP, b1 a FN.
    assert (kn(rows["counterfactual"]["evals"][0]), kn(rows["calculation"]["evals"][0])) == ((2, 5), (0, 3))
    assert kn(rows["deception"]["evals"][0]) == (1, 2)  # d1 (incorrect) scored 0.7
    assert rows["confidence"]["evals"] == [None]
    # The teacher's disagreement with the label, by class, over all runs: A1 2 of 6, B 0 of 3.
    assert kn(rows["counterfactual"]["teacher"]) == (2, 9) and result["teacher_scope"] == "evaluated datasets"


# --- drill-down ---------------------------------------------------------------------------------


@pytest.mark.parametrize("basis", ["class", "tag", "either"])
def test_every_number_drills_down_to_exactly_its_critiques(cast, basis):
    slc = teacher_a(cast)
    table = by_type.error_type_table(slc, basis)
    for row in [*table["rows"], table["untyped"], table["total"]]:
        d = Drill(slice=slc, basis=basis, type=row["slug"])
        assert drill.drill_queryset(d).count() == row["critiques"], (basis, row["slug"])
        reviewed = Drill(slice=slc, basis=basis, type=row["slug"], outcome="reviewed")
        assert drill.drill_queryset(reviewed).count() == row["reviewed"], (basis, row["slug"])
        pbw_k = Drill(slice=slc, basis=basis, type=row["slug"], matches="1", outcome="flawed")
        pbw_n = Drill(slice=slc, basis=basis, type=row["slug"], matches="1", outcome="reviewed")
        assert (drill.drill_queryset(pbw_k).count(), drill.drill_queryset(pbw_n).count()) == kn(row["pbw"])
        agree = Drill(slice=slc, basis=basis, type=row["slug"], matches="1")
        labelled = Drill(slice=slc, basis=basis, type=row["slug"], matches="labelled")
        assert (drill.drill_queryset(agree).count(), drill.drill_queryset(labelled).count()) == kn(
            row["agreement"]
        )
        awaiting = Drill(slice=slc, basis=basis, type=row["slug"], outcome="awaiting")
        assert drill.drill_queryset(awaiting).count() == row["awaiting"]


def test_drill_down_matches_weeks_cells_signals_and_same_steps(cast):
    slc = teacher_a(cast)
    for w in by_type.weekly_trend(slc, "either"):
        assert drill.drill_queryset(Drill(slice=slc, week=w["week"])).count() == w["critiques"]
    for row in by_type.confusion(slc)["rows"]:
        for c in row["cells"]:
            for outcome, n in c["outcomes"].items():
                d = Drill(slice=slc, label=c["label"], verdict=c["verdict"], outcome=outcome)
                assert drill.drill_queryset(d).count() == n, (c["label"], c["verdict"], outcome)
    for s in operations.signal_table(slc)["rows"]:
        d = Drill(slice=slc, matches="1", signal=s["signal"], outcome="flawed")
        assert drill.drill_queryset(d).count() == s["tp"], s["signal"]
    same = (("teacher", cast.a1.endpoint_id), ("teacher", cast.b.endpoint_id))
    assert critique_ids(drill.drill_queryset(Drill(slice=slc, same=same))) == {
        cast.c("A1", "a", 0, 0).id,
        cast.c("A1", "a", 0, 1).id,
        cast.c("A1", "a", 1).id,
        cast.c("A1", "b", 0).id,
        cast.c("A1", "c", 2).id,
    }
    pair = drill.drill_queryset(Drill(pair=("reviewer", "reviewer2")))
    assert pair.count() == 4
    assert drill.drill_queryset(Drill(reviewer="reviewer2")).count() == 4


# --- refresh -------------------------------------------------------------------------------------


def test_a_refresh_rebuilds_the_same_rows_and_is_claimed_once(cast):
    fields = ("run_id", "week", "error_type_id", "via", "label", "verdict", "matches", "outcome", "runs", "n")
    before = sorted(DashboardCell.objects.values_list(*fields), key=str)
    refresh = summaries.refresh_now()
    after = sorted(DashboardCell.objects.values_list(*fields), key=str)
    assert before == after and refresh.status == DashboardRefresh.Status.SUCCEEDED
    assert refresh.counts["critiques"] == Critique.objects.count() == 18
    assert summaries.run_refresh(refresh.id) is None  # already done: a redelivered task does nothing


def test_new_reviews_show_after_a_refresh(cast, reviewer):
    from review.queue import take_item
    from review.reviews import submit_review

    take_item(cast.item("A1", "d", 1).critique_id, reviewer)
    submit_review(cast.item("A1", "d", 1), reviewer, "flawed")
    row = by_slug(by_type.error_type_table(teacher_a(cast), "class"))["deception"]
    assert row["reviewed"] == 1  # the summary is a snapshot
    summaries.refresh_now()
    row = by_slug(by_type.error_type_table(teacher_a(cast), "class"))["deception"]
    assert (row["reviewed"], kn(row["pbw"])) == (2, (2, 2))


def test_stale_summaries_are_rebuilt_small_in_the_request_and_large_by_a_task(
    cast, settings, django_capture_on_commit_callbacks
):
    from unittest import mock

    settings.DASHBOARD_STALE_SECONDS = 60
    later = timezone.now() + timedelta(minutes=2)
    assert summaries.freshness()["stale"] is False
    n = DashboardRefresh.objects.count()
    fresh = summaries.freshness(now=later)  # stale, 18 critiques: rebuilt right here
    assert fresh["stale"] is False and DashboardRefresh.objects.count() == n + 1
    settings.DASHBOARD_SYNC_LIMIT = 5
    with mock.patch("dashboards.tasks.refresh_dashboards_task.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            fresh = summaries.freshness(now=later + timedelta(minutes=2))
        assert fresh["stale"] is True and fresh["pending"].status == DashboardRefresh.Status.QUEUED
        delay.assert_called_once_with(fresh["pending"].id)
        # A second look while it is queued queues nothing more.
        with django_capture_on_commit_callbacks(execute=True):
            assert summaries.freshness(now=later + timedelta(minutes=3))["pending"] == fresh["pending"]
        delay.assert_called_once()
    from dashboards.tasks import refresh_dashboards_task

    refresh_dashboards_task(fresh["pending"].id)  # what the worker runs
    fresh["pending"].refresh_from_db()
    assert fresh["pending"].status == DashboardRefresh.Status.SUCCEEDED and fresh["pending"].seconds > 0


def test_a_failed_refresh_keeps_the_old_summaries(cast):
    from unittest import mock

    n = DashboardCell.objects.count()
    refresh = DashboardRefresh.objects.create()
    with mock.patch("dashboards.summaries.refresh_summaries", side_effect=RuntimeError("disk full")):
        summaries.run_refresh(refresh.id)
    refresh.refresh_from_db()
    assert refresh.status == "failed" and "disk full" in refresh.error and DashboardCell.objects.count() == n


def test_empty_database_gives_empty_dashboards(db):
    summaries.refresh_now()
    table = by_type.error_type_table(Slice(), "either")
    assert table["total"]["critiques"] == 0 and table["total"]["pbw"]["rate"] is None
    assert by_type.weekly_trend(Slice()) == [] and operations.reviewer_pairs(Slice()) == []
    assert operations.signal_table(Slice())["base_rate"]["rate"] is None
    assert operations.adjudication_backlog(Slice())["n"] == 0
    assert (
        operations.reviewer_activity(
            Slice(), now=datetime(2025, 1, 1, tzinfo=timezone.get_current_timezone())
        )["rows"]
        == []
    )


def test_summary_agreement_and_live_percentiles_match_their_references(
    db, tmp_path, admin, reviewer, reviewer2
):
    """On the bigger showcase data: kappa per pair from the summary equals
    review.agreement.agreement (the review app's definition), per run too, and the
    database's percentiles equal percentile_cont over the raw times."""
    from review.agreement import agreement
    from review.models import Review, ReviewItem
    from tests.dashboards.conftest import build_showcase

    data = build_showcase(tmp_path, admin, reviewer, reviewer2)

    def r(x):
        return None if x is None else round(x, 12)

    def reference(items=None):
        return [
            (p.reviewer_a, p.reviewer_b, p.items, r(p.kappa_decisions), r(p.kappa_tags))
            for p in agreement(items)
        ]

    def ours(slc):
        return [
            (p["a"], p["b"], p["items"], r(p["kappa_decisions"]), r(p["kappa_tags"]))
            for p in operations.reviewer_pairs(slc)
        ]

    assert ours(Slice()) == reference() and ours(Slice())[0][2] > 10
    run = data["runs"][3]
    assert ours(Slice(run=run.id)) == reference(ReviewItem.objects.filter(run=run))
    rows = {r["reviewer"]: r for r in operations.reviewer_activity(Slice(), weeks=8)["rows"]}
    for user in (reviewer, reviewer2):
        times = list(
            Review.objects.filter(reviewer=user, undone_at__isnull=True).values_list(
                "time_on_task_ms", flat=True
            )
        )
        assert rows[user.username]["median_s"] == pytest.approx(operations.percentile_cont(times, 0.5) / 1000)
        assert rows[user.username]["p75_s"] == pytest.approx(operations.percentile_cont(times, 0.75) / 1000)
        assert rows[user.username]["reviews"] == len(times)


def test_run_sliced_throughput_includes_reviews_newer_than_the_summary(cast, reviewer):
    from review.queue import take_item
    from review.reviews import submit_review

    def in_a1():
        return {
            r["reviewer"]: (r["reviews"], r["undone"])
            for r in operations.reviewer_activity(Slice(run=cast.a1.id))["rows"]
        }

    assert in_a1() == {"reviewer": (9, 1), "reviewer2": (1, 0)}
    take_item(cast.item("A1", "d", 1).critique_id, reviewer)
    submit_review(cast.item("A1", "d", 1), reviewer, "sound", time_on_task_ms=1_000)  # after the refresh
    assert in_a1() == {"reviewer": (10, 1), "reviewer2": (1, 0)}
