"""Refreshing the summary tables: request, run (claimed once), freshness, and the
rebuild itself in one transaction."""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from annotations.models import ErrorType, Step
from inference.models import Critique
from review.models import Adjudication, Review, ReviewItem
from rprm_web import runs

from .models import (
    DashboardCell,
    DashboardPair,
    DashboardQueue,
    DashboardRefresh,
    DashboardReviewRun,
    DashboardSignal,
    DashboardSteps,
)

log = logging.getLogger(__name__)


# --- refresh ----------------------------------------------------------------------------


def stale_after() -> timedelta:
    return timedelta(seconds=settings.DASHBOARD_STALE_SECONDS)


def sync_limit() -> int:
    """At most this many critiques, a stale summary is rebuilt in the request itself
    (well under a second), so small installs need no worker for fresh numbers."""
    return settings.DASHBOARD_SYNC_LIMIT


# A queued refresh older than this has lost its worker; a new one may be queued.
QUEUED_GIVE_UP = timedelta(minutes=30)


def request_refresh(user=None, *, queue: bool = True, now: datetime | None = None) -> DashboardRefresh:
    """Queue a rebuild unless one is already queued or running (recently)."""
    now = now or timezone.now()
    pending = (
        DashboardRefresh.objects.filter(
            status__in=[DashboardRefresh.Status.QUEUED, DashboardRefresh.Status.RUNNING],
            created_at__gte=now - QUEUED_GIVE_UP,
        )
        .order_by("-created_at")
        .first()
    )
    if pending is not None:
        return pending
    refresh = DashboardRefresh.objects.create(requested_by=user if getattr(user, "pk", None) else None)
    if queue:
        runs.enqueue(DashboardRefresh, refresh.id)
    return refresh


def run_refresh(refresh_id: int) -> DashboardRefresh | None:
    """Claim a queued refresh (or a dead worker's) and rebuild, through the run lifecycle.
    None when it is not claimable (done, or held by a live worker). A failed rebuild leaves
    the old summaries in place."""
    t0 = time.perf_counter()

    def body(refresh: DashboardRefresh) -> dict:
        return {"counts": refresh_summaries()}

    return runs.execute(
        DashboardRefresh, refresh_id, body, final=lambda refresh, status: {"seconds": time.perf_counter() - t0}
    )


def refresh_now(user=None) -> DashboardRefresh:
    """Rebuild in this process (tests, benchmarks, small installs)."""
    refresh = DashboardRefresh.objects.create(requested_by=user if getattr(user, "pk", None) else None)
    return run_refresh(refresh.id) or refresh


def freshness(*, now: datetime | None = None, auto: bool = True) -> dict[str, Any]:
    """What the pages show about the summaries' age; with `auto`, a stale summary is
    rebuilt (in the request when small, else by a queued task)."""
    now = now or timezone.now()
    done = (
        DashboardRefresh.objects.filter(status=DashboardRefresh.Status.SUCCEEDED)
        .order_by("-created_at")
        .first()
    )
    stale = done is None or done.finished_at < now - stale_after()
    pending = None
    if stale and auto:
        small = Critique.objects.order_by()[: sync_limit() + 1].count() <= sync_limit()
        if small:
            done = refresh_now()
            stale = False
        else:
            pending = request_refresh(now=now)
    elif stale or not auto:
        pending = (
            DashboardRefresh.objects.filter(
                status__in=[DashboardRefresh.Status.QUEUED, DashboardRefresh.Status.RUNNING],
                created_at__gte=now - QUEUED_GIVE_UP,
            )
            .order_by("-created_at")
            .first()
        )
    return {
        "done": done,
        "as_of": done.finished_at if done else None,
        "age_s": (now - done.finished_at).total_seconds() if done else None,
        "stale": stale,
        "pending": pending,
    }


