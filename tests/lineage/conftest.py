from tests.training_web.conftest import demo_dataset, seed_run  # noqa: F401  (shared fixtures)
