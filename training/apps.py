from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training and model registry"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (resume interrupted training runs on worker start)
