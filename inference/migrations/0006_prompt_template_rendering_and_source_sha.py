from django.db import migrations, models


class Migration(migrations.Migration):
    """Template versions record their placeholder style, rendering and source file hash.

    Versions stored before this migration rendered the previous/now steps the old way;
    they are marked ``legacy`` so runs that used them keep re-rendering the same text.
    """

    dependencies = [
        ("inference", "0005_api_request_leases"),
    ]

    operations = [
        migrations.AddField(
            model_name="prompttemplate",
            name="style",
            field=models.CharField(default="named", max_length=12),
        ),
        # Existing rows get "legacy"; new ones default to the authors' rendering.
        migrations.AddField(
            model_name="prompttemplate",
            name="rendering",
            field=models.CharField(default="legacy", max_length=12),
        ),
        migrations.AlterField(
            model_name="prompttemplate",
            name="rendering",
            field=models.CharField(default="rprm", max_length=12),
        ),
        migrations.AddField(
            model_name="prompttemplate",
            name="source_sha256",
            field=models.CharField(blank=True, help_text="sha256 of the file it was loaded from.", max_length=64),
        ),
    ]
