from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "Critiques and runs"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (resume interrupted runs on worker start)
