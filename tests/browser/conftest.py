# Browser fixtures live in tests/browser_fixtures.py (registered once in tests/conftest.py).
from tests.browser_fixtures import log_in  # noqa: F401
