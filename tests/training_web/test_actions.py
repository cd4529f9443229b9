"""Training actions: SFT data from a scripted teacher run, the DPO pair rule on
constructed critiques, launching, cancelling, the registry and student sampling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotations.models import Step
from inference.actions import save_template
from inference.core.prompts import DEFAULT_TEMPLATE
from inference.models import Critique, GenerationRun, ModelEndpoint
from review.models import ReviewItem
from training import actions
from training.data import (
    TrainingDataError,
    build_dpo_data,
    build_preference_pairs_for,
    build_sft_data,
    pairs_for,
    preview_pairs,
    preview_sft,
)
from training.models import ModelVersion, PreferencePair, TrainingRun

from .conftest import student_run_with, teacher_run


def _sft_run(selection, **hyper) -> TrainingRun:
    return actions.launch_training("sft", "some/base-model", selection, hyper, queue=False)


# --- SFT data ---------------------------------------------------------------------------


def test_it_builds_sft_rows_from_the_kept_critiques(seed_run, settings, tmp_path):
    settings.MODELS_DIR = tmp_path / "models"
    run = _sft_run({"runs": [seed_run.id], "val_fraction": 0.3})
    data = build_sft_data(run)
    kept = Critique.objects.filter(run=seed_run, strict=True, matches_label=True)
    n_correct = kept.filter(verdict="yes").count()
    n_incorrect = kept.filter(verdict="no").count()
    assert n_correct > n_incorrect > 0  # the demo has more correct steps: balancing drops some
    c = data.counts
    assert c["train_yes"] == c["train_no"] and c["val_yes"] == c["val_no"]
    assert c["train"] == len(data.train) > 0 and c["val"] == len(data.val) > 0
    assert c["eligible"] == kept.count()
    # Every row: the prompt as inference renders it, the critique as the completion.
    for example in data.train + data.val:
        critique = Critique.objects.select_related("step__solution__problem").get(id=example.meta["critique"])
        assert critique.matches_label and critique.strict
        assert example.completion == critique.text
        user = example.prompt_messages[-1]["content"]
        assert critique.step.solution.problem.question in user and critique.step.text in user

    # Split by problem: no question on both sides.
    def questions(rows):
        return {Critique.objects.get(id=r.meta["critique"]).step.solution.problem.question for r in rows}

    assert not questions(data.train) & questions(data.val)
    assert data.template == seed_run.template
    assert data.manifest["template"]["hash"] == seed_run.template.content_hash
    ids = json.loads((Path(run.output_dir) / "data_ids.json").read_text())
    assert len(ids["train_critique_ids"]) == c["train"] and len(ids["val_critique_ids"]) == c["val"]
    assert len(data.manifest["critique_ids_sha256"]) == 64


def test_it_leaves_out_critiques_reviewed_as_flawed(seed_run, reviewer, settings, tmp_path):
    from review.queue import ensure_review_items, take_item
    from review.reviews import submit_review

    settings.MODELS_DIR = tmp_path / "models"
    before = preview_sft({"runs": [seed_run.id], "val_fraction": 0, "balance": False})
    kept = Critique.objects.filter(run=seed_run, strict=True, matches_label=True, verdict="no").first()
    ensure_review_items([kept.id])
    take_item(kept.id, reviewer)
    submit_review(ReviewItem.objects.get(critique=kept), reviewer, "flawed")
    after = preview_sft({"runs": [seed_run.id], "val_fraction": 0, "balance": False})
    assert after["train"]["no"] == before["train"]["no"] - 1
    data = build_sft_data(_sft_run({"runs": [seed_run.id], "val_fraction": 0, "balance": False}))
    assert kept.id not in {e.meta["critique"] for e in data.train}


def test_it_refuses_critiques_from_two_templates(seed_run, demo_dataset, settings, tmp_path):
    settings.MODELS_DIR = tmp_path / "models"
    other = save_template(DEFAULT_TEMPLATE.with_version(name="other-template", version=1), source="test")
    second = teacher_run(demo_dataset, endpoint_name="another-teacher", template=other)
    selection = {"runs": [seed_run.id, second.id]}
    assert "2 prompt templates" in preview_sft(selection)["error"]
    with pytest.raises(TrainingDataError, match="2 prompt templates"):
        build_sft_data(_sft_run(selection))


def test_it_says_when_there_is_nothing_to_train_on(demo_dataset, settings, tmp_path):
    settings.MODELS_DIR = tmp_path / "models"
    assert "No training rows" in preview_sft({"datasets": [demo_dataset.id]})["error"]
    with pytest.raises(TrainingDataError, match="no training rows"):
        build_sft_data(_sft_run({"datasets": [demo_dataset.id]}))


# --- the DPO pair rule ---------------------------------------------------------------------


@pytest.fixture
def constructed(demo_dataset):
    """Labelled steps with hand-picked verdicts, one per case of the rule."""
    correct = list(Step.objects.filter(solution__dataset=demo_dataset, label="correct").order_by("id"))
    incorrect = list(Step.objects.filter(solution__dataset=demo_dataset, label="incorrect").order_by("id"))
    unlabelled = (
        Step.objects.filter(solution__dataset=demo_dataset, label="unlabelled").order_by("id").first()
    )
    cases = {
        correct[0]: ["Yes", "Yes", "Yes", "No"],  # 3 agree x 1 disagree: 3 pairs, capped to 2
        incorrect[0]: ["Yes", "Yes", "No", "maybe"],  # 1 of 3 valid agrees: 2 pairs, or dropped by 1/3
        correct[1]: ["Yes", "Yes", "Yes", "Yes"],  # all agree: no pair
        incorrect[1]: ["No", "No", "Yes", "Yes"],  # 2 x 2 = 4 pairs, capped to 2
        unlabelled: ["Yes", "No", "Yes", "No"],  # no label: skipped
    }
    return student_run_with(demo_dataset, cases), cases, correct, incorrect


def _pairs(run):
    return list(PreferencePair.objects.filter(run=run).select_related("chosen", "rejected", "step"))


def test_it_pairs_agreeing_with_disagreeing_critiques_capped_per_step(constructed):
    run, _cases, correct, incorrect = constructed
    build = build_preference_pairs_for(run, max_pairs_per_step=2, min_agree_fraction=None, balance=False)
    pairs = _pairs(run)
    assert len(pairs) == len(build.pairs) == build.created == 6
    by_step = {
        s: [p for p in pairs if p.step_id == s.id]
        for s in (correct[0], incorrect[0], correct[1], incorrect[1])
    }
    assert [len(by_step[s]) for s in (correct[0], incorrect[0], correct[1], incorrect[1])] == [2, 2, 0, 2]
    for p in pairs:
        assert p.chosen.matches_label is True and p.rejected.matches_label is False
        assert p.chosen.step_id == p.rejected.step_id == p.step_id
        assert p.chosen.verdict != "unparseable" and p.rejected.verdict != "unparseable"
    # The authors' order: chosen x rejected in sample order, the first two kept: the
    # first two chosen with the one rejected on the 3 x 1 step, the first chosen with
    # both rejected on the 2 x 2 step.
    assert len({p.chosen_id for p in by_step[correct[0]]}) == 2
    assert len({p.chosen_id for p in by_step[incorrect[1]]}) == 1
    assert len({p.rejected_id for p in by_step[incorrect[1]]}) == 2
    s = build.stats
    assert (s["steps_considered"], s["steps_unlabelled"], s["steps_with_pairs"], s["steps_without_pair"]) == (
        4,
        1,
        3,
        1,
    )
    assert s["samples_unparseable"] == 1


def test_it_drops_steps_where_at_most_a_third_agree(constructed):
    run, _cases, _correct, incorrect = constructed
    build = build_preference_pairs_for(run, max_pairs_per_step=2, min_agree_fraction=1 / 3)
    assert build.stats["steps_dropped_by_filter"] == 1
    assert len(build.pairs) == 4 and incorrect[0].id not in {step for step, _, _ in build.pairs}
    assert preview_pairs({"student_run": run.id, "min_agree_fraction": 1 / 3})["pairs"] == 4


def test_the_default_rule_is_the_authors_filter_then_yes_no_balance(constructed):
    run, _cases, correct, incorrect = constructed
    build = build_preference_pairs_for(run)  # cap 2 and the 1/3 drop together, then 1:1
    steps = [step for step, _, _ in build.pairs]
    assert incorrect[0].id not in steps  # 1 of 3 valid agrees: dropped
    assert steps.count(correct[0].id) == 2 and steps.count(incorrect[1].id) == 2  # 2 chosen-Yes, 2 chosen-No
    assert (build.stats["chosen_yes"], build.stats["chosen_no"], build.stats["dropped_for_balance"]) == (
        2,
        2,
        0,
    )
    unbalanced = build_preference_pairs_for(run, max_pairs_per_step=4, balance=False)
    balanced = build_preference_pairs_for(run, max_pairs_per_step=4)
    assert (
        len(unbalanced.pairs) == 7 and len(balanced.pairs) == 6
    )  # 3 chosen-Yes vs 4 chosen-No: one No dropped
    assert balanced.stats["dropped_for_balance"] == 1


def test_it_is_idempotent_and_keeps_the_rule_exact(constructed):
    run, *_ = constructed
    old = {"min_agree_fraction": None, "balance": False}
    first = build_preference_pairs_for(run, max_pairs_per_step=2, **old)
    again = build_preference_pairs_for(run, max_pairs_per_step=2, **old)
    assert again.created == 0 and again.pairs == first.pairs
    assert PreferencePair.objects.filter(run=run).count() == 6
    # No cap: every chosen x rejected; the capped pairs are among them (same order).
    uncapped = build_preference_pairs_for(run, max_pairs_per_step=None, **old)
    assert len(uncapped.pairs) == 3 + 2 + 4 and uncapped.created == 3
    assert set(first.pairs) <= set(uncapped.pairs)
    # The capped rule still selects exactly its own 6 pairs.
    assert pairs_for(first, run).count() == 6


def test_it_leaves_flawed_student_critiques_out_of_pairs(constructed, reviewer):
    from review.queue import ensure_review_items, take_item
    from review.reviews import submit_review

    run, _cases, correct, _incorrect = constructed
    lone_rejected = Critique.objects.get(run=run, step=correct[0], verdict="no")
    ensure_review_items([lone_rejected.id])
    take_item(lone_rejected.id, reviewer)
    submit_review(ReviewItem.objects.get(critique=lone_rejected), reviewer, "flawed")
    build = build_preference_pairs_for(run)
    assert correct[0].id not in {step for step, _, _ in build.pairs}


def test_it_refuses_pairs_from_a_teacher_run_or_an_unfinished_one(seed_run, constructed):
    run, *_ = constructed
    with pytest.raises(TrainingDataError, match="student sampling"):
        build_preference_pairs_for(seed_run)
    GenerationRun.objects.filter(id=run.id).update(status="running")
    run.refresh_from_db()
    with pytest.raises(TrainingDataError, match="finished"):
        build_preference_pairs_for(run)


def test_it_builds_dpo_rows_with_the_student_template(constructed, settings, tmp_path):
    settings.MODELS_DIR = tmp_path / "models"
    run, *_ = constructed
    training = actions.launch_training(
        "dpo",
        "some/sft-model",
        {"student_run": run.id, "val_fraction": 0, "min_agree_fraction": None, "balance": False},
        queue=False,
    )
    assert training.template == run.template
    data = build_dpo_data(training)
    assert data.counts["train"] == 6 and data.counts["val"] == 0 and data.counts["steps"] == 3
    pair = PreferencePair.objects.select_related("chosen", "rejected").get(id=data.train[0].meta["pair"])
    assert data.train[0].chosen == pair.chosen.text and data.train[0].rejected == pair.rejected.text
    assert data.train[0].chosen.endswith("Yes") != data.train[0].rejected.endswith("Yes")
    assert data.manifest["reference"] == "some/sft-model" and data.manifest["student_run"] == run.id


# --- launching, cancelling -------------------------------------------------------------


def test_it_launches_a_run_with_the_paper_defaults(
    seed_run, admin, settings, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    from training import tasks

    settings.MODELS_DIR = tmp_path / "models"
    queued = []
    monkeypatch.setattr(tasks.run_training, "delay", lambda run_id: queued.append(run_id))
    with django_capture_on_commit_callbacks(execute=True):
        run = actions.launch_training("sft", "some/base", {"runs": [seed_run.id]}, {}, admin, name="first")
    assert queued == [run.id] and run.status == TrainingRun.Status.QUEUED and run.created_by == admin
    assert run.output_dir == str(tmp_path / "models" / "training" / str(run.uuid))
    config = actions.train_config(run)
    assert (
        config.resolved_learning_rate,
        config.effective_batch_size,
        config.num_epochs,
        config.warmup_ratio,
    ) == (5e-6, 128, 1.0, 0.03)
    assert run.data_selection == {
        "runs": [seed_run.id],
        "datasets": [],
        "val_fraction": 0.05,
        "seed": 0,
        "balance": True,
        "per_step": "one",
    }


def test_it_rejects_bad_hyperparameters_before_queueing(seed_run, settings, tmp_path):
    settings.MODELS_DIR = tmp_path / "models"
    with pytest.raises(ValueError, match="unknown hyperparameters: lr"):
        _sft_run({"runs": [seed_run.id]}, lr=1e-3)
    with pytest.raises(ValueError, match="warmup_ratio"):
        _sft_run({"runs": [seed_run.id]}, warmup_ratio=1.5)
    with pytest.raises(ValueError, match="student sampling"):
        actions.launch_training("dpo", "m", {"student_run": seed_run.id}, queue=False)
    assert not TrainingRun.objects.exists()


def test_it_cancels_a_queued_run_at_once_and_a_running_one_cooperatively(seed_run, settings, tmp_path):
    settings.MODELS_DIR = tmp_path / "models"
    queued = _sft_run({"runs": [seed_run.id]})
    assert actions.request_cancel(queued)
    queued.refresh_from_db()
    assert queued.status == "cancelled" and queued.finished_at
    running = _sft_run({"runs": [seed_run.id]})
    TrainingRun.objects.filter(id=running.id).update(status="running")
    assert actions.request_cancel(running)
    running.refresh_from_db()
    assert running.status == "running" and running.cancel_requested
    assert not actions.request_cancel(queued)  # finished: nothing to do


# --- the registry and student sampling -----------------------------------------------------


@pytest.fixture
def version(seed_run, settings, tmp_path):
    settings.MODELS_DIR = tmp_path / "models"
    run = _sft_run({"runs": [seed_run.id]})
    TrainingRun.objects.filter(id=run.id).update(template=seed_run.template)
    run.refresh_from_db()

    class Result:
        final_path, best_metric, train_loss, global_step, tokens_per_second, max_length = (
            str(tmp_path / "final"),
            float("nan"),
            1.0,
            6,
            100.0,
            512,
        )

    return actions.register_trained_model(run, Result())


def test_it_registers_a_trained_model_once(version):
    assert (
        version.kind == "sft"
        and version.path.endswith("final")
        and version.name == f"sft-run{version.training_run_id}"
    )
    assert version.metrics["best_eval_loss"] is None  # NaN is not JSON
    assert actions.register_trained_model(version.training_run, None) == version
    assert version.template == version.training_run.template


def test_it_registers_endpoints_in_one_click_idempotently(version):
    student = actions.register_endpoint(version, "student")
    scorer = actions.register_endpoint(version, "scorer")
    assert (student.role, student.backend, student.path_or_url) == ("student", "transformers", version.path)
    assert scorer.role == "scorer" and scorer != student
    assert actions.register_endpoint(version, "student") == student
    assert ModelEndpoint.objects.filter(path_or_url=version.path).count() == 2
    version.refresh_from_db()
    assert version.student_endpoint == student and version.scorer_endpoint == scorer


def test_it_samples_student_critiques_with_the_trained_template(version, demo_dataset):
    run = actions.sample_student(version, demo_dataset, 4, queue=False, temperature=1.0)
    assert run.kind == GenerationRun.Kind.STUDENT_SAMPLE and run.n_samples == 4 and run.temperature == 1.0
    assert run.endpoint == ModelVersion.objects.get(id=version.id).student_endpoint
    assert run.template == version.template
    labelled = Step.objects.filter(solution__dataset=demo_dataset, label__in=["correct", "incorrect"]).count()
    assert run.steps_total == labelled  # only labelled steps, up to each first error


def test_it_registers_a_base_model_as_a_lineage_root(db):
    base = actions.register_base_model("Qwen/Qwen2.5-Math-7B-Instruct")
    assert base.kind == "base" and base.training_run is None and base.lineage() == [base]
    assert actions.register_base_model("Qwen/Qwen2.5-Math-7B-Instruct") == base


def test_the_sft_pool_keeps_one_agreeing_critique_per_step_the_last_sample(demo_dataset):
    """The authors' operate-PRM-CoT-data.py keeps target_list[-1]: the last agreeing sample."""
    from training.pools import build_sft_pool, eligible_critiques

    correct = list(Step.objects.filter(solution__dataset=demo_dataset, label="correct").order_by("id"))
    incorrect = list(Step.objects.filter(solution__dataset=demo_dataset, label="incorrect").order_by("id"))
    run = student_run_with(
        demo_dataset,
        {correct[0]: ["Yes", "No", "Yes", "No"], correct[1]: ["No", "No"], incorrect[0]: ["No", "No", "Yes"]},
    )
    critiques = eligible_critiques(runs=GenerationRun.objects.filter(id=run.id))
    one = build_sft_pool(critiques, val_fraction=0, balance=False)
    kept = Critique.objects.filter(id__in=one.train_ids)
    assert sorted((c.step_id, c.sample_index) for c in kept) == sorted(
        [(correct[0].id, 2), (incorrect[0].id, 1)]
    )
    assert (one.stats["agreeing"], one.stats["eligible"], one.stats["per_step"]) == (4, 2, "one")
    every = build_sft_pool(critiques, val_fraction=0, balance=False, per_step="all")
    assert len(every.train_ids) == 4
    with pytest.raises(ValueError, match="per_step"):
        build_sft_pool(critiques, per_step="some")
