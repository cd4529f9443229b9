"""Training pages: access for every view, launch with the counts before it, the live
panel that stops polling, cancel, and the registry's one-click actions."""

from __future__ import annotations

import pytest
from django.urls import reverse

from inference.models import GenerationRun
from tests.conftest import PASSWORD
from training import actions
from training.data import preview_sft
from training.models import ModelVersion, PreferencePair, TrainingMetric, TrainingRun

from .conftest import TRAIN_FAST, student_run_with


@pytest.fixture(autouse=True)
def _models_dir(settings, tmp_path):
    settings.MODELS_DIR = tmp_path / "models"


@pytest.fixture
def no_queue(monkeypatch):
    from training import tasks

    queued = []
    monkeypatch.setattr(
        tasks.run_training, "delay", lambda run_id: queued.append(run_id)
    )  # runs.enqueue sends
    return queued


@pytest.fixture
def run(seed_run):
    return actions.launch_training("sft", "some/base", {"runs": [seed_run.id]}, TRAIN_FAST, queue=False)


@pytest.fixture
def version(run, settings):
    class Result:
        final_path, best_metric, train_loss, global_step, tokens_per_second, max_length = (
            f"{settings.MODELS_DIR}/m/final",  # under MODELS_DIR: "use as scorer" checks the path
            1.2,
            1.0,
            6,
            50.0,
            256,
        )

    TrainingRun.objects.filter(id=run.id).update(status="succeeded")
    return actions.register_trained_model(run, Result())


def login(client, user):
    client.login(username=user.username, password=PASSWORD)
    return client


def _pages(run, version):
    return [
        ("get", reverse("training:run_list")),
        ("get", reverse("training:run_detail", args=[run.uuid])),
        ("get", reverse("training:model_list")),
        ("get", reverse("training:model_detail", args=[version.uuid])),
    ]


def _admin_only(run, version):
    return [
        ("get", reverse("training:run_new", args=["sft"])),
        ("get", reverse("training:run_new", args=["dpo"])),
        ("get", reverse("training:run_preview", args=["sft"])),
        ("post", reverse("training:run_new", args=["sft"])),
        ("post", reverse("training:run_cancel", args=[run.uuid])),
        ("post", reverse("training:model_register_base")),
        ("post", reverse("training:model_register", args=[version.uuid])),
        ("post", reverse("training:model_sample", args=[version.uuid])),
        ("post", reverse("training:model_pairs", args=[version.uuid])),
    ]


def test_it_redirects_anonymous_users_to_log_in(client, run, version):
    for method, url in _pages(run, version) + _admin_only(run, version):
        response = getattr(client, method)(url)
        assert response.status_code == 302 and response.url.startswith(reverse("login")), url


def test_it_shows_nothing_to_outsiders(client, outsider, run, version):
    login(client, outsider)
    for method, url in _pages(run, version) + _admin_only(run, version):
        assert getattr(client, method)(url).status_code == 403, url


def test_reviewers_may_look_but_not_launch_or_act(client, reviewer, run, version):
    login(client, reviewer)
    for method, url in _pages(run, version):
        assert getattr(client, method)(url).status_code == 200, url
    for method, url in _admin_only(run, version):
        assert getattr(client, method)(url).status_code == 403, url
    page = client.get(reverse("training:run_list")).content.decode()
    assert "New SFT run" not in page
    detail = client.get(reverse("training:model_detail", args=[version.uuid])).content.decode()
    assert "use-as-student" not in detail and "sample-form" not in detail
    assert (
        TrainingRun.objects.count() == 1
        and not ModelVersion.objects.filter(student_endpoint__isnull=False).exists()
    )


def test_it_lists_runs_and_models_in_a_bounded_number_of_queries(
    client, admin, seed_run, version, django_assert_max_num_queries
):
    for _ in range(5):
        actions.launch_training("sft", version, {"runs": [seed_run.id]}, queue=False)
    login(client, admin)
    with django_assert_max_num_queries(8):
        assert client.get(reverse("training:run_list")).status_code == 200
    with django_assert_max_num_queries(8):
        assert client.get(reverse("training:model_list")).status_code == 200


