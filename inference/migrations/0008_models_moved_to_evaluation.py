"""State-only move: the tables keep their names (`inference_*`), so no row is touched.

Django's state learns that the models now live in another app; the database is
left as it is, and an existing deployment upgrades with `migrate` alone."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('inference', '0007_critique_verdicts_by_the_authors_rule'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.RemoveField(
                model_name='evaluationrun',
                name='datasets',
            ),
            migrations.RemoveField(
                model_name='evaluationrun',
                name='created_by',
            ),
            migrations.RemoveField(
                model_name='evaluationrun',
                name='endpoint',
            ),
            migrations.RemoveField(
                model_name='evaluationrun',
                name='template',
            ),
            migrations.RemoveField(
                model_name='solutionscore',
                name='run',
            ),
            migrations.RemoveField(
                model_name='guidanceresult',
                name='problem',
            ),
            migrations.RemoveField(
                model_name='guidanceresult',
                name='run',
            ),
            migrations.RemoveField(
                model_name='guidancerun',
                name='created_by',
            ),
            migrations.RemoveField(
                model_name='guidancerun',
                name='dataset',
            ),
            migrations.RemoveField(
                model_name='guidancerun',
                name='policy',
            ),
            migrations.RemoveField(
                model_name='guidancerun',
                name='scorer',
            ),
            migrations.RemoveField(
                model_name='guidancerun',
                name='template',
            ),
            migrations.RemoveField(
                model_name='solutionscore',
                name='solution',
            ),
            migrations.DeleteModel(
                name='EvaluationDataset',
            ),
            migrations.DeleteModel(
                name='EvaluationRun',
            ),
            migrations.DeleteModel(
                name='GuidanceResult',
            ),
            migrations.DeleteModel(
                name='GuidanceRun',
            ),
            migrations.DeleteModel(
                name='SolutionScore',
            ),
        ]),
    ]
