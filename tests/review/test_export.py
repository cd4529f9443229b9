"""Exports: TRL-shaped SFT and DPO snapshots, filtered by review, with a manifest."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from annotations.models import ErrorType
from inference.models import Critique
from review.models import ReviewItem
from training.export import create_export_job, run_export_job

from .conftest import decide, split_teacher


@pytest.fixture
def run(make_run, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.REVIEW_DOUBLE_FRACTION = 0.0
    return make_run(split_teacher, n_samples=4)


def export(user, **filters):
    job = run_export_job(create_export_job(user, filters, queue=False).id)
    assert job.status == "succeeded", job.error
    return job


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_it_writes_trl_rows_that_load_with_datasets(run, admin):
    from datasets import load_dataset
    from trl.data_utils import is_conversational

    job = export(admin, runs=[run.id], val_fraction=0.3)
    folder = job.folder()
    assert set(job.files) == {
        "sft_train.jsonl",
        "sft_train.parquet",
        "sft_val.jsonl",
        "sft_val.parquet",
        "dpo.jsonl",
        "dpo.parquet",
        "manifest.json",
    }
    for fmt, name in (("json", "sft_train.jsonl"), ("parquet", "sft_train.parquet")):
        ds = load_dataset(fmt, data_files=str(folder / name), split="train")
        assert {"prompt", "completion"} <= set(ds.column_names)
        row = ds[0]
        assert is_conversational(row)
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]
        assert row["completion"][0]["role"] == "assistant"
        assert row["completion"][0]["content"].endswith(
            "Verification: Is the step correct (Yes/No)? " + ("Yes" if row["verdict"] == "yes" else "No")
        )
    train = read_jsonl(folder / "sft_train.jsonl")
    # Balanced yes/no 1:1, validation held out by problem.
    assert sum(r["verdict"] == "yes" for r in train) == sum(r["verdict"] == "no" for r in train) > 0
    # The prompt is the run's template rendered for the step.
    c = Critique.objects.select_related("step__solution__problem", "run__template").get(
        uuid=train[0]["critique_uuid"]
    )
    previous = list(c.step.solution.steps.filter(index__lt=c.step.index).values_list("text", flat=True))
    assert train[0]["prompt"] == c.run.template.to_core().render_messages(
        c.step.solution.problem.question, previous, c.step.text
    )

    dpo = load_dataset("json", data_files=str(folder / "dpo.jsonl"), split="train")
    assert {"prompt", "chosen", "rejected"} <= set(dpo.column_names) and is_conversational(dpo[0])
    parquet = load_dataset("parquet", data_files=str(folder / "dpo.parquet"), split="train")
    assert parquet.num_rows == dpo.num_rows > 0
    for row in read_jsonl(folder / "dpo.jsonl"):
        chosen = Critique.objects.get(uuid=row["chosen_critique_uuid"])
        rejected = Critique.objects.get(uuid=row["rejected_critique_uuid"])
        assert chosen.step_id == rejected.step_id == row["step_id"]
        assert chosen.matches_label and rejected.matches_label is False
    per_step = {}
    for row in read_jsonl(folder / "dpo.jsonl"):
        per_step[row["step_id"]] = per_step.get(row["step_id"], 0) + 1
    assert max(per_step.values()) == 2  # capped at 2 pairs per step


def test_the_manifest_records_counts_filters_templates_and_runs(run, admin):
    job = export(admin, runs=[run.id], kinds=["sft"], val_fraction=0.0)
    manifest = json.loads((job.folder() / "manifest.json").read_text())
    assert manifest == job.manifest
    assert manifest["created_by"] == "admin" and manifest["filters"]["runs"] == [run.id]
    assert manifest["templates"] == [
        {
            "id": run.template.id,
            "name": run.template.name,
            "version": run.template.version,
            "content_hash": run.template.content_hash,
        }
    ]
    assert [r["id"] for r in manifest["source_runs"]] == [run.id]
    assert manifest["counts"]["accepted"] == manifest["counts"]["sft_eligible_in_scope"] == 52
    # One agreeing critique per step (the authors' rule): 52 agreeing critiques over 26 steps;
    # balanced 1:1: 6 agreeing No critiques (incorrect steps) against 6 of the 20 agreeing Yes ones.
    assert manifest["sft_pool"]["agreeing"] == 52 and manifest["sft_pool"]["eligible"] == 26
    assert manifest["counts"]["sft_train"] == manifest["files"]["sft_train.jsonl"]["rows"] == 12
    assert manifest["sft_pool"]["train"] == {"yes": 6, "no": 6, "total": 12, "dropped_for_balance": 14}
    assert "sft_val.jsonl" not in job.files


def test_review_decisions_filter_the_snapshot(run, admin, reviewer):
    items = {i.critique_id: i for i in ReviewItem.objects.filter(run=run, queue="matched")}
    flawed_item, sound_item, label_item = [items[k] for k in sorted(items)[:3]]
    calc = ErrorType.objects.get(slug="calculation")
    decide(flawed_item, reviewer, "flawed")
    decide(sound_item, reviewer, "sound", error_types=[calc])
    decide(label_item, reviewer, "label_wrong")
    job = export(admin, runs=[run.id], balance=False, val_fraction=0.0)
    sft = {r["critique_uuid"] for r in read_jsonl(job.folder() / "sft_train.jsonl")}
    uuid = dict(Critique.objects.values_list("id", "uuid"))
    assert str(uuid[flawed_item.critique_id]) not in sft
    assert str(uuid[sound_item.critique_id]) in sft
    disputed_step = Critique.objects.filter(step_id=label_item.step_id, run=run)
    assert not {str(c.uuid) for c in disputed_step} & sft  # held out until adjudicated
    dpo = read_jsonl(job.folder() / "dpo.jsonl")
    assert all(r["step_id"] != label_item.step_id for r in dpo)
    assert all(r["chosen_critique_uuid"] != str(uuid[flawed_item.critique_id]) for r in dpo)
    assert (
        job.manifest["counts"]["excluded_by_review"] == 1 + disputed_step.filter(matches_label=True).count()
    )
    # Only reviewed-sound, and by error type (the reviewer's tag).
    only_sound = export(
        admin, runs=[run.id], kinds=["sft"], require_review=True, balance=False, val_fraction=0.0
    )
    rows = read_jsonl(only_sound.folder() / "sft_train.jsonl")
    assert [r["critique_uuid"] for r in rows] == [str(uuid[sound_item.critique_id])]
    tagged = export(
        admin, runs=[run.id], kinds=["sft"], error_types=["calculation"], balance=False, val_fraction=0.0
    )
    assert tagged.manifest["counts"]["sft_train"] == 1


def test_the_command_exports(run, admin, capsys):
    call_command("export_training_data", "--run", str(run.id), "--kind", "sft", "--user", "admin")
    out = capsys.readouterr().out
    assert "sft_train: " in out and "accepted: 52" in out


@pytest.mark.slow
def test_sft_and_dpo_trainers_accept_the_files(run, admin, tiny_model_dir, tmp_path):
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    job = export(admin, runs=[run.id], val_fraction=0.0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    common = {
        "max_steps": 1,
        "per_device_train_batch_size": 2,
        "report_to": [],
        "save_strategy": "no",
        "use_cpu": True,
        "logging_steps": 1,
    }
    sft = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        args=SFTConfig(output_dir=str(tmp_path / "sft"), max_length=None, **common),
        train_dataset=load_dataset("json", data_files=str(job.folder() / "sft_train.jsonl"), split="train"),
        processing_class=tokenizer,
    )
    assert sft.train().global_step == 1
    dpo = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        args=DPOConfig(output_dir=str(tmp_path / "dpo"), max_length=None, **common),
        train_dataset=load_dataset("parquet", data_files=str(job.folder() / "dpo.parquet"), split="train"),
        processing_class=tokenizer,
    )
    assert dpo.train().global_step == 1
