"""Endpoint options `backoff` / `max_backoff` were accepted and ignored (the openai SDK backs
off by itself); they are no longer allowed, so stored ones go."""

from django.db import migrations

GONE = ("backoff", "max_backoff")


def drop_backoff(apps, schema_editor):
    ModelEndpoint = apps.get_model("inference", "ModelEndpoint")
    for endpoint in ModelEndpoint.objects.all().only("id", "options"):
        options = endpoint.options if isinstance(endpoint.options, dict) else {}
        if any(k in options for k in GONE):
            endpoint.options = {k: v for k, v in options.items() if k not in GONE}
            endpoint.save(update_fields=["options"])


class Migration(migrations.Migration):
    dependencies = [("inference", "0012_critique_gold_copy")]
    operations = [migrations.RunPython(drop_backoff, migrations.RunPython.noop)]
