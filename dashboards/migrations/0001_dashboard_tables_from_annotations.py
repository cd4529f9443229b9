"""State-only move: the tables keep their names (`annotations_*`), so no row is touched.

Django's state learns that the models now live in another app; the database is
left as it is, and an existing deployment upgrades with `migrate` alone."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


MODELS = [
    "dashboardrefresh",
    "dashboardcell",
    "dashboardsteps",
    "dashboardsignal",
    "dashboardqueue",
    "dashboardpair",
    "dashboardreviewrun",
]


def _move(apps, source, target):
    """Permissions and admin log entries follow their model to its app."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    taken = set(ContentType.objects.filter(app_label=target).values_list("model", flat=True))
    ContentType.objects.filter(app_label=source, model__in=[m for m in MODELS if m not in taken]).update(
        app_label=target
    )


def move_content_types(apps, schema_editor):
    _move(apps, "annotations", "dashboards")


def move_content_types_back(apps, schema_editor):
    _move(apps, "dashboards", "annotations")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("annotations", "0005_models_moved_to_review_training_dashboards"),
        ("inference", "0008_models_moved_to_evaluation"),
        ("review", "0001_review_tables_from_annotations"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="DashboardCell",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "week",
                            models.DateField(help_text="Monday (UTC) of the week the critique was written"),
                        ),
                        ("via", models.CharField(max_length=5)),
                        ("label", models.CharField(max_length=10)),
                        ("verdict", models.CharField(max_length=11)),
                        ("matches", models.BooleanField(null=True)),
                        ("outcome", models.CharField(max_length=12)),
                        ("runs", models.TextField()),
                        ("n", models.PositiveIntegerField()),
                        (
                            "error_type",
                            models.ForeignKey(
                                null=True,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="annotations.errortype",
                            ),
                        ),
                        (
                            "run",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="inference.generationrun",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "annotations_dashboardcell",
                    },
                ),
                migrations.CreateModel(
                    name="DashboardPair",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("kind", models.CharField(max_length=8)),
                        ("a", models.CharField(max_length=11)),
                        ("b", models.CharField(max_length=11)),
                        ("n", models.PositiveIntegerField()),
                        (
                            "reviewer_a",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "reviewer_b",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "run",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="inference.generationrun",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "annotations_dashboardpair",
                    },
                ),
                migrations.CreateModel(
                    name="DashboardQueue",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("matches", models.BooleanField(null=True)),
                        ("flagged", models.BooleanField()),
                        ("outcome", models.CharField(max_length=12)),
                        ("n", models.PositiveIntegerField()),
                        (
                            "run",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="inference.generationrun",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "annotations_dashboardqueue",
                    },
                ),
                migrations.CreateModel(
                    name="DashboardReviewRun",
                    fields=[
                        (
                            "review",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                primary_key=True,
                                related_name="+",
                                serialize=False,
                                to="review.review",
                            ),
                        ),
                        (
                            "run",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="inference.generationrun",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "annotations_dashboardreviewrun",
                    },
                ),
                migrations.CreateModel(
                    name="DashboardSignal",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("signal", models.CharField(max_length=40)),
                        ("matches", models.BooleanField(null=True)),
                        ("outcome", models.CharField(max_length=12)),
                        ("n", models.PositiveIntegerField()),
                        (
                            "run",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="inference.generationrun",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "annotations_dashboardsignal",
                    },
                ),
                migrations.CreateModel(
                    name="DashboardSteps",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("week", models.DateField()),
                        ("basis", models.CharField(max_length=6)),
                        ("label", models.CharField(max_length=10)),
                        ("runs", models.TextField()),
                        ("n_steps", models.PositiveIntegerField()),
                        (
                            "error_type",
                            models.ForeignKey(
                                null=True,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="annotations.errortype",
                            ),
                        ),
                        (
                            "run",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="inference.generationrun",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "annotations_dashboardsteps",
                    },
                ),
                migrations.CreateModel(
                    name="DashboardRefresh",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("queued", "Queued"),
                                    ("running", "Running"),
                                    ("succeeded", "Succeeded"),
                                    ("failed", "Failed"),
                                ],
                                default="queued",
                                max_length=10,
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("started_at", models.DateTimeField(blank=True, null=True)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        ("seconds", models.FloatField(blank=True, null=True)),
                        ("counts", models.JSONField(blank=True, default=dict)),
                        ("error", models.TextField(blank=True)),
                        (
                            "requested_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "annotations_dashboardrefresh",
                        "ordering": ["-created_at", "-id"],
                        "indexes": [
                            models.Index(fields=["status", "-created_at"], name="dashrefresh_status_idx")
                        ],
                    },
                ),
            ]
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