def test_the_launch_form_shows_the_defaults_and_the_data_counts(client, admin, seed_run):
    login(client, admin)
    page = client.get(reverse("training:run_new", args=["sft"])).content.decode()
    for needle in (
        'name="learning_rate"',
        'value="5e-06"',
        'name="effective_batch_size" value="128"',
        'name="warmup_ratio" value="0.03"',
        'name="num_epochs" value="1.0"',
        'name="lora"',
        'name="gradient_checkpointing"',
        'name="max_steps"',
        'id="preview-counts"',
    ):
        assert needle in page, needle
    dpo = client.get(reverse("training:run_new", args=["dpo"])).content.decode()
    assert (
        'value="5e-07"' in dpo and 'name="beta" value="0.1"' in dpo and "Pick a student sampling run" in dpo
    )
    # The htmx preview: counts for the selection as it stands.
    preview = client.get(
        reverse("training:run_preview", args=["sft"]),
        {"runs": [seed_run.id], "val_fraction": "0", "data_seed": "0", "balance": "on"},
        headers={"HX-Request": "true"},
    )
    counts = preview_sft({"runs": [seed_run.id], "val_fraction": 0})
    html = preview.content.decode()
    assert preview.status_code == 200 and "<html" not in html and 'id="data-preview"' in html
    assert f"<b>{counts['train']['total']}</b>" in html and counts["train"]["total"] > 0
    bad = client.get(reverse("training:run_preview", args=["sft"]), {"val_fraction": "2"})
    assert "Fix the data fields" in bad.content.decode()


def _form(seed_run, **extra):
    data = {
        "base_path": "some/base",
        "runs": [seed_run.id],
        "val_fraction": "0.05",
        "data_seed": "0",
        "balance": "on",
        "learning_rate": "0.001",
        "effective_batch_size": "4",
        "num_epochs": "1",
        "warmup_ratio": "0",
        "max_steps": "6",
        "logging_steps": "1",
        "lora_r": "16",
        "bf16": "off",
        "train_seed": "0",
    }
    data.update(extra)
    return data


def test_an_admin_launches_an_sft_run(client, admin, seed_run, no_queue, django_capture_on_commit_callbacks):
    login(client, admin)
    # Without JavaScript, "Update counts" re-renders the form with the counts and launches nothing.
    preview = client.post(reverse("training:run_new", args=["sft"]), {**_form(seed_run), "preview": "1"})
    assert preview.status_code == 200 and 'id="preview-counts"' in preview.content.decode()
    assert not TrainingRun.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("training:run_new", args=["sft"]), _form(seed_run, name="my-sft"))
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response.url == reverse("training:run_detail", args=[run.uuid])
    assert no_queue == [run.id] and run.name == "my-sft" and run.created_by == admin
    assert run.hyperparameters["learning_rate"] == 0.001 and run.hyperparameters["max_steps"] == 6
    assert run.hyperparameters["bf16"] is False and run.hyperparameters["gradient_checkpointing"] is False
    assert run.data_selection["runs"] == [seed_run.id] and run.data_selection["balance"] is True


def test_the_launch_form_reports_errors(client, admin, seed_run, no_queue):
    login(client, admin)
    response = client.post(
        reverse("training:run_new", args=["sft"]), _form(seed_run, base_path="", learning_rate="0")
    )
    html = response.content.decode()
    assert response.status_code == 200 and "Pick a registered model" in html and "must be positive" in html
    response = client.post(
        reverse("training:run_new", args=["sft"]), _form(seed_run, per_device_batch_size="3")
    )
    assert "not a multiple" in response.content.decode()  # TrainConfig's own check, shown on the form
    assert not TrainingRun.objects.exists() and no_queue == []
    assert client.get(reverse("training:run_new", args=["rm"])).status_code == 404


def test_the_live_panel_polls_until_the_run_ends(client, reviewer, run):
    login(client, reviewer)
    TrainingRun.objects.filter(id=run.id).update(status="running", step=2, max_steps=6)
    TrainingMetric.objects.create(run=run, step=1, loss=2.0)
    TrainingMetric.objects.create(run=run, step=2, loss=1.5, eval_loss=1.7)
    url = reverse("training:run_detail", args=[run.uuid])
    live = client.get(url, headers={"HX-Request": "true", "HX-Target": "run-live"})
    html = live.content.decode()
    assert live.status_code == 200 and "<html" not in html and 'hx-trigger="every 2s"' in html
    assert 'id="training-metrics"' in html and '"eval_loss": [{"x": 2, "y": 1.7}]' in html
    TrainingRun.objects.filter(id=run.id).update(
        status="failed", error="Traceback (most recent call last):\nBoom"
    )
    done = client.get(url, headers={"HX-Request": "true", "HX-Target": "run-live"})
    assert done.status_code == 286 and "Boom" in done.content.decode()
    assert 'hx-trigger="every 2s"' not in done.content.decode()
    page = client.get(url).content.decode()  # the whole page, with the table view of the metrics
    assert 'id="training-chart"' in page and 'id="metrics-table"' in page and "1.7000" in page


def test_an_admin_cancels_a_run(client, admin, run):
    login(client, admin)
    TrainingRun.objects.filter(id=run.id).update(status="running")
    response = client.post(reverse("training:run_cancel", args=[run.uuid]))
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.cancel_requested and run.status == "running"
    assert client.get(reverse("training:run_cancel", args=[run.uuid])).status_code == 405


