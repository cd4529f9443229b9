"""Model output PostgreSQL cannot hold (NUL, lone surrogates) never fails a run: it is
stored with U+FFFD and flagged. Postgres only: SQLite accepts NUL and hides the bug."""

from __future__ import annotations

import json

import pytest
from django.db import DataError, connection, transaction

from annotations.actions import import_file
from annotations.demo import write_demo_processbench
from annotations.models import Step
from inference.actions import create_run, endpoint_for
from inference.core.backends.base import Backend, Completion, Sampling
from inference.core.prompts import DEFAULT_TEMPLATE
from inference.core.solution_scoring import score_solutions
from inference.critique_import import import_critiques
from inference.guidance_runs import create_guidance_run, process_guidance
from inference.models import Critique, GenerationRun, GuidanceResult, GuidanceRun, ModelEndpoint
from inference.runner import process_run
from tests.annotations.factories_files import generic_row, write_jsonl

FFFD = "\ufffd"
BODY = (
    "Previous Steps Analysis: fine.\nNow Step Analysis: adds.\nData Source Analysis: ok.\n"
    "Consistency Analysis: ok.\nCalculation Analysis: {calc}\nConclusion: done.\n"
    "Verification: Is the step correct (Yes/No)? Yes"
)
LONG = "x" * 200_000
# Sample i of every prompt: what an odd model may emit.
ODD = [
    ("nul", BODY.format(calc="2 + 2 = 4\x00\x00 checked"), "stop"),
    ("surrogates", BODY.format(calc="bad bytes \udcff\ud800 here"), "stop"),
    ("cut", "Previous Steps Analysis: the model ran out of toke", "length"),
    ("long", BODY.format(calc=LONG), "stop"),
    ("rtl", BODY.format(calc="שלום עולם مرحبا بالعالم 2+2=4"), "stop"),
    ("combining", BODY.format(calc="Z\u0351\u0352\u0353\u0354\u0355" * 500), "stop"),
]


class OddBackend:
    """Implements the backend protocol and returns NUL bytes, lone surrogates, a cut
    critique, a 200 KB critique, right-to-left and combining-character text on purpose."""

    name = "odd"

    def generate(self, prompts, n, sampling):
        return [
            [
                Completion(text=ODD[i % len(ODD)][1], prompt_tokens=3, completion_tokens=5, p_yes=0.8,
                           p_yes_source="inline", finish_reason=ODD[i % len(ODD)][2])
                for i in range(n)
            ]
            for _ in prompts
        ]

    def close(self):
        pass


@pytest.fixture
def demo(db, tmp_path):
    assert connection.vendor == "postgresql", "these tests mean PostgreSQL: SQLite stores NUL"
    return import_file(
        write_demo_processbench(tmp_path / "demo.json"), dataset_name="demo", fmt="processbench"
    ).dataset


def test_postgres_refuses_nul_so_the_test_means_something(demo):
    step = Step.objects.filter(solution__dataset=demo).first()
    run = create_run(dataset=demo, endpoint=endpoint_for("t", backend="transformers"), queue=False)
    with pytest.raises(DataError, match="NUL"), transaction.atomic():
        Critique.objects.create(run=run, step=step, sample_index=0, text="a\x00b", verdict="yes", strict=True)


def test_a_backend_emitting_nul_and_surrogates_gives_flagged_readable_critiques(demo):
    assert isinstance(OddBackend(), Backend)
    run = create_run(dataset=demo, endpoint=endpoint_for("odd-teacher", backend="transformers"), queue=False,
                     n_samples=len(ODD), step_filter={"limit": 3}, batch_size=2)
    result = process_run(run.id, backend=OddBackend())
    assert result.status == GenerationRun.Status.SUCCEEDED, result.error
    rows = {c.sample_index: c for c in Critique.objects.filter(run=run, step=Step.objects.filter(
        solution__dataset=demo).order_by("id").first())}
    assert Critique.objects.filter(run=run).count() == 3 * len(ODD) == result.critiques_done
    nul, sur, cut, long, rtl, comb = (rows[i] for i in range(len(ODD)))
    assert nul.text_repaired and f"4{FFFD}{FFFD} checked" in nul.text and "\x00" not in nul.text
    assert nul.verdict == "yes" and nul.strict  # still parsed, still usable
    assert sur.text_repaired and f"bytes {FFFD}{FFFD} here" in sur.text
    assert any(FFFD in v for v in sur.sections.values())  # sections come from the repaired text
    assert cut.truncated and not cut.text_repaired and cut.verdict == "unparseable"
    assert len(long.text) > 200_000 and not long.text_repaired and long.strict
    assert rtl.text == ODD[4][1] and comb.text == ODD[5][1] and not rtl.text_repaired
    assert result.summary["text_repaired"] == 3 * 2 and result.summary["truncated"] == 3
    assert result.summary["critiques"] == 3 * len(ODD)


