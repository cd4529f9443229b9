"""State-only move: the tables keep their names (`annotations_*`), so no row is touched.

Django's state learns that the models now live in another app; the database is
left as it is, and an existing deployment upgrades with `migrate` alone."""

import django.db.models.deletion
import uuid
from django.conf import settings
from django.db import migrations, models


MODELS = ['exportjob']


def _move(apps, source, target):
    """Permissions and admin log entries follow their model to its app."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    taken = set(ContentType.objects.filter(app_label=target).values_list("model", flat=True))
    ContentType.objects.filter(app_label=source, model__in=[m for m in MODELS if m not in taken]).update(
        app_label=target
    )


def move_content_types(apps, schema_editor):
    _move(apps, 'annotations', 'training')


def move_content_types_back(apps, schema_editor):
    _move(apps, 'training', 'annotations')


class Migration(migrations.Migration):

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('training', '0001_initial'),
        ('annotations', '0005_models_moved_to_review_training_dashboards'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.CreateModel(
                name='ExportJob',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('uuid', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                    ('filters', models.JSONField(blank=True, default=dict)),
                    ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed')], default='queued', max_length=10)),
                    ('rows_total', models.PositiveIntegerField(default=0)),
                    ('rows_done', models.PositiveIntegerField(default=0)),
                    ('manifest', models.JSONField(blank=True, default=dict)),
                    ('files', models.JSONField(blank=True, default=list)),
                    ('error', models.TextField(blank=True)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('started_at', models.DateTimeField(blank=True, null=True)),
                    ('finished_at', models.DateTimeField(blank=True, null=True)),
                    ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'db_table': 'annotations_exportjob',
                    'ordering': ['-created_at'],
                },
            ),
        ]),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
