"""The language switcher in every page's top bar: `POST /accounts/language/`.

The choice is kept in Django's language cookie (so it holds for visitors and on the
log-in page after log-out) and, for a signed-in user, in ``User.language``, which
``accounts.middleware.UserLanguageMiddleware`` applies on every later request, on any
device. The Preferences page edits the same field. docs/i18n.md has the whole order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views import View

if TYPE_CHECKING:
    from accounts.models import User


def language_codes() -> set[str]:
    return {code for code, _name in settings.LANGUAGES}


def user_set_language(*, user: User, language: str) -> None:
    """Save a signed-in user's language ("" follows the browser); only that column."""
    if language and language not in language_codes():
        raise ValueError(f"unknown language {language!r}")
    if user.language != language:
        user.language = language
        user.save(update_fields=["language"])


def safe_next_url(request: HttpRequest) -> str:
    """Where to go back to: `next`, else the Referer's path, if on this site; else `/`."""
    allowed = {request.get_host()}
    secure = request.is_secure()
    wanted = request.POST.get("next", "")
    if wanted and url_has_allowed_host_and_scheme(wanted, allowed, require_https=secure):
        return wanted
    referer = request.headers.get("Referer", "")
    if referer and url_has_allowed_host_and_scheme(referer, allowed, require_https=secure):
        parts = urlsplit(referer)
        return parts.path + (f"?{parts.query}" if parts.query else "") or "/"
    return "/"


class SetLanguageView(View):
    """Validate the code, set the cookie and (signed in) `User.language`, then go back."""

    http_method_names = ["post", "options"]

    def post(self, request: HttpRequest) -> HttpResponse:
        language = request.POST.get("language", "")
        if language not in language_codes():
            return HttpResponseBadRequest(_("Unknown language."), content_type="text/plain")
        if request.user.is_authenticated:
            user_set_language(user=request.user, language=language)
        response = HttpResponseRedirect(safe_next_url(request))
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            language,
            max_age=settings.LANGUAGE_COOKIE_AGE,
            path=settings.LANGUAGE_COOKIE_PATH,
            domain=settings.LANGUAGE_COOKIE_DOMAIN,
            secure=settings.LANGUAGE_COOKIE_SECURE,
            httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
            samesite=settings.LANGUAGE_COOKIE_SAMESITE,
        )
        return response