def _vendor_sql() -> dict[str, str]:
    if connection.vendor == "postgresql":
        return {
            "week": "(date_trunc('week', c.created_at AT TIME ZONE 'UTC'))::date",
            # Byte order, as Python sorts usernames (review.agreement orders pairs so).
            "binary": 'COLLATE "C"',
            "cohort": "',' || string_agg(x.run_id::text, ',' ORDER BY x.run_id) || ','",
            "kinds": "SELECT DISTINCT a.critique_id, e.value ->> 'kind' AS signal "
            "FROM annotations_critiqueaudit a CROSS JOIN LATERAL jsonb_array_elements(a.signals) e",
        }
    return {
        "week": "date(c.created_at, 'weekday 0', '-6 days')",
        "binary": "",
        "cohort": "',' || group_concat(x.run_id, ',') || ','",
        "kinds": "SELECT DISTINCT a.critique_id, json_extract(e.value, '$.kind') AS signal "
        "FROM annotations_critiqueaudit a, json_each(a.signals) e",
    }


def _steps_statements(*, blind: bool) -> list[tuple[str, str]]:
    """Distinct steps per basis, over every critique or (`blind`) the unsealed ones only."""
    facts = "(SELECT * FROM dash_fact WHERE NOT sealed)" if blind else "dash_fact"
    flag = "TRUE" if blind else "FALSE"
    head = "INSERT INTO {steps} (run_id, week, error_type_id, basis, label, runs, blind, n_steps)"
    sqls = [
        f"""{head}
        SELECT run_id, week, class_id, 'class', label, runs, {flag}, COUNT(DISTINCT step_id)
        FROM {facts} f WHERE class_id IS NOT NULL GROUP BY run_id, week, class_id, label, runs""",
        f"""{head}
        SELECT f.run_id, f.week, t.type_id, 'tag', f.label, f.runs, {flag}, COUNT(DISTINCT f.step_id)
        FROM dash_tag t JOIN {facts} f ON f.id = t.critique_id
        GROUP BY f.run_id, f.week, t.type_id, f.label, f.runs""",
        f"""{head}
        SELECT run_id, week, type_id, 'either', label, runs, {flag}, COUNT(DISTINCT step_id)
        FROM (SELECT run_id, week, class_id AS type_id, label, runs, step_id
              FROM {facts} f WHERE class_id IS NOT NULL
              UNION ALL
              SELECT f.run_id, f.week, t.type_id, f.label, f.runs, f.step_id
              FROM dash_tag t JOIN {facts} f ON f.id = t.critique_id) x
        GROUP BY run_id, week, type_id, label, runs""",
        f"""{head}
        SELECT run_id, week, NULL, 'all', label, runs, {flag}, COUNT(DISTINCT step_id)
        FROM {facts} f GROUP BY run_id, week, label, runs""",
    ]
    return [("steps", sql) for sql in sqls]


