# The staff-only error detail of evaluation and guidance runs (the public `error` is one
# short line; see rprm_web.runs.split_error).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('evaluation', '0002_evaluation_and_guidance_run_lifecycle'),
    ]

    operations = [
        migrations.AddField(
            model_name='evaluationrun',
            name='error_detail',
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name='guidancerun',
            name='error_detail',
            field=models.TextField(blank=True),
        ),
    ]
