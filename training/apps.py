from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training and model registry"

    def ready(self) -> None:
        # Deferred to ready(): both modules import models, which need the app registry.
        from inference.scorers import register_name_resolver

        from .actions import version_endpoint_ids

        # The scoring API, forms and commands accept a model version's own name.
        register_name_resolver(version_endpoint_ids)