def test_the_model_page_registers_endpoints_samples_and_builds_pairs(
    client, admin, version, demo_dataset, monkeypatch, django_capture_on_commit_callbacks
):
    from inference import tasks as inference_tasks

    sent = []
    monkeypatch.setattr(inference_tasks.process_generation_run, "delay", lambda i: sent.append(i))
    login(client, admin)
    url = reverse("training:model_detail", args=[version.uuid])
    page = client.get(url).content.decode()
    assert "Use as student" in page and "Use as scorer" in page
    client.post(reverse("training:model_register", args=[version.uuid]), {"role": "scorer"})
    version.refresh_from_db()
    assert version.scorer_endpoint.role == "scorer" and version.student_endpoint is None

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("training:model_sample", args=[version.uuid]),
            {
                "dataset": demo_dataset.id,
                "n_samples": "4",
                "temperature": "1.0",
                "top_p": "0.95",
                "max_new_tokens": "64",
            },
        )
    student = GenerationRun.objects.get(kind="student_sample")
    assert response.status_code == 302 and response.url == reverse(
        "inference:run_detail", args=[student.uuid]
    )
    assert sent == [student.id] and student.n_samples == 4
    version.refresh_from_db()
    assert student.endpoint == version.student_endpoint

    # The sampling run finishes (critiques written by hand here); pairs from it in one click.
    from annotations.models import Step

    steps = Step.objects.filter(solution__dataset=demo_dataset, label="correct").order_by("id")[:2]
    done = student_run_with(
        demo_dataset, {s: ["Yes", "No", "No"] for s in steps}, endpoint=version.student_endpoint
    )
    assert "3. Train DPO from these pairs" in client.get(url).content.decode()
    response = client.post(
        reverse("training:model_pairs", args=[version.uuid]),
        {"student_run": done.id, "max_pairs_per_step": "2"},
        follow=True,
    )
    assert PreferencePair.objects.filter(run=done).count() == 4
    assert "4 preference pairs over 2 steps" in response.content.decode()
    dpo = client.get(
        reverse("training:run_new", args=["dpo"]), {"base_version": version.id, "student_run": done.id}
    )
    html = dpo.content.decode()
    # The DPO launch applies the authors' defaults: 1 agreeing of 3 valid critiques per step is
    # dropped by the 1/3 filter, so these hand-written critiques give no pair there.
    assert 'id="preview-pairs">0<' in html and f'<option value="{done.id}" selected>' in html


def test_an_admin_registers_a_base_model(client, admin):
    login(client, admin)
    response = client.post(reverse("training:model_register_base"), {"path": "Qwen/Qwen2.5-Math-7B-Instruct"})
    base = ModelVersion.objects.get()
    assert (
        response.status_code == 302 and base.kind == "base" and base.path == "Qwen/Qwen2.5-Math-7B-Instruct"
    )
    assert client.post(reverse("training:model_register_base"), {"path": ""}).status_code == 400


def test_the_run_page_links_its_tensorboard_logs(client, reviewer, outsider, run):
    import io
    import tarfile
    from pathlib import Path

    from torch.utils.tensorboard import SummaryWriter

    assert run.hyperparameters.get("report_to", "tensorboard") == "tensorboard"
    url = reverse("training:run_detail", args=[run.uuid])
    logs = reverse("training:run_tensorboard", args=[run.uuid])
    login(client, reviewer)
    assert logs not in client.get(url).content.decode()  # nothing written yet: no link
    assert client.get(logs).status_code == 404
    writer = SummaryWriter(log_dir=str(Path(run.output_dir) / "runs" / "Dec04_host"))
    writer.add_scalar("train/loss", 1.5, 1)
    writer.close()
    page = client.get(url).content.decode()
    assert f'href="{logs}"' in page and f"tensorboard --logdir {Path(run.output_dir) / 'runs'}" in page
    response = client.get(logs)
    assert response.status_code == 200 and response["Content-Disposition"].startswith("attachment")
    with tarfile.open(fileobj=io.BytesIO(b"".join(response.streaming_content)), mode="r:gz") as tar:
        names = tar.getnames()
    assert any(n.startswith(f"{run.uuid}/runs/Dec04_host/events.out.tfevents.") for n in names)
    client.logout()
    login(client, outsider)
    assert client.get(logs).status_code in (403, 404)


def test_the_launch_form_sets_report_to(seed_run):
    from training.forms import SFTLaunchForm

    form = SFTLaunchForm()
    assert form["report_to"].initial == "tensorboard"
    assert any("report_to" in [f.name for f in fields] for _, fields in form.groups())


def test_the_export_pages_keep_review_marked_in_the_nav(client, admin):
    # Served by training (training:export_*) but found under Review: the nav marks Review there.
    login(client, admin)
    exports = client.get(reverse("training:export_list")).content.decode()
    assert 'aria-current="page">Review</a>' in exports and 'aria-current="page">Training</a>' not in exports
    runs_page = client.get(reverse("training:run_list")).content.decode()
    assert (
        'aria-current="page">Training</a>' in runs_page and 'aria-current="page">Review</a>' not in runs_page
    )
