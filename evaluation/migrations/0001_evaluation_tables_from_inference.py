"""State-only move: the tables keep their names (`inference_*`), so no row is touched.

Django's state learns that the models now live in another app; the database is
left as it is, and an existing deployment upgrades with `migrate` alone."""

import django.db.models.deletion
import uuid
from django.conf import settings
from django.db import migrations, models


MODELS = ['evaluationrun', 'evaluationdataset', 'solutionscore', 'guidancerun', 'guidanceresult']


def _move(apps, source, target):
    """Permissions and admin log entries follow their model to its app."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    taken = set(ContentType.objects.filter(app_label=target).values_list("model", flat=True))
    ContentType.objects.filter(app_label=source, model__in=[m for m in MODELS if m not in taken]).update(
        app_label=target
    )


def move_content_types(apps, schema_editor):
    _move(apps, 'inference', 'evaluation')


def move_content_types_back(apps, schema_editor):
    _move(apps, 'evaluation', 'inference')


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('annotations', '0005_models_moved_to_review_training_dashboards'),
        ('inference', '0008_models_moved_to_evaluation'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.CreateModel(
                name='EvaluationDataset',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('dataset', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='annotations.dataset')),
                ],
                options={
                    'db_table': 'inference_evaluationdataset',
                },
            ),
            migrations.CreateModel(
                name='EvaluationRun',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('uuid', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                    ('name', models.CharField(help_text='Row label on the results page.', max_length=200)),
                    ('benchmark', models.CharField(choices=[('processbench', 'ProcessBench'), ('prmbench', 'PRMBench')], max_length=12)),
                    ('source', models.CharField(choices=[('model', 'model endpoint'), ('external', 'external scores file')], max_length=8)),
                    ('scores_file', models.CharField(blank=True, help_text="External scores: the file's name.", max_length=255)),
                    ('scores_sha256', models.CharField(blank=True, max_length=64)),
                    ('n_samples', models.PositiveSmallIntegerField(default=4, help_text='K critiques per step.')),
                    ('temperature', models.FloatField(default=0.95)),
                    ('top_p', models.FloatField(default=0.95)),
                    ('max_new_tokens', models.PositiveIntegerField(default=4096)),
                    ('seed', models.IntegerField(blank=True, null=True)),
                    ('batch_size', models.PositiveSmallIntegerField(default=4, help_text='Solutions per backend call.')),
                    ('solution_limit', models.PositiveIntegerField(blank=True, help_text='Score only the first N.', null=True)),
                    ('threshold', models.FloatField(default=0.5)),
                    ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], default='queued', max_length=10)),
                    ('cancel_requested', models.BooleanField(default=False)),
                    ('solutions_total', models.PositiveIntegerField(default=0)),
                    ('solutions_done', models.PositiveIntegerField(default=0)),
                    ('steps_done', models.PositiveIntegerField(default=0)),
                    ('tokens_generated', models.BigIntegerField(default=0)),
                    ('backend_seconds', models.FloatField(default=0)),
                    ('results', models.JSONField(blank=True, default=dict)),
                    ('error', models.TextField(blank=True)),
                    ('worker', models.CharField(blank=True, max_length=255)),
                    ('heartbeat_at', models.DateTimeField(blank=True, null=True)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('started_at', models.DateTimeField(blank=True, null=True)),
                    ('finished_at', models.DateTimeField(blank=True, null=True)),
                    ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('datasets', models.ManyToManyField(related_name='evaluation_runs', through='evaluation.EvaluationDataset', to='annotations.dataset')),
                    ('endpoint', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='evaluation_runs', to='inference.modelendpoint')),
                    ('template', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='evaluation_runs', to='inference.prompttemplate')),
                ],
                options={
                    'db_table': 'inference_evaluationrun',
                    'ordering': ['-created_at'],
                },
            ),
            migrations.AddField(
                model_name='evaluationdataset',
                name='run',
                field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='evaluation.evaluationrun'),
            ),
            migrations.CreateModel(
                name='GuidanceRun',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('uuid', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                    ('kind', models.CharField(choices=[('best_of_n', 'Best-of-N'), ('guided_search', 'guided search')], max_length=14)),
                    ('n_candidates', models.PositiveSmallIntegerField(default=8, help_text='N solutions, or N next steps.')),
                    ('n_samples', models.PositiveSmallIntegerField(default=4, help_text='K critiques per step.')),
                    ('max_steps', models.PositiveSmallIntegerField(default=30)),
                    ('problem_limit', models.PositiveIntegerField(blank=True, null=True)),
                    ('policy_temperature', models.FloatField(default=0.7)),
                    ('policy_top_p', models.FloatField(default=0.95)),
                    ('policy_max_new_tokens', models.PositiveIntegerField(default=1024)),
                    ('temperature', models.FloatField(default=0.95)),
                    ('top_p', models.FloatField(default=0.95)),
                    ('max_new_tokens', models.PositiveIntegerField(default=4096)),
                    ('seed', models.IntegerField(blank=True, null=True)),
                    ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], default='queued', max_length=10)),
                    ('cancel_requested', models.BooleanField(default=False)),
                    ('problems_total', models.PositiveIntegerField(default=0)),
                    ('problems_done', models.PositiveIntegerField(default=0)),
                    ('results', models.JSONField(blank=True, default=dict)),
                    ('error', models.TextField(blank=True)),
                    ('worker', models.CharField(blank=True, max_length=255)),
                    ('heartbeat_at', models.DateTimeField(blank=True, null=True)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('started_at', models.DateTimeField(blank=True, null=True)),
                    ('finished_at', models.DateTimeField(blank=True, null=True)),
                    ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('dataset', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='guidance_runs', to='annotations.dataset')),
                    ('policy', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='policy_runs', to='inference.modelendpoint')),
                    ('scorer', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='guided_runs', to='inference.modelendpoint')),
                    ('template', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='guidance_runs', to='inference.prompttemplate')),
                ],
                options={
                    'db_table': 'inference_guidancerun',
                    'ordering': ['-created_at'],
                },
            ),
            migrations.CreateModel(
                name='GuidanceResult',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('reference_answer', models.TextField(blank=True)),
                    ('candidates', models.JSONField(default=list)),
                    ('selections', models.JSONField(default=dict)),
                    ('solution', models.TextField(blank=True, help_text='Guided search: the solution it built.')),
                    ('stop_reason', models.CharField(blank=True, max_length=20)),
                    ('text_repaired', models.BooleanField(default=False)),
                    ('completion_tokens', models.PositiveIntegerField(default=0)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('problem', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='annotations.problem')),
                    ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='problem_results', to='evaluation.guidancerun')),
                ],
                options={
                    'db_table': 'inference_guidanceresult',
                    'ordering': ['run_id', 'problem_id'],
                },
            ),
            migrations.CreateModel(
                name='SolutionScore',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('step_scores', models.JSONField(default=list)),
                    ('samples', models.JSONField(default=list)),
                    ('verdicts', models.JSONField(blank=True, default=list)),
                    ('loss', models.FloatField(blank=True, null=True)),
                    ('completion_tokens', models.PositiveIntegerField(default=0)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='solution_scores', to='evaluation.evaluationrun')),
                    ('solution', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='annotations.solution')),
                ],
                options={
                    'db_table': 'inference_solutionscore',
                    'ordering': ['run_id', 'solution_id'],
                },
            ),
            migrations.AddIndex(
                model_name='evaluationrun',
                index=models.Index(fields=['benchmark', 'status', '-created_at'], name='evalrun_bench_status_idx'),
            ),
            migrations.AddConstraint(
                model_name='evaluationrun',
                constraint=models.CheckConstraint(condition=models.Q(('n_samples__gte', 1), ('n_samples__lte', 64)), name='evaluationrun_n_samples_range'),
            ),
            migrations.AddConstraint(
                model_name='evaluationrun',
                constraint=models.CheckConstraint(condition=models.Q(('threshold__gte', 0), ('threshold__lte', 1)), name='evaluationrun_threshold_range'),
            ),
            migrations.AddConstraint(
                model_name='evaluationrun',
                constraint=models.CheckConstraint(condition=models.Q(('top_p__gt', 0), ('top_p__lte', 1)), name='evaluationrun_top_p_range'),
            ),
            migrations.AddConstraint(
                model_name='evaluationrun',
                constraint=models.CheckConstraint(condition=models.Q(('temperature__gte', 0)), name='evaluationrun_temperature_nonneg'),
            ),
            migrations.AddConstraint(
                model_name='evaluationrun',
                constraint=models.CheckConstraint(condition=models.Q(models.Q(('endpoint__isnull', False), ('source', 'model')), models.Q(('endpoint__isnull', True), ('source', 'external'), models.Q(('scores_file', ''), _negated=True)), _connector='OR'), name='evaluationrun_source_fields'),
            ),
            migrations.AddConstraint(
                model_name='evaluationdataset',
                constraint=models.UniqueConstraint(fields=('run', 'dataset'), name='evaluationdataset_unique'),
            ),
            migrations.AddConstraint(
                model_name='guidancerun',
                constraint=models.CheckConstraint(condition=models.Q(('n_candidates__gte', 1)), name='guidancerun_n_candidates_positive'),
            ),
            migrations.AddConstraint(
                model_name='guidancerun',
                constraint=models.CheckConstraint(condition=models.Q(('n_samples__gte', 1)), name='guidancerun_n_samples_positive'),
            ),
            migrations.AddConstraint(
                model_name='guidancerun',
                constraint=models.CheckConstraint(condition=models.Q(('max_steps__gte', 1)), name='guidancerun_max_steps_positive'),
            ),
            migrations.AddConstraint(
                model_name='guidanceresult',
                constraint=models.UniqueConstraint(fields=('run', 'problem'), name='guidanceresult_unique_per_run'),
            ),
            migrations.AddIndex(
                model_name='solutionscore',
                index=models.Index(fields=['run', '-loss'], name='solutionscore_run_loss_idx'),
            ),
            migrations.AddConstraint(
                model_name='solutionscore',
                constraint=models.UniqueConstraint(fields=('run', 'solution'), name='solutionscore_unique_per_run'),
            ),
        ]),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
