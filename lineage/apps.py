from django.apps import AppConfig


class LineageConfig(AppConfig):
    """Reads every layer (data, critiques, reviews, snapshots, training, evaluation), so it
    sits above evaluation and the dashboards; nothing below imports it."""

    name = "lineage"
    default_auto_field = "django.db.models.BigAutoField"
