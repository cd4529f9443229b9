"""State-only move: the tables keep their names (`annotations_*`), so no row is touched.

Django's state learns that the models now live in another app; the database is
left as it is, and an existing deployment upgrades with `migrate` alone."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


MODELS = ["critiqueaudit", "review", "reviewitem", "labelcorrection", "adjudication", "reviewevent"]


def _move(apps, source, target):
    """Permissions and admin log entries follow their model to its app."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    taken = set(ContentType.objects.filter(app_label=target).values_list("model", flat=True))
    ContentType.objects.filter(app_label=source, model__in=[m for m in MODELS if m not in taken]).update(
        app_label=target
    )


def move_content_types(apps, schema_editor):
    _move(apps, "annotations", "review")


def move_content_types_back(apps, schema_editor):
    _move(apps, "review", "annotations")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("annotations", "0005_models_moved_to_review_training_dashboards"),
        ("inference", "0008_models_moved_to_evaluation"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ReviewItem",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "queue",
                            models.CharField(
                                choices=[
                                    ("matched", "matched the label"),
                                    ("disagreed", "disagreed with the label"),
                                    ("other", "no label or unparseable"),
                                ],
                                max_length=10,
                            ),
                        ),
                        ("flagged", models.BooleanField(default=False)),
                        ("suspicion", models.FloatField(default=0)),
                        (
                            "state",
                            models.CharField(
                                choices=[
                                    ("open", "needs review"),
                                    ("done", "reviewed"),
                                    ("adjudication", "awaiting adjudication"),
                                    ("adjudicated", "adjudicated"),
                                ],
                                default="open",
                                max_length=12,
                            ),
                        ),
                        ("needs_double_review", models.BooleanField(default=False)),
                        ("reviews_needed", models.PositiveSmallIntegerField(default=1)),
                        ("reviews_done", models.PositiveSmallIntegerField(default=0)),
                        (
                            "final_decision",
                            models.CharField(
                                blank=True,
                                choices=[
                                    ("sound", "sound"),
                                    ("flawed", "flawed (plausible but wrong)"),
                                    ("label_wrong", "label wrong"),
                                    ("skip", "skip"),
                                ],
                                max_length=11,
                            ),
                        ),
                        ("lease_expires_at", models.DateTimeField(blank=True, null=True)),
                        ("leased_at", models.DateTimeField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "critique",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="review_item",
                                to="inference.critique",
                            ),
                        ),
                        (
                            "dataset",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="annotations.dataset",
                            ),
                        ),
                        (
                            "error_type",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="annotations.errortype",
                            ),
                        ),
                        (
                            "lease_holder",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "run",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="inference.generationrun",
                            ),
                        ),
                        (
                            "step",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="annotations.step",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "annotations_reviewitem",
                        "ordering": ["-suspicion", "id"],
                    },
                ),
                migrations.CreateModel(
                    name="ReviewEvent",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "kind",
                            models.CharField(
                                choices=[
                                    ("claimed", "Claimed"),
                                    ("released", "Released"),
                                    ("reviewed", "Reviewed"),
                                    ("undone", "Undone"),
                                    ("label_proposed", "label correction proposed"),
                                    ("label_decided", "label correction decided"),
                                    ("adjudicated", "Adjudicated"),
                                    ("audited", "Audited"),
                                    ("export_requested", "export requested"),
                                ],
                                max_length=20,
                            ),
                        ),
                        ("payload", models.JSONField(blank=True, default=dict)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "actor",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "item",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="events",
                                to="review.reviewitem",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "annotations_reviewevent",
                        "ordering": ["created_at", "id"],
                    },
                ),
                migrations.CreateModel(
                    name="Review",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "decision",
                            models.CharField(
                                choices=[
                                    ("sound", "sound"),
                                    ("flawed", "flawed (plausible but wrong)"),
                                    ("label_wrong", "label wrong"),
                                    ("skip", "skip"),
                                ],
                                max_length=11,
                            ),
                        ),
                        ("note", models.TextField(blank=True)),
                        ("time_on_task_ms", models.PositiveIntegerField(default=0)),
                        (
                            "time_source",
                            models.CharField(
                                choices=[("client", "browser timer"), ("lease", "since the lease began")],
                                default="lease",
                                max_length=6,
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("undone_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "critique",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="reviews",
                                to="inference.critique",
                            ),
                        ),
                        (
                            "error_types",
                            models.ManyToManyField(
                                blank=True, related_name="reviews", to="annotations.errortype"
                            ),
                        ),
                        (
                            "reviewer",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="reviews",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "item",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="reviews",
                                to="review.reviewitem",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "annotations_review",
                        "ordering": ["created_at", "id"],
                    },
                ),
                migrations.CreateModel(
                    name="Adjudication",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "decision",
                            models.CharField(
                                choices=[
                                    ("sound", "sound"),
                                    ("flawed", "flawed (plausible but wrong)"),
                                    ("label_wrong", "label wrong"),
                                    ("skip", "skip"),
                                ],
                                max_length=11,
                            ),
                        ),
                        ("note", models.TextField(blank=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "decided_by",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "error_types",
                            models.ManyToManyField(blank=True, related_name="+", to="annotations.errortype"),
                        ),
                        (
                            "item",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="adjudication",
                                to="review.reviewitem",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "annotations_adjudication",
                    },
                ),
                migrations.CreateModel(
                    name="CritiqueAudit",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("signals", models.JSONField(blank=True, default=list)),
                        ("suspicion", models.FloatField(default=0)),
                        ("version", models.PositiveSmallIntegerField(default=1)),
                        ("computed_at", models.DateTimeField()),
                        (
                            "critique",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="audit",
                                to="inference.critique",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "annotations_critiqueaudit",
                        "indexes": [
                            models.Index(fields=["-suspicion", "id"], name="critiqueaudit_suspicion_idx")
                        ],
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(("suspicion__gte", 0), ("suspicion__lte", 1)),
                                name="critiqueaudit_suspicion_range",
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="LabelCorrection",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "original_label",
                            models.CharField(
                                choices=[
                                    ("correct", "Correct"),
                                    ("incorrect", "Incorrect"),
                                    ("neutral", "Neutral"),
                                    ("unlabelled", "Unlabelled"),
                                ],
                                max_length=10,
                            ),
                        ),
                        (
                            "proposed_label",
                            models.CharField(
                                choices=[
                                    ("correct", "Correct"),
                                    ("incorrect", "Incorrect"),
                                    ("neutral", "Neutral"),
                                    ("unlabelled", "Unlabelled"),
                                ],
                                max_length=10,
                            ),
                        ),
                        ("reason", models.TextField(blank=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("pending", "Pending"),
                                    ("accepted", "Accepted"),
                                    ("rejected", "Rejected"),
                                    ("withdrawn", "withdrawn (review undone)"),
                                ],
                                default="pending",
                                max_length=10,
                            ),
                        ),
                        ("decided_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "author",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "decided_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "step",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="label_corrections",
                                to="annotations.step",
                            ),
                        ),
                        (
                            "review",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="label_corrections",
                                to="review.review",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "annotations_labelcorrection",
                        "ordering": ["created_at", "id"],
                        "indexes": [
                            models.Index(fields=["step", "status"], name="labelcorr_step_status_idx")
                        ],
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(
                                    ("proposed_label", models.F("original_label")), _negated=True
                                ),
                                name="labelcorrection_changes_label",
                            ),
                            models.CheckConstraint(
                                condition=models.Q(
                                    models.Q(
                                        ("decided_at__isnull", True), ("status__in", ["pending", "withdrawn"])
                                    ),
                                    models.Q(
                                        ("decided_at__isnull", False),
                                        ("decided_by__isnull", False),
                                        ("status__in", ["accepted", "rejected"]),
                                    ),
                                    _connector="OR",
                                ),
                                name="labelcorrection_decided_fields",
                            ),
                            models.UniqueConstraint(
                                condition=models.Q(("status", "pending")),
                                fields=("step", "author"),
                                name="labelcorrection_one_pending_per_author",
                            ),
                        ],
                    },
                ),
                migrations.AddIndex(
                    model_name="reviewitem",
                    index=models.Index(
                        condition=models.Q(("state", "open")),
                        fields=["queue", "-suspicion", "id"],
                        name="reviewitem_open_queue_idx",
                    ),
                ),
                migrations.AddIndex(
                    model_name="reviewitem",
                    index=models.Index(
                        condition=models.Q(("flagged", True), ("state", "open")),
                        fields=["-suspicion", "id"],
                        name="reviewitem_open_flagged_idx",
                    ),
                ),
                migrations.AddIndex(
                    model_name="reviewitem",
                    index=models.Index(
                        condition=models.Q(("state", "open")),
                        fields=["run", "queue", "-suspicion", "id"],
                        name="reviewitem_open_run_idx",
                    ),
                ),
                migrations.AddIndex(
                    model_name="reviewitem",
                    index=models.Index(
                        condition=models.Q(("state", "open")),
                        fields=["dataset", "queue", "-suspicion", "id"],
                        name="reviewitem_open_dataset_idx",
                    ),
                ),
                migrations.AddIndex(
                    model_name="reviewitem",
                    index=models.Index(
                        condition=models.Q(("state", "adjudication")),
                        fields=["updated_at"],
                        name="reviewitem_adjudication_idx",
                    ),
                ),
                migrations.AddIndex(
                    model_name="reviewitem",
                    index=models.Index(fields=["state", "queue"], name="reviewitem_state_queue_idx"),
                ),
                migrations.AddConstraint(
                    model_name="reviewitem",
                    constraint=models.UniqueConstraint(
                        condition=models.Q(("lease_holder__isnull", False)),
                        fields=("lease_holder",),
                        name="reviewitem_one_lease_per_reviewer",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="reviewitem",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            ("lease_holder__isnull", True),
                            ("lease_expires_at__isnull", False),
                            _connector="OR",
                        ),
                        name="reviewitem_lease_has_expiry",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="reviewitem",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("reviews_needed__gte", 1), ("reviews_needed__lte", 2)),
                        name="reviewitem_reviews_needed_range",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="reviewitem",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("final_decision", "skip"), _negated=True),
                        name="reviewitem_final_not_skip",
                    ),
                ),
                migrations.AddIndex(
                    model_name="reviewevent",
                    index=models.Index(fields=["item", "created_at"], name="reviewevent_item_idx"),
                ),
                migrations.AddIndex(
                    model_name="reviewevent",
                    index=models.Index(fields=["actor", "-created_at"], name="reviewevent_actor_idx"),
                ),
                migrations.AddIndex(
                    model_name="review",
                    index=models.Index(
                        fields=["reviewer", "-created_at"], name="review_reviewer_created_idx"
                    ),
                ),
                migrations.AddIndex(
                    model_name="review",
                    index=models.Index(
                        condition=models.Q(("undone_at__isnull", True)),
                        fields=["critique", "decision"],
                        name="review_active_critique_idx",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="review",
                    constraint=models.UniqueConstraint(
                        condition=models.Q(("undone_at__isnull", True)),
                        fields=("item", "reviewer"),
                        name="review_once_per_reviewer",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="adjudication",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("decision", "skip"), _negated=True), name="adjudication_not_skip"
                    ),
                ),
            ]
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
