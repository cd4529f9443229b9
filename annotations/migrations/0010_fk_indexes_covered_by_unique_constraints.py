"""Drop the plain foreign-key indexes whose column already leads a unique constraint.

Each lookup they served (a dataset's problems or solutions, a solution's steps, the cascade
deletes) is served by the constraint's index: `problem_unique_source_id` (dataset, source_id),
`solution_unique_source_id` (dataset, source_id), `step_unique_index` (solution, index). An
import writes every row into every index of its table, so the duplicates only cost time
(issue 21: the import against a raw COPY of the same rows).
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotations", "0009_import_job_files"),
    ]

    operations = [
        migrations.AlterField(
            model_name="problem",
            name="dataset",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="problems",
                to="annotations.dataset",
            ),
        ),
        migrations.AlterField(
            model_name="solution",
            name="dataset",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="solutions",
                to="annotations.dataset",
            ),
        ),
        migrations.AlterField(
            model_name="step",
            name="solution",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="steps",
                to="annotations.solution",
            ),
        ),
    ]
