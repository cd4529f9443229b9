from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "review"
    verbose_name = "Human review of critiques"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (audits finished generation runs)