def test_a_failure_message_quoting_model_text_is_still_recorded(demo):
    class Exploding(OddBackend):
        def generate(self, prompts, n, sampling):
            raise RuntimeError("server said \x00\ud800")

    run = create_run(dataset=demo, endpoint=endpoint_for("x", backend="transformers"), queue=False,
                     step_filter={"limit": 1})
    result = process_run(run.id, backend=Exploding())
    result.refresh_from_db()
    assert result.status == GenerationRun.Status.FAILED and f"server said {FFFD}{FFFD}" in result.error


def test_imported_critiques_with_nul_and_surrogate_escapes_are_kept_and_flagged(demo, tmp_path):
    path = tmp_path / "c.jsonl"
    # JSON escapes make both legal in the file; only the database refuses them.
    path.write_text(
        json.dumps({"solution_id": "demo-0", "step_index": 0, "text": BODY.format(calc="a\x00b")}) + "\n"
        + json.dumps({"solution_id": "demo-0", "step_index": 1, "text": BODY.format(calc="c\ud800d")}) + "\n"
        + json.dumps({"solution_id": "demo-1", "step_index": 0, "text": BODY.format(calc="clean")}) + "\n",
        encoding="utf-8",
    )
    run, created = import_critiques(path, dataset=demo, model_name="other-team")
    assert created and run.critiques_done == 3 and run.summary["text_repaired"] == 2
    texts = sorted(Critique.objects.filter(run=run, text_repaired=True).values_list("text", flat=True))
    assert [f"a{FFFD}b" in t or f"c{FFFD}d" in t for t in texts] == [True, True]


def test_scoring_returns_repaired_text_the_api_can_send(db):
    class OneOdd(OddBackend):
        def generate(self, prompts, n, sampling):
            return [[Completion(text=BODY.format(calc="\x00\udc80"), prompt_tokens=1, completion_tokens=1,
                                p_yes=0.7, finish_reason="length")] * n for _ in prompts]

    [scored] = score_solutions(OneOdd(), DEFAULT_TEMPLATE, [("Q?", ["a", "b"])], 2, Sampling(), keep_text=True)
    sample = scored.steps[0].samples[0].as_dict()
    assert sample["text_repaired"] and sample["truncated"] and f"{FFFD}{FFFD}" in sample["text"]
    json.dumps(sample, ensure_ascii=False).encode("utf-8")  # the response body encodes


def test_guidance_stores_policy_text_with_nul(db, tmp_path):
    rows = [generic_row("q1", n_steps=1, question="What is 1 + 2?", reference_answer="3")]
    demo = import_file(write_jsonl(tmp_path / "p.jsonl", rows), dataset_name="p", fmt="generic").dataset
    policy = ModelEndpoint.objects.create(name="policy", role="policy", backend="transformers", path_or_url="p")
    scorer = ModelEndpoint.objects.create(name="prm", role="scorer", backend="transformers", path_or_url="s")

    class Policy(OddBackend):
        def generate(self, prompts, n, sampling):
            return [[Completion(text="Step \x00one.\n\nSo \\boxed{3\ud800}.", prompt_tokens=1, completion_tokens=2,
                                p_yes=None, finish_reason="stop")] * n for _ in prompts]

    run = create_guidance_run(kind="best_of_n", dataset=demo, policy=policy, scorer=scorer, queue=False,
                              n_candidates=2, n_samples=1)
    process_guidance(run.id, policy_backend=Policy(), scorer_backend=OddBackend())
    run.refresh_from_db()
    assert run.status == GuidanceRun.Status.SUCCEEDED, run.error
    results = list(GuidanceResult.objects.filter(run=run))
    assert results and all(r.text_repaired for r in results)
    assert results[0].candidates[0]["steps"][0] == f"Step {FFFD}one."
    assert run.results["text_repaired"] == len(results)
