from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "annotations"
    verbose_name = "Step-labelled data"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (worker heartbeat hooks; the models load before ready())
