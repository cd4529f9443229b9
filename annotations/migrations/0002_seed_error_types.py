from django.db import migrations


def seed(apps, schema_editor):
    from annotations.taxonomy import ERROR_TYPES

    ErrorType = apps.get_model("annotations", "ErrorType")
    for order, row in enumerate(ERROR_TYPES):
        ErrorType.objects.update_or_create(slug=row["slug"], defaults={**row, "order": order})


def seed_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ("reviewer", "admin"):
        Group.objects.get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [("annotations", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [
        migrations.RunPython(seed, migrations.RunPython.noop),
        migrations.RunPython(seed_groups, migrations.RunPython.noop),
    ]
