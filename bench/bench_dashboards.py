"""Dashboard benchmark: server time of every audit dashboard with 1M critiques and 100K reviews.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rprm .venv/bin/python bench/bench_dashboards.py
    ... bench/bench_dashboards.py --critiques 100000 --repeats 10      # quick run
    ... bench/bench_dashboards.py --keep   # keep the database; then --reuse measures again without loading

Creates the database `rprm_bench_dash` next to the one in DATABASE_URL, migrates it with
manage.py, fills it in SQL (generate_series): 3 teachers x 2 prompt versions in 8 runs
over 2 datasets, every step critiqued by two runs (4 samples each, so teachers share
steps), 75% of solutions with a PRMBench class, critiques spread over 12 weeks, one
audit (a quarter with signals) and one review item per critique, ~100K reviews (5% of
the reviewed items double-reviewed, disagreements and label disputes adjudicated or
waiting), reviewer tags and adjudications. Then it rebuilds the summaries
(`refresh_summaries`, what the Celery task runs) and GETs each dashboard through Django's
test client (session, auth, middleware, templates) with several filters, reporting
p50/p95 of wall and CPU time per view. The last line is one JSON object. The database
is dropped at the end unless --keep. Target: p95 < 300 ms per dashboard view.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from scratch import admin_sql, open_scratch_db, percentiles, scratch_name

TARGET_P95_MS = 50  # issue 21, every view


# -- fill -------------------------------------------------------------------------------------

TEXT = (
    "Previous Steps Analysis: The previous steps restate the quantities from the problem and carry the running "
    "total forward. Now Step Analysis: The Now Step adds the next amount to the running total. Data Source "
    "Analysis: Both numbers come from the previous step and the problem statement. Consistency Analysis: The "
    "Now Step agrees with the previous steps. Calculation Analysis: Reversing the addition gives back the "
    "previous total, so the arithmetic checks out. Conclusion: The Now Step is "
)


def fill(critiques: int, log) -> dict:
    """Everything in SQL, one statement per table (integers only are substituted)."""
    import dataclasses

    from django.contrib.auth.models import Group, User
    from django.db import connection, transaction

    from annotations.models import Dataset, ErrorType
    from inference.actions import create_run, default_template, endpoint_for, save_template
    from inference.core.prompts import DEFAULT_TEMPLATE

    n_steps = max(10, critiques // 8)  # every step: 2 runs x 4 samples
    n_solutions = max(2, n_steps // 5)
    n_problems = max(1, n_solutions // 2)
    ds = [Dataset.objects.create(name=f"bench-{i}", source_format="prmbench") for i in range(2)]
    v1 = default_template()
    v2 = save_template(
        dataclasses.replace(DEFAULT_TEMPLATE, system=DEFAULT_TEMPLATE.system + " Be thorough.")
    )
    teachers = [endpoint_for(f"bench-teacher-{c}", backend="transformers") for c in "abc"]
    # Runs 1-3: teachers a, b, c with v1; 4-6: the same with v2 (dataset 0); 7-8: a, b on dataset 1.
    runs = [
        create_run(
            dataset=ds[0], endpoint=teachers[i % 3], template=v1 if i < 3 else v2, queue=False, n_samples=4
        )
        for i in range(6)
    ]
    runs += [
        create_run(dataset=ds[1], endpoint=teachers[i], template=v1, queue=False, n_samples=4)
        for i in range(2)
    ]
    group = Group.objects.get_or_create(name="reviewer")[0]
    reviewers = []
    for i in range(20):
        u = User.objects.create_user(f"bench-reviewer-{i}")
        u.groups.add(group)
        reviewers.append(u)
    admin = User.objects.create_user("bench-admin", is_staff=True)
    types = list(ErrorType.objects.order_by("order").values_list("id", flat=True))
    arr = lambda xs: "ARRAY[" + ",".join(str(int(x)) for x in xs) + "]"  # noqa: E731
    p = {
        "ds0": ds[0].id,
        "ds1": ds[1].id,
        "np": n_problems,
        "ns": n_solutions,
        "runs": arr(r.id for r in runs),
        "users": arr(u.id for u in reviewers),
        "types": arr(types),
        "admin": admin.id,
    }
    # SQL below uses @name for these values (ids and a constant text only: no driver placeholders, so % is modulo).
    p["text"] = "'" + TEXT + "'"
    statements = [
        (
            "problems",
            """
            INSERT INTO annotations_problem (id, source_id, question, reference_answer, metadata, dataset_id)
            SELECT g, 'p' || g, 'A baker makes ' || g || ' muffins. How many in total?', '', '{}',
                   CASE WHEN g % 10 = 0 THEN @ds1 ELSE @ds0 END
            FROM generate_series(1, @np) g""",
        ),
        (
            "solutions",
            """
            INSERT INTO annotations_solution (id, uuid, source_id, generator, final_answer_correct,
                   first_error_index, n_steps, metadata, dataset_id, error_type_id, problem_id)
            SELECT s, gen_random_uuid(), 's' || s, 'bench', s % 2 = 0, CASE WHEN s % 2 = 0 THEN -1 ELSE s % 5 END,
                   5, '{}', CASE WHEN ((s - 1) / 2 + 1) % 10 = 0 THEN @ds1 ELSE @ds0 END,
                   CASE WHEN s % 4 <> 0 THEN (@types)[1 + s % 10] END, (s - 1) / 2 + 1
            FROM generate_series(1, @ns) s""",
        ),
        (
            "steps",
            """
            INSERT INTO annotations_step (id, index, text, label, source_rating, alternatives, solution_id)
            SELECT (s - 1) * 5 + i + 1, i, 'We add ' || s || ' and ' || i || ' to the running total.',
                   CASE WHEN s % 2 = 0 OR i < s % 5 THEN 'correct' WHEN i = s % 5 THEN 'incorrect'
                        ELSE 'unlabelled' END, NULL, '[]', s
            FROM generate_series(1, @ns) s, generate_series(0, 4) i""",
        ),
        # Two runs per step: on dataset 0 one v1 run (teacher by step) and one v2 run (another
        # teacher), on dataset 1 runs 7 and 8; 4 samples each; 12 weeks of creation times.
        (
            "critiques",
            """
            INSERT INTO inference_critique (id, uuid, sample_index, text, sections, missing_sections, verdict,
                   strict, lenient_verdict, format_problem, p_yes, p_yes_source, matches_label, prompt_tokens,
                   completion_tokens, latency_ms, text_repaired, truncated, gold_copy, created_at, step_id, run_id)
            SELECT ((st.id - 1) * 2 + slot) * 4 + k + 1, gen_random_uuid(), k,
                   @text || CASE WHEN v.yes THEN 'correct' ELSE 'incorrect' END
                       || E'.\\nVerification: Is the step correct (Yes/No)? ' || CASE WHEN v.yes THEN 'Yes' ELSE 'No' END,
                   '{}', '[]', CASE WHEN v.yes THEN 'yes' ELSE 'no' END, true,
                   CASE WHEN v.yes THEN 'yes' ELSE 'no' END, '',
                   CASE WHEN v.yes THEN 0.55 + (st.id % 40) / 100.0 ELSE 0.05 + (st.id % 40) / 100.0 END, 'inline',
                   CASE WHEN st.label = 'correct' THEN v.yes WHEN st.label = 'incorrect' THEN NOT v.yes END,
                   900, 450, 1200, false, false, false,
                   now() - interval '1 hour' * ((st.solution_id * 7 + slot * 500) % 2016), st.id,
                   (@runs)[CASE WHEN sol.dataset_id = @ds1 THEN 7 + slot
                                   WHEN slot = 0 THEN 1 + st.solution_id % 3
                                   ELSE 4 + (st.solution_id + 1) % 3 END]
            FROM annotations_step st JOIN annotations_solution sol ON sol.id = st.solution_id,
                 generate_series(0, 1) slot, generate_series(0, 3) k,
                 LATERAL (SELECT (st.id * 7 + slot * 3 + k) % 5 <> 0 AS yes) v""",
        ),
        (
            "audits",
            """
            INSERT INTO annotations_critiqueaudit (signals, suspicion, version, computed_at, critique_id)
            SELECT COALESCE(jsonb_agg(x.sig) FILTER (WHERE x.sig IS NOT NULL), '[]'::jsonb),
                   CASE WHEN c.id % 11 = 0 THEN 0.7 WHEN c.id % 5 = 0 THEN 0.45 ELSE 0.05 END, 1, now(), c.id
            FROM inference_critique c
            LEFT JOIN LATERAL (
                SELECT jsonb_build_object('kind', kind, 'strength', 1.0, 'weight', 0.5, 'message', kind,
                                          'evidence', '{}'::jsonb) AS sig
                FROM (VALUES ('false_calculation_claim', c.id % 11 = 0), ('sample_disagreement', c.id % 5 = 0),
                             ('p_yes_uncertain', c.id % 13 = 0)) s(kind, fires)
                WHERE fires) x ON true
            GROUP BY c.id""",
        ),
        (
            "review items",
            """
            INSERT INTO annotations_reviewitem (queue, flagged, suspicion, state, needs_double_review,
                   reviews_needed, reviews_done, final_decision, lease_expires_at, leased_at, created_at,
                   updated_at, critique_id, dataset_id, error_type_id, lease_holder_id, run_id, step_id)
            SELECT CASE WHEN c.matches_label IS NULL THEN 'other' WHEN c.matches_label THEN 'matched'
                        ELSE 'disagreed' END,
                   a.suspicion >= 0.5, a.suspicion, 'open', c.id % 200 = 1, CASE WHEN c.id % 200 = 1 THEN 2 ELSE 1 END,
                   0, '', NULL, NULL, now(), now(), c.id, sol.dataset_id, sol.error_type_id, NULL, c.run_id, c.step_id
            FROM inference_critique c
            JOIN annotations_critiqueaudit a ON a.critique_id = c.id
            JOIN annotations_step st ON st.id = c.step_id
            JOIN annotations_solution sol ON sol.id = st.solution_id""",
        ),
        # One review for every tenth item (two for the double-reviewed); decisions by queue.
        (
            "reviews",
            """
            INSERT INTO annotations_review (decision, note, time_on_task_ms, time_source, created_at, undone_at,
                   critique_id, item_id, reviewer_id)
            SELECT CASE WHEN ri.queue = 'matched' THEN
                             CASE WHEN (c.id * 37 + r.n * 11) % 100 < 14 + (c.id % 7) THEN 'flawed' ELSE 'sound' END
                        WHEN ri.queue = 'disagreed' THEN
                             CASE WHEN (c.id * 37) % 100 < 10 THEN 'label_wrong' ELSE 'sound' END
                        ELSE 'skip' END,
                   '', 5000 + (c.id * 7919 + r.n * 104729) % 120000, 'client',
                   LEAST(now(), c.created_at + interval '1 minute' * ((c.id * 13) % 4000)), NULL, c.id, ri.id,
                   (@users)[1 + (c.id / 10 + r.n * (1 + (c.id / 10) % 19)) % 20]
            FROM annotations_reviewitem ri JOIN inference_critique c ON c.id = ri.critique_id,
                 generate_series(0, 1) r(n)
            WHERE c.id % 10 = 1 AND (r.n = 0 OR ri.needs_double_review)""",
        ),
        (
            "tags",
            """
            INSERT INTO annotations_review_error_types (review_id, errortype_id)
            SELECT r.id, (@types)[1 + (r.id * 3) % 10] FROM annotations_review r
            WHERE r.decision = 'flawed' AND r.id % 3 <> 0""",
        ),
        (
            "settle items",
            """
            UPDATE annotations_reviewitem ri SET
                reviews_done = x.deciding,
                state = CASE WHEN x.label_wrong > 0 THEN 'adjudication'
                             WHEN x.deciding >= ri.reviews_needed AND x.kinds = 1 THEN 'done'
                             WHEN x.deciding >= ri.reviews_needed THEN 'adjudication' ELSE 'open' END,
                final_decision = CASE WHEN x.label_wrong = 0 AND x.deciding >= ri.reviews_needed AND x.kinds = 1
                                      THEN x.first ELSE '' END
            FROM (SELECT item_id, COUNT(*) FILTER (WHERE decision <> 'skip') AS deciding,
                         COUNT(DISTINCT decision) FILTER (WHERE decision <> 'skip') AS kinds,
                         COUNT(*) FILTER (WHERE decision = 'label_wrong') AS label_wrong,
                         MIN(decision) FILTER (WHERE decision <> 'skip') AS first
                  FROM annotations_review GROUP BY item_id) x
            WHERE x.item_id = ri.id""",
        ),
        (
            "label corrections",
            """
            INSERT INTO annotations_labelcorrection (original_label, proposed_label, reason, created_at, status,
                   decided_at, author_id, decided_by_id, review_id, step_id)
            SELECT st.label, CASE WHEN st.label = 'correct' THEN 'incorrect' ELSE 'correct' END, '', r.created_at,
                   'pending', NULL, r.reviewer_id, NULL, r.id, st.id
            FROM annotations_review r JOIN annotations_step st ON st.id = (
                SELECT step_id FROM annotations_reviewitem WHERE id = r.item_id)
            WHERE r.decision = 'label_wrong' AND st.label IN ('correct', 'incorrect')""",
        ),
        # Half the adjudication queue decided by the admin (with a tag); the rest waits.
        (
            "adjudications",
            """
            INSERT INTO annotations_adjudication (decision, note, created_at, decided_by_id, item_id)
            SELECT CASE WHEN ri.id % 3 = 0 THEN 'label_wrong' ELSE 'flawed' END, '', now(), @admin, ri.id
            FROM annotations_reviewitem ri WHERE ri.state = 'adjudication' AND ri.id % 2 = 0""",
        ),
        (
            "adjudication tags",
            """
            INSERT INTO annotations_adjudication_error_types (adjudication_id, errortype_id)
            SELECT a.id, (@types)[1 + a.id % 10] FROM annotations_adjudication a""",
        ),
        (
            "adjudicated items",
            """
            UPDATE annotations_reviewitem ri SET state = 'adjudicated', final_decision = a.decision
            FROM annotations_adjudication a WHERE a.item_id = ri.id""",
        ),
    ]
    timings: dict[str, float] = {}
    with connection.cursor() as cur:
        for name, sql in statements:
            for key in sorted(p, key=len, reverse=True):
                sql = sql.replace("@" + key, str(p[key]))
            t0 = time.perf_counter()
            with transaction.atomic():
                cur.execute(sql)
            timings[name] = round(time.perf_counter() - t0, 1)
            log(f"  {name:<18} {cur.rowcount:>9,} rows in {timings[name]:6.1f} s")
        for table in (
            "annotations_problem",
            "annotations_solution",
            "annotations_step",
            "inference_critique",
        ):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        t0 = time.perf_counter()
        cur.execute("VACUUM ANALYZE")
        timings["vacuum_analyze"] = round(time.perf_counter() - t0, 1)
        cur.execute(
            "SELECT (SELECT count(*) FROM inference_critique), (SELECT count(*) FROM annotations_review)"
        )
        n_critiques, n_reviews = cur.fetchone()
    return {"critiques": n_critiques, "reviews": n_reviews, "load_s": timings}


# -- timing ------------------------------------------------------------------------------------


def scenarios() -> list[tuple[str, str]]:
    from annotations.models import Dataset
    from inference.models import GenerationRun, ModelEndpoint, PromptTemplate

    a, b = ModelEndpoint.objects.filter(name__startswith="bench-teacher-").order_by("name")[:2]
    t1, t2 = PromptTemplate.objects.order_by("version")[:2]
    ds1 = Dataset.objects.get(name="bench-1")
    run = GenerationRun.objects.order_by("id").first()
    return [
        ("error_types", "/dashboards/"),
        ("error_types_teacher", f"/dashboards/?teacher={a.id}"),
        ("error_types_tags_trend", "/dashboards/?basis=tag&trend=calculation"),
        ("error_types_dataset_4w", f"/dashboards/?dataset={ds1.id}&weeks=4&basis=class"),
        ("error_types_csv", "/dashboards/?csv=types"),
        ("compare_teachers_same_steps", f"/dashboards/compare/?a=teacher:{a.id}&b=teacher:{b.id}&same=1"),
        ("compare_templates", f"/dashboards/compare/?a=template:{t1.id}&b=template:{t2.id}"),
        ("review_operations", "/dashboards/reviews/"),
        ("review_operations_run", f"/dashboards/reviews/?run={run.id}&signals=all"),
        ("drill_down_flawed_calculation", "/dashboards/critiques/?type=calculation&matches=1&outcome=flawed"),
        ("drill_down_teacher", f"/dashboards/critiques/?teacher={a.id}&outcome=reviewed"),
    ]


def measure(repeats: int, log) -> dict:
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    settings.DASHBOARD_STALE_SECONDS = 10**7  # the summary just built stays current while we measure
    client = Client()
    client.force_login(User.objects.get(username="bench-admin"))
    out = {}
    for name, url in scenarios():
        for _ in range(2):  # warm-up: connection, templates, plan cache
            assert client.get(url).status_code == 200, url
        # Counted with an execute wrapper: request_started resets Django's own query log.
        executed: list[str] = []

        def count(run, sql, params, many, context, executed=executed):
            executed.append(sql)
            return run(sql, params, many, context)

        with connection.execute_wrapper(count):
            client.get(url)
        samples = []
        for _ in range(repeats):
            w0, c0 = time.perf_counter(), time.process_time()
            response = client.get(url)
            samples.append((time.perf_counter() - w0, time.process_time() - c0))
            assert response.status_code == 200
        out[name] = {**percentiles(samples, digits=1), "queries": len(executed), "url": url}
        log(
            f"  {name:<32} p50 {out[name]['p50_ms']:>7} ms  p95 {out[name]['p95_ms']:>7} ms  "
            f"({out[name]['queries']} queries)"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--critiques", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=20, help="timed GETs per dashboard view")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--reuse", action="store_true", help="measure on a database kept by --keep (no load)")
    parser.add_argument(
        "--smoke", action="store_true", help="seconds: 2,000 critiques, 2 GETs per view (tests)"
    )
    args = parser.parse_args()
    if args.smoke:
        args.critiques, args.repeats = 2_000, 2
    bench_db = scratch_name("bench_dash", smoke=args.smoke)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        open_scratch_db(bench_db, reuse=args.reuse, log=log)
        from dashboards.summaries import refresh_now

        if args.reuse:
            from inference.models import Critique
            from review.models import Review

            data = {"critiques": Critique.objects.count(), "reviews": Review.objects.count(), "load_s": None}
            load_s = None
        else:
            log(f"filling {args.critiques:,} critiques ...")
            t0 = time.perf_counter()
            data = fill(args.critiques, log)
            load_s = round(time.perf_counter() - t0, 1)
            log(f"loaded {data['critiques']:,} critiques and {data['reviews']:,} reviews in {load_s} s")
        load_before = os.getloadavg()[0]
        refresh = refresh_now()
        assert refresh.status == "succeeded", refresh.error
        log(f"summaries rebuilt in {refresh.seconds:.1f} s: {refresh.counts}")
        log(f"measuring {args.repeats} GETs per view ...")
        timings = measure(args.repeats, log)
        load_after = os.getloadavg()[0]
        from django.db import connections

        connections.close_all()
    finally:
        if not args.keep:
            admin_sql(f"DROP DATABASE IF EXISTS {bench_db} WITH (FORCE)")

    print(
        f"\n{'view':<32}{'n':>5}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}{'cpu p50':>10}{'cpu p95':>10}{'queries':>9}"
    )
    for name, t in timings.items():
        print(
            f"{name:<32}{t['n']:>5}{t['p50_ms']:>10}{t['p95_ms']:>10}{t['max_ms']:>10}{t['cpu_p50_ms']:>10}"
            f"{t['cpu_p95_ms']:>10}{t['queries']:>9}"
        )
    dashboards = {k: v for k, v in timings.items() if not k.startswith("drill_down")}
    print(
        json.dumps(
            {
                "bench": "dashboards",
                "critiques": data["critiques"],
                "reviews": data["reviews"],
                "load_s": load_s,
                "load_breakdown_s": data["load_s"],
                "refresh_s": round(refresh.seconds, 1),
                "summary_rows": refresh.counts,
                "views": timings,
                "target_p95_ms": TARGET_P95_MS,
                "meets_target": all(v["p95_ms"] < TARGET_P95_MS for v in dashboards.values()),
                "meets_target_cpu": all(v["cpu_p95_ms"] < TARGET_P95_MS for v in dashboards.values()),
                "smoke": args.smoke,
                "cpus": os.cpu_count(),
                "loadavg_1m": [round(load_before, 2), round(load_after, 2)],
            }
        )
    )


if __name__ == "__main__":
    main()
