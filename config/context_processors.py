from __future__ import annotations

from django.http import HttpRequest

from config.services import get_system_setting


def site(request: HttpRequest) -> dict[str, object]:
    """The site name for every page's header and title."""
    return {"site_name": get_system_setting().site_name}
