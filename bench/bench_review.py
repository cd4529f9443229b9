"""Review benchmark: review-screen server time and queue claim time with 1M critiques.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rprm .venv/bin/python bench/bench_review.py
    ... bench/bench_review.py --critiques 100000 --requests 200     # quick run

Creates the database `rprm_bench_review` next to the one in DATABASE_URL, migrates it
with manage.py, fills it in SQL (generate_series: problems, solutions, 5 steps each,
4 critiques per step with realistic text and sections, their audits and review items),
then, in this process, measures with Django's test client and the real actions:

* `claim`: `review.queue.claim_next` for the default queue (each of 40 reviewers releases
  their lease and takes the next item), then the reviewer decides it (`submit`), so the
  top of the queue moves like in real use;
* `claim_flagged_dataset`: the same on the "flagged by signals" queue of one dataset;
* `review_page`: GET of the review screen of the item just claimed (full page: auth,
  session, ~13 queries, template, partials);
* `queue_page`: GET of the queue list (50 most suspicious open items, capped tab counts).

Prints p50/p95 per operation and one JSON object as the last line. The database is
dropped at the end (--keep keeps it). Target: p95 < 50 ms for the page and the claim.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from scratch import admin_sql, open_scratch_db, percentiles, scratch_name

# Targets (issue 21), in CPU time of this process: a shared machine inflates wall time.
CPU_P95_TARGET_MS = {"queue_page": 15.0, "review_page": 10.0, "claim": 5.0}


# -- fill -----------------------------------------------------------------------------

CRITIQUE_TEXT = (
    "Previous Steps Analysis: Step 1 restates the quantities from the problem correctly, and the later "
    "previous steps carry the running total forward without changing any number. "
    "Now Step Analysis: The Now Step adds ' || st.id || ' and ' || st.index || ' to update the running "
    "total, which is what the problem asks for at this point of the solution. "
    "Data Source Analysis: Both numbers come from the previous step and the problem statement; they are "
    "copied exactly and used in the right place. "
    "Consistency Analysis: The Now Step agrees with the previous steps and with the question. "
    "Calculation Analysis: Reversing the addition, ' || (st.id + st.index) || ' - ' || st.index || ' = ' || "
    "st.id || ', so the arithmetic in the Now Step checks out. "
    "Conclusion: The Now Step is ' || CASE WHEN v.yes THEN 'correct' ELSE 'incorrect' END || '. "
)


def fill(critiques: int, log) -> dict:
    """Everything in SQL, in one transaction per table. Returns ids the timing loop needs."""
    from django.contrib.auth.models import Group, User
    from django.db import connection, transaction

    from annotations.models import Dataset
    from inference.actions import create_run, default_template, endpoint_for

    n_steps = max(4, critiques // 4)
    n_solutions = max(1, n_steps // 5)
    n_problems = max(1, n_solutions // 2)
    datasets = [Dataset.objects.create(name=f"bench-{i}", source_format="processbench") for i in range(2)]
    template = default_template()
    endpoint = endpoint_for("bench-teacher", backend="transformers")
    run = create_run(dataset=datasets[0], endpoint=endpoint, template=template, queue=False, n_samples=4)
    group = Group.objects.get_or_create(name="reviewer")[0]
    users = []
    for i in range(40):
        u = User.objects.create_user(f"bench-reviewer-{i}")  # no password: force_login, no hashing
        u.groups.add(group)
        users.append(u)
    params = {"ds": datasets[0].id, "ds2": datasets[1].id, "run": run.id, "np": n_problems, "ns": n_solutions}
    statements = [
        (
            "problems",
            """
            INSERT INTO annotations_problem (id, source_id, question, reference_answer, metadata, dataset_id)
            SELECT g, 'p' || g, 'A baker makes ' || g || ' muffins in the morning and ' || (g % 97) ||
                   ' in the afternoon. How many muffins does she make in total? Give the answer as $n$.', '',
                   '{}', CASE WHEN g % 10 = 0 THEN %(ds2)s ELSE %(ds)s END
            FROM generate_series(1, %(np)s) g""",
        ),
        (
            "solutions",
            """
            INSERT INTO annotations_solution (id, uuid, source_id, generator, final_answer_correct,
                   first_error_index, n_steps, metadata, dataset_id, error_type_id, problem_id)
            SELECT g, gen_random_uuid(), 's' || g, 'bench', g % 2 = 0,
                   CASE WHEN g % 2 = 0 THEN -1 ELSE g % 5 END, 5, '{}',
                   CASE WHEN ((g - 1) / 2 + 1) % 10 = 0 THEN %(ds2)s ELSE %(ds)s END, NULL, (g - 1) / 2 + 1
            FROM generate_series(1, %(ns)s) g""",
        ),
        (
            "steps",
            """
            INSERT INTO annotations_step (id, index, text, label, source_rating, alternatives, solution_id)
            SELECT (s - 1) * 5 + i + 1, i,
                   'We add $' || s || ' + ' || i || ' = ' || (s + i) || '$ to the running total, so now we have '
                   || (s + i) || ' muffins and continue with the afternoon batch.',
                   CASE WHEN s % 2 = 0 OR i < s % 5 THEN 'correct' WHEN i = s % 5 THEN 'incorrect'
                        ELSE 'unlabelled' END, NULL, '[]', s
            FROM generate_series(1, %(ns)s) s, generate_series(0, 4) i""",
        ),
        (
            "critiques",
            f"""
            INSERT INTO inference_critique (id, uuid, sample_index, text, sections, missing_sections, verdict,
                   strict, lenient_verdict, format_problem, p_yes, p_yes_source, matches_label, prompt_tokens,
                   completion_tokens, latency_ms, text_repaired, truncated, gold_copy, created_at, step_id, run_id)
            SELECT (st.id - 1) * 4 + k + 1, gen_random_uuid(), k,
                   '{CRITIQUE_TEXT}' || 'Verification: Is the step correct (Yes/No)? '
                       || CASE WHEN v.yes THEN 'Yes' ELSE 'No' END,
                   jsonb_build_object(
                       'previous_steps_analysis', 'Step 1 restates the quantities from the problem correctly.',
                       'now_step_analysis', 'The Now Step adds ' || st.id || ' and ' || st.index || '.',
                       'data_source_analysis', 'Both numbers come from the previous step and the problem.',
                       'consistency_analysis', 'The Now Step agrees with the previous steps.',
                       'calculation_analysis', 'Reversing the addition, the arithmetic checks out.',
                       'conclusion', 'The Now Step is ' || CASE WHEN v.yes THEN 'correct' ELSE 'incorrect' END
                           || E'.\\nVerification: Is the step correct (Yes/No)? '
                           || CASE WHEN v.yes THEN 'Yes' ELSE 'No' END),
                   '[]', CASE WHEN v.yes THEN 'yes' ELSE 'no' END, true, CASE WHEN v.yes THEN 'yes' ELSE 'no' END,
                   '', CASE WHEN v.yes THEN 0.55 + (st.id % 40) / 100.0 ELSE 0.05 + (st.id % 40) / 100.0 END,
                   'inline',
                   CASE WHEN st.label = 'correct' THEN v.yes WHEN st.label = 'incorrect' THEN NOT v.yes END,
                   900, 450, 1200, false, false, false, now(), st.id, %(run)s
            FROM annotations_step st, generate_series(0, 3) k,
                 LATERAL (SELECT (st.id * 7 + k) % 5 <> 0 AS yes) v""",
        ),
        (
            "audits",
            """
            INSERT INTO annotations_critiqueaudit (signals, suspicion, version, computed_at, critique_id)
            SELECT CASE WHEN s.v >= 0.5 THEN jsonb_build_array(jsonb_build_object(
                        'kind', 'sample_disagreement', 'title', 'Samples for this step disagree',
                        'strength', 1.0, 'weight', 0.45, 'message', '2 of 4 samples say Yes, 2 say No.',
                        'evidence', jsonb_build_object('yes', 2, 'no', 2, 'samples', 4)))
                   ELSE '[]'::jsonb END, s.v, 1, now(), c.id
            -- Skewed like real audits: most critiques look fine, ~16% reach the flag threshold.
            FROM inference_critique c, LATERAL (SELECT power(((c.id * 2654435761) % 1000) / 1000.0, 4) AS v) s""",
        ),
        (
            "review items",
            """
            INSERT INTO annotations_reviewitem (queue, flagged, suspicion, state, needs_double_review,
                   reviews_needed, reviews_done, final_decision, lease_expires_at, leased_at, created_at,
                   updated_at, critique_id, dataset_id, error_type_id, lease_holder_id, run_id, step_id)
            SELECT CASE WHEN c.matches_label IS NULL THEN 'other' WHEN c.matches_label THEN 'matched'
                        ELSE 'disagreed' END,
                   a.suspicion >= 0.5, a.suspicion, 'open', c.id % 10 = 0, CASE WHEN c.id % 10 = 0 THEN 2 ELSE 1 END,
                   0, '', NULL, NULL, now(), now(), c.id, sol.dataset_id, NULL, NULL, c.run_id, c.step_id
            FROM inference_critique c
            JOIN annotations_critiqueaudit a ON a.critique_id = c.id
            JOIN annotations_step st ON st.id = c.step_id
            JOIN annotations_solution sol ON sol.id = st.solution_id""",
        ),
    ]
    timings = {}
    with connection.cursor() as cur:
        for name, sql in statements:
            for key, value in params.items():  # integers only; no driver placeholders, so % is modulo
                sql = sql.replace(f"%({key})s", str(int(value)))
            t0 = time.perf_counter()
            with transaction.atomic():
                cur.execute(sql)
            timings[name] = round(time.perf_counter() - t0, 1)
            log(f"  {name:<13} {cur.rowcount:>9,} rows in {timings[name]:6.1f} s")
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
        cur.execute("SELECT count(*) FROM inference_critique")
        n_critiques = cur.fetchone()[0]
    return {"users": users, "dataset2": datasets[1].id, "critiques": n_critiques, "load_s": timings}


# -- timing -----------------------------------------------------------------------------


def measure(users, dataset2: int, requests: int, log) -> dict:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from review.queue import QueueFilter, claim_next
    from review.reviews import submit_review

    clients = {}
    for u in users:
        clients[u.id] = Client()
        clients[u.id].force_login(u)
    default, flagged = QueueFilter(), QueueFilter(queue="flagged", dataset_id=dataset2)
    results: dict[str, list[tuple[float, float]]] = {
        "claim": [],
        "review_page": [],
        "submit": [],
        "claim_flagged_dataset": [],
        "queue_page": [],
    }

    def timed(name: str, fn, *args, **kwargs):
        w0, c0 = time.perf_counter(), time.process_time()
        value = fn(*args, **kwargs)
        results[name].append((time.perf_counter() - w0, time.process_time() - c0))
        return value

    queries = None
    # Warm-up: connections, template cache, plan cache.
    for u in users[:5]:
        item = claim_next(u, default)
        clients[u.id].get(reverse("review:item", args=[item.critique.uuid]))
    for i in range(requests):
        user = users[i % len(users)]
        flt = flagged if i % 4 == 3 else default
        item = timed("claim_flagged_dataset" if flt is flagged else "claim", claim_next, user, flt)
        url = reverse("review:item", args=[item.critique.uuid]) + "?queue=" + flt.queue
        if queries is None:
            with CaptureQueriesContext(connection) as ctx:
                clients[user.id].get(url)
            queries = len(ctx.captured_queries)
        response = timed("review_page", clients[user.id].get, url)
        assert response.status_code == 200, response.status_code
        timed("submit", submit_review, item, user, "sound" if i % 7 else "flawed", time_on_task_ms=30_000)
        if i % 8 == 0:
            response = timed("queue_page", clients[user.id].get, reverse("review:queue") + "?queue=matched")
            assert response.status_code == 200
        if (i + 1) % 100 == 0:
            log(f"  {i + 1} review cycles")
    out = {name: percentiles(samples) for name, samples in results.items() if len(samples) >= 2}
    out["review_page"]["queries"] = queries
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--critiques", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=400, help="review cycles (claim, page, submit)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--reuse", action="store_true", help="measure on a database kept by --keep (no load)")
    parser.add_argument("--smoke", action="store_true", help="seconds: 2,000 critiques, 12 cycles (tests)")
    args = parser.parse_args()
    if args.smoke:
        args.critiques, args.requests = 2_000, 12
    bench_db = scratch_name("bench_review", smoke=args.smoke)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        open_scratch_db(bench_db, reuse=args.reuse, log=log)
        if args.reuse:
            from django.contrib.auth.models import User

            from annotations.models import Dataset
            from inference.models import Critique

            data = {
                "users": list(User.objects.filter(username__startswith="bench-reviewer-").order_by("id")),
                "dataset2": Dataset.objects.get(name="bench-1").id,
                "critiques": Critique.objects.count(),
                "load_s": None,
            }
            load_s = None
        else:
            log(f"filling {args.critiques:,} critiques ...")
            t0 = time.perf_counter()
            data = fill(args.critiques, log)
            load_s = round(time.perf_counter() - t0, 1)
            log(f"loaded in {load_s} s")
        log(f"measuring {args.requests} review cycles ...")
        load_before = os.getloadavg()[0]
        timings = measure(data["users"], data["dataset2"], args.requests, log)
        load_after = os.getloadavg()[0]
        from django.db import connections

        connections.close_all()
    finally:
        if not args.keep:
            admin_sql(f"DROP DATABASE IF EXISTS {bench_db} WITH (FORCE)")

    print(
        f"\n{'operation':<24}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}{'cpu p50':>10}{'cpu p95':>10}"
    )
    for name, t in timings.items():
        print(
            f"{name:<24}{t['n']:>6}{t['p50_ms']:>10}{t['p95_ms']:>10}{t['max_ms']:>10}"
            f"{t['cpu_p50_ms']:>10}{t['cpu_p95_ms']:>10}"
        )
    ok = all(timings[k]["cpu_p95_ms"] < target for k, target in CPU_P95_TARGET_MS.items())
    print(
        json.dumps(
            {
                "bench": "review",
                "critiques": data["critiques"],
                "load_s": load_s,
                "load_breakdown_s": data["load_s"],
                **timings,
                "target_cpu_p95_ms": CPU_P95_TARGET_MS,
                "meets_target": ok,
                "smoke": args.smoke,
                "cpus": os.cpu_count(),
                "loadavg_1m": [round(load_before, 2), round(load_after, 2)],
            }
        )
    )


if __name__ == "__main__":
    main()
