"""Template context every page needs from the account: the colour theme for <html>."""

from __future__ import annotations

from django.http import HttpRequest

from accounts.models import Theme

# What <meta name="color-scheme"> says before the stylesheet loads: the browser's own
# canvas and form controls then match the theme from the first paint.
COLOR_SCHEMES = {Theme.SYSTEM: "light dark", Theme.LIGHT: "light", Theme.DARK: "dark"}


def theme(request: HttpRequest) -> dict[str, str]:
    """`theme` (system, light or dark; anonymous visitors: system) and its `color_scheme`."""
    user = getattr(request, "user", None)
    chosen = Theme.SYSTEM
    if user is not None and user.is_authenticated and user.theme in Theme.values:
        chosen = Theme(user.theme)
    return {"theme": chosen.value, "color_scheme": COLOR_SCHEMES[chosen]}
