"""Login throttling: django-axes on every login made through an HTTP request."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend


class LoginThrottleBackend(AxesStandaloneBackend):
    """Axes' backend, except for credentials checked without a request (a shell, a
    management command, the test client's `login`): there is no client to throttle,
    and axes would refuse the call outright. Every login form request passes `request`."""

    def authenticate(self, request: Any = None, username: str | None = None, password: str | None = None,
                     **kwargs: Any) -> None:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)
