"""Lineage both ways and the comparison of two model versions.

The data comes through the project's own importer, teacher run, audit, review actions and
export snapshots; the model versions point at those snapshots as a training run records
them (training itself is covered in tests/training_web)."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from evaluation.models import EvaluationRun
from inference.actions import endpoint_for
from lineage.compare import data_diff, result_pairs
from lineage.graph import downstream_of_dataset, downstream_of_run, version_lineage
from review.audit import audit_run
from review.models import ReviewItem
from review.queue import take_item
from review.reviews import submit_review
from training.export import create_export_job, run_export_job
from training.models import ExportJob, ModelVersion, TrainingRun

FILTERS = {"kinds": ["sft"], "balance": False, "val_fraction": 0}


def _snapshot(user, run) -> ExportJob:
    job = create_export_job(user, {**FILTERS, "runs": [run.id]}, queue=False)
    run_export_job(job.id)
    job.refresh_from_db()
    assert job.status == ExportJob.Status.SUCCEEDED, job.error
    return job


def _version(name: str, snapshot: ExportJob, tmp_path) -> ModelVersion:
    rows = {k: v for k, v in snapshot.manifest["counts"].items() if k in ("sft_train", "sft_val", "dpo")}
    run = TrainingRun.objects.create(
        kind="sft", base_model="tiny", output_dir=str(tmp_path / name), status="succeeded",
        snapshot=snapshot, snapshot_sha256=snapshot.content_sha256, snapshot_rows=rows,
    )  # fmt: skip
    return ModelVersion.objects.create(
        name=name, kind="sft", path=str(tmp_path / name), base_model="tiny", training_run=run,
        snapshot=snapshot, snapshot_sha256=snapshot.content_sha256, snapshot_rows=rows,
    )  # fmt: skip


def _evaluate(version: ModelVersion, dataset, value: float | None) -> EvaluationRun:
    endpoint = endpoint_for(f"{version.name}-scorer", backend="transformers", role="scorer")
    endpoint.path_or_url = version.path
    endpoint.save(update_fields=["path_or_url"])
    run = EvaluationRun.objects.create(
        name=version.name, benchmark="processbench", source="model", endpoint=endpoint, status="succeeded",
        results={"headline": {"metric": "avg_f1", "label": "avg F1", "value": value,
                              "undefined": "" if value is not None else "no correct solutions in this subset"}},
    )  # fmt: skip
    run.datasets.add(dataset)
    return run


@pytest.fixture
def reviewed_pair(admin, reviewer, seed_run, tmp_path, settings):
    """v1 trained before review, v2 after a reviewer found one accepted critique flawed."""
    settings.REVIEW_DOUBLE_FRACTION = 0.0  # one review settles an item
    audit_run(seed_run.id)
    before = _snapshot(admin, seed_run)
    v1 = _version("tiny-v1", before, tmp_path)
    first_row_uuid = _first_sft_uuid(before)
    item = take_item(ReviewItem.objects.get(critique__uuid=first_row_uuid).critique_id, reviewer)
    submit_review(item, reviewer, "flawed")
    after = _snapshot(admin, seed_run)
    v2 = _version("tiny-v2", after, tmp_path)
    return seed_run, v1, v2


def _first_sft_uuid(job: ExportJob) -> str:
    with open(job.folder() / "sft_train.jsonl", encoding="utf-8") as fh:
        return json.loads(fh.readline())["critique_uuid"]


def test_it_shows_the_whole_chain_of_a_model_version(client, admin, reviewed_pair):
    run, v1, v2 = reviewed_pair
    _evaluate(v2, run.dataset, None)
    lin = version_lineage(v2)
    assert [s.run.id for s in lin.source_runs] == [run.id]
    assert lin.datasets == [run.dataset]
    assert lin.source_runs[0].outcome.flawed == 1
    assert lin.snapshot == v2.snapshot and lin.snapshot_sha256 == v2.snapshot.content_sha256
    assert [e.value for e in lin.evaluations] == [None]

    client.force_login(admin)
    page = client.get(reverse("lineage:model", args=[v2.uuid])).content.decode()
    for needle in (run.dataset.name, f"#{run.id}", v2.snapshot.content_sha256, "avg F1 undefined", "tiny-v2"):
        assert needle in page


def test_it_compares_two_versions_row_by_row(client, admin, reviewed_pair):
    run, v1, v2 = reviewed_pair
    _evaluate(v1, run.dataset, 40.0)
    _evaluate(v2, run.dataset, 45.5)
    diff = data_diff(v1, v2)
    assert diff.rows_a == diff.rows_b + 1
    assert (diff.removed, diff.removed_flawed, diff.added, diff.removed_other) == (1, 1, 0, 0)
    [pair] = result_pairs(v1, v2)
    assert (pair.a.value, pair.b.value, pair.delta) == (40.0, 45.5, 5.5)

    client.force_login(admin)
    page = client.get(reverse("lineage:compare"), {"a": v1.uuid, "b": v2.name}).content.decode()
    assert 'id="rows-flawed">1<' in page and "+5.5" in page


def test_it_lists_what_stands_downstream_of_a_dataset_and_a_run(client, reviewer, reviewed_pair):
    run, v1, v2 = reviewed_pair
    evaluation = _evaluate(v2, run.dataset, 50.0)
    for down in (downstream_of_dataset(run.dataset), downstream_of_run(run)):
        assert {v.name for v in down.versions} == {"tiny-v1", "tiny-v2"}
        assert evaluation.id in {e.run.id for e in down.evaluations}

    client.force_login(reviewer)
    panel = client.get(reverse("lineage:run", args=[run.uuid]), headers={"HX-Request": "true"})
    assert panel.status_code == 200 and "tiny-v2" in panel.content.decode()
    assert "<html" not in panel.content.decode()  # the partial, for the run page's panel
    snapshot = client.get(reverse("lineage:snapshot", args=[v2.snapshot.uuid])).content.decode()
    assert "tiny-v2" in snapshot and "tiny-v1" not in snapshot


def test_it_prints_the_lineage_from_the_command_line(reviewed_pair, capsys):
    run, v1, v2 = reviewed_pair
    call_command("lineage", "tiny-v2")
    out = capsys.readouterr().out
    assert "tiny-v2" in out and f"run #{run.id}" in out and v2.snapshot.content_sha256[:12] in out
    assert "1 flawed" in out


@pytest.mark.parametrize("name", ["lineage:compare"])
def test_it_refuses_outsiders(client, outsider, name):
    client.force_login(outsider)
    assert client.get(reverse(name)).status_code == 403


def test_it_refuses_outsiders_on_every_lineage_page(client, outsider, reviewed_pair):
    run, v1, v2 = reviewed_pair
    client.force_login(outsider)
    for url in (
        reverse("lineage:model", args=[v2.uuid]),
        reverse("lineage:dataset", args=[run.dataset.uuid]),
        reverse("lineage:run", args=[run.uuid]),
        reverse("lineage:snapshot", args=[v2.snapshot.uuid]),
    ):
        assert client.get(url).status_code == 403, url
