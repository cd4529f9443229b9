"""The fixed cast and shared fixtures.

Users: `admin` (staff, group admin), `reviewer`, `reviewer2` (group reviewer),
`outsider` (logged in, no group). Test data comes through the project's own
importers wherever possible.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

PASSWORD = "pw-for-tests-only"


def _user(username: str, *, staff: bool = False, groups: tuple[str, ...] = ()) -> User:
    user = User.objects.create_user(username, f"{username}@example.org", PASSWORD, is_staff=staff)
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


@pytest.fixture
def admin(db) -> User:
    return _user("admin", staff=True, groups=("admin",))


@pytest.fixture
def reviewer(db) -> User:
    return _user("reviewer", groups=("reviewer",))


@pytest.fixture
def reviewer2(db) -> User:
    return _user("reviewer2", groups=("reviewer",))


@pytest.fixture
def outsider(db) -> User:
    return _user("outsider")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A random-initialised Qwen2 model with a locally trained tokenizer, built once."""
    from inference.core.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