def refresh_summaries() -> dict[str, int]:
    """Rebuild every summary table from the source rows, in one transaction.

    Critique-level facts go to a temp table once (outcome, error-type class, whether
    reviewers tagged it, the runs that critiqued its step); each summary is a GROUP BY
    of it. Readers keep seeing the previous summaries until the commit.
    """
    t = {
        "critique": Critique._meta.db_table,
        "step": Step._meta.db_table,
        "solution": "annotations_solution",
        "item": ReviewItem._meta.db_table,
        "review": Review._meta.db_table,
        "review_tags": Review.error_types.through._meta.db_table,
        "adjudication": Adjudication._meta.db_table,
        "adj_tags": Adjudication.error_types.through._meta.db_table,
        "cell": DashboardCell._meta.db_table,
        "steps": DashboardSteps._meta.db_table,
        "signal": DashboardSignal._meta.db_table,
        "queue": DashboardQueue._meta.db_table,
        "pair": DashboardPair._meta.db_table,
        "review_run": DashboardReviewRun._meta.db_table,
        "user": Review._meta.get_field("reviewer").related_model._meta.db_table,
        "errortype": ErrorType._meta.db_table,
        **_vendor_sql(),
    }
    postgres = connection.vendor == "postgresql"
    temp = ("dash_cohort", "dash_tag", "dash_fact", "dash_pr", "dash_pp")
    statements = [
        (
            None,
            """CREATE TEMP TABLE dash_cohort AS
            SELECT x.step_id, {cohort} AS runs
            FROM (SELECT DISTINCT step_id, run_id FROM {critique} WHERE NOT gold_copy) x GROUP BY x.step_id""",
        ),
        (
            None,
            """CREATE TEMP TABLE dash_tag AS
            SELECT r.critique_id, rt.errortype_id AS type_id
            FROM {review} r JOIN {review_tags} rt ON rt.review_id = r.id JOIN {item} ri ON ri.id = r.item_id
            WHERE r.undone_at IS NULL AND (ri.state <> 'adjudicated' OR r.decision = ri.final_decision)
            UNION
            SELECT ri.critique_id, adt.errortype_id
            FROM {adjudication} ad JOIN {item} ri ON ri.id = ad.item_id
            JOIN {adj_tags} adt ON adt.adjudication_id = ad.id""",
        ),
        (None, "CREATE INDEX dash_tag_critique ON dash_tag (critique_id, type_id)"),
        (
            "critiques",
            """CREATE TEMP TABLE dash_fact AS
            SELECT c.id, c.run_id, c.step_id, {week} AS week, st.label, c.verdict, c.matches_label AS matches,
                   sol.error_type_id AS class_id,
                   CASE WHEN ri.id IS NULL THEN 'unqueued'
                        WHEN ri.final_decision <> '' THEN ri.final_decision
                        WHEN ri.state = 'adjudication' THEN 'adjudication'
                        WHEN ri.reviews_done > 0 THEN 'partial'
                        ELSE 'open' END AS outcome,
                   COALESCE(ri.flagged, FALSE) AS flagged, co.runs,
                   COALESCE(ri.needs_double_review AND ri.state IN ('open', 'adjudication'), FALSE) AS sealed,
                   EXISTS (SELECT 1 FROM dash_tag t WHERE t.critique_id = c.id) AS tagged,
                   EXISTS (SELECT 1 FROM dash_tag t WHERE t.critique_id = c.id AND t.type_id = sol.error_type_id)
                       AS tagged_class
            FROM {critique} c
            JOIN {step} st ON st.id = c.step_id
            JOIN {solution} sol ON sol.id = st.solution_id
            JOIN dash_cohort co ON co.step_id = c.step_id
            LEFT JOIN {item} ri ON ri.critique_id = c.id
            WHERE NOT c.gold_copy""",
        ),
        (None, "CREATE INDEX dash_fact_id ON dash_fact (id)"),
        (None, "DELETE FROM {cell}"),
        (None, "DELETE FROM {steps}"),
        (None, "DELETE FROM {signal}"),
        (None, "DELETE FROM {queue}"),
        (None, "DELETE FROM {pair}"),
        (None, "DELETE FROM {review_run}"),
        (
            "review_runs",
            """INSERT INTO {review_run} (review_id, run_id)
            SELECT r.id, ri.run_id FROM {review} r JOIN {item} ri ON ri.id = r.item_id""",
        ),
        (
            "cells",
            """INSERT INTO {cell} (run_id, week, error_type_id, via, label, verdict, matches, outcome, runs, sealed, n)
            SELECT run_id, week, class_id, CASE WHEN tagged_class THEN 'both' ELSE 'class' END,
                   label, verdict, matches, outcome, runs, sealed, COUNT(*)
            FROM dash_fact WHERE class_id IS NOT NULL
            GROUP BY run_id, week, class_id, tagged_class, label, verdict, matches, outcome, runs, sealed""",
        ),
        (
            "cells",
            """INSERT INTO {cell} (run_id, week, error_type_id, via, label, verdict, matches, outcome, runs, sealed, n)
            SELECT f.run_id, f.week, t.type_id, 'tag', f.label, f.verdict, f.matches, f.outcome, f.runs, f.sealed,
                   COUNT(*)
            FROM dash_tag t JOIN dash_fact f ON f.id = t.critique_id
            WHERE f.class_id IS NULL OR f.class_id <> t.type_id
            GROUP BY f.run_id, f.week, t.type_id, f.label, f.verdict, f.matches, f.outcome, f.runs, f.sealed""",
        ),
        (
            "cells",
            """INSERT INTO {cell} (run_id, week, error_type_id, via, label, verdict, matches, outcome, runs, sealed, n)
            SELECT run_id, week, NULL, via, label, verdict, matches, outcome, runs, sealed, COUNT(*)
            FROM (SELECT run_id, week, label, verdict, matches, outcome, runs, sealed,
                         CASE WHEN class_id IS NOT NULL AND tagged THEN 'both'
                              WHEN class_id IS NOT NULL THEN 'class'
                              WHEN tagged THEN 'tag' ELSE 'none' END AS via
                  FROM dash_fact) x
            GROUP BY run_id, week, via, label, verdict, matches, outcome, runs, sealed""",
        ),
        *_steps_statements(blind=False),
        *_steps_statements(blind=True),
        (
            "signals",
            """INSERT INTO {signal} (run_id, signal, matches, outcome, sealed, n)
            SELECT f.run_id, s.signal, f.matches, f.outcome, f.sealed, COUNT(*)
            FROM (SELECT critique_id, '' AS signal FROM annotations_critiqueaudit
                  UNION ALL SELECT id, 'flagged' FROM dash_fact WHERE flagged
                  UNION ALL {kinds}) s
            JOIN dash_fact f ON f.id = s.critique_id
            GROUP BY f.run_id, s.signal, f.matches, f.outcome, f.sealed""",
        ),
        (
            "queues",
            """INSERT INTO {queue} (run_id, matches, flagged, outcome, sealed, n)
            SELECT run_id, matches, flagged, outcome, sealed, COUNT(*) FROM dash_fact
            GROUP BY run_id, matches, flagged, outcome, sealed""",
        ),
        # Reviewer agreement, as review.agreement.agreement defines it: the first
        # independent decisions, i.e. the deciding reviews live at the first moment (t.at)
        # two reviewers' decisions were in at once; pairs ordered by username.
        (
            None,
            """CREATE TEMP TABLE dash_pr AS
            SELECT r.id, r.item_id, r.reviewer_id, u.username, r.decision, ri.run_id
            FROM {review} r JOIN {user} u ON u.id = r.reviewer_id JOIN {item} ri ON ri.id = r.item_id
            JOIN (SELECT x.item_id, MIN(x.created_at) AS at
                  FROM {review} x JOIN {review} y ON y.item_id = x.item_id AND y.reviewer_id <> x.reviewer_id
                  WHERE x.decision <> 'skip' AND y.decision <> 'skip' AND y.created_at <= x.created_at
                    AND (y.undone_at IS NULL OR y.undone_at > x.created_at)
                  GROUP BY x.item_id) t ON t.item_id = r.item_id
            WHERE r.decision <> 'skip' AND r.created_at <= t.at AND (r.undone_at IS NULL OR r.undone_at > t.at)""",
        ),
        (
            None,
            """CREATE TEMP TABLE dash_pp AS
            SELECT x.run_id, x.id AS ra, y.id AS rb, x.reviewer_id AS ua, y.reviewer_id AS ub,
                   x.decision AS da, y.decision AS db
            FROM dash_pr x JOIN dash_pr y ON y.item_id = x.item_id AND x.username < y.username {binary}""",
        ),
        (
            "pairs",
            """INSERT INTO {pair} (run_id, reviewer_a_id, reviewer_b_id, kind, a, b, n)
            SELECT run_id, ua, ub, 'decision', da, db, COUNT(*) FROM dash_pp GROUP BY run_id, ua, ub, da, db""",
        ),
        (
            "pairs",
            """INSERT INTO {pair} (run_id, reviewer_a_id, reviewer_b_id, kind, a, b, n)
            SELECT p.run_id, p.ua, p.ub, 'tag', 'yes', 'yes', COUNT(*)
            FROM dash_pp p JOIN {review_tags} ta ON ta.review_id = p.ra
            JOIN {review_tags} tb ON tb.review_id = p.rb AND tb.errortype_id = ta.errortype_id
            GROUP BY p.run_id, p.ua, p.ub""",
        ),
        (
            "pairs",
            """INSERT INTO {pair} (run_id, reviewer_a_id, reviewer_b_id, kind, a, b, n)
            SELECT p.run_id, p.ua, p.ub, 'tag', 'yes', 'no', COUNT(*)
            FROM dash_pp p JOIN {review_tags} ta ON ta.review_id = p.ra
            WHERE NOT EXISTS (SELECT 1 FROM {review_tags} tb WHERE tb.review_id = p.rb
                              AND tb.errortype_id = ta.errortype_id)
            GROUP BY p.run_id, p.ua, p.ub""",
        ),
        (
            "pairs",
            """INSERT INTO {pair} (run_id, reviewer_a_id, reviewer_b_id, kind, a, b, n)
            SELECT p.run_id, p.ua, p.ub, 'tag', 'no', 'yes', COUNT(*)
            FROM dash_pp p JOIN {review_tags} tb ON tb.review_id = p.rb
            WHERE NOT EXISTS (SELECT 1 FROM {review_tags} ta WHERE ta.review_id = p.ra
                              AND ta.errortype_id = tb.errortype_id)
            GROUP BY p.run_id, p.ua, p.ub""",
        ),
        (
            "pairs",
            """INSERT INTO {pair} (run_id, reviewer_a_id, reviewer_b_id, kind, a, b, n)
            SELECT run_id, ua, ub, 'tag', 'no', 'no', SUM(k) FROM (
                SELECT p.run_id, p.ua, p.ub,
                       (SELECT COUNT(*) FROM {errortype}) - (SELECT COUNT(DISTINCT t.errortype_id)
                           FROM {review_tags} t WHERE t.review_id IN (p.ra, p.rb)) AS k
                FROM dash_pp p) x
            GROUP BY run_id, ua, ub HAVING SUM(k) > 0""",
        ),
    ]
    counts: Counter = Counter()
    with transaction.atomic(), connection.cursor() as cur:
        if postgres:
            # Serialises refreshes (two interleaved rebuilds would duplicate rows); SELECTs
            # are not blocked. Bigger sort memory for the COUNT(DISTINCT)s, this transaction only.
            cur.execute(f"LOCK TABLE {t['cell']} IN EXCLUSIVE MODE")
            cur.execute("SET LOCAL work_mem = '128MB'")
        for name in temp:
            cur.execute(f"DROP TABLE IF EXISTS {name}")
        for key, sql in statements:
            cur.execute(sql.format(**t))
            if key == "critiques":
                if postgres:
                    cur.execute("ANALYZE dash_fact")
                cur.execute("SELECT COUNT(*) FROM dash_fact")
                counts["critiques"] = cur.fetchone()[0]
            elif key:
                counts[key] += max(cur.rowcount, 0)
            if postgres and sql.lstrip().startswith("CREATE TEMP TABLE dash_tag"):
                cur.execute("ANALYZE dash_tag")
        for name in temp:
            cur.execute(f"DROP TABLE IF EXISTS {name}")
        if postgres:  # fresh statistics for the dashboards' plans (autovacuum may lag)
            cur.execute("ANALYZE {cell}, {steps}, {signal}, {queue}, {pair}, {review_run}".format(**t))
    return dict(counts)
