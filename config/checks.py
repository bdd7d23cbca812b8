"""System checks: configuration mistakes surface on every manage.py call."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Warning, register

LOCAL_HOST_NAMES = {"127.0.0.1", "localhost", "[::1]", "::1"}


@register()
def single_user_mode_is_local(app_configs: Any, **kwargs: Any) -> list[Warning]:
    """Single-user mode skips the log-in: that is only safe on a machine nobody else reaches."""
    if not settings.PARLEY_SINGLE_USER:
        return []
    exposed = sorted(set(settings.ALLOWED_HOSTS) - LOCAL_HOST_NAMES)
    if not exposed:
        return []
    return [
        Warning(
            "PARLEY_SINGLE_USER is on while ALLOWED_HOSTS admits non-local hosts "
            f"({', '.join(exposed)}): anyone who reaches the server is the admin.",
            hint="Turn PARLEY_SINGLE_USER off, or limit ALLOWED_HOSTS to 127.0.0.1/localhost.",
            id="parley.W001",
        )
    ]
