"""Request-wide account rules: the user's language, single-user mode and the approval gate."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import translation
from django.utils.functional import SimpleLazyObject


class UserLanguageMiddleware:
    """A signed-in user's saved language beats the cookie and the browser's Accept-Language.

    Placed right after AuthenticationMiddleware, so LocaleMiddleware has already chosen
    from the switcher's cookie, then Accept-Language, then LANGUAGE_CODE: that choice
    stands when the user has none (``User.language`` is "") or nobody is signed in. The
    language stays active through the response, so LocaleMiddleware's Content-Language
    names it; reading the user reads the session, so SessionMiddleware adds
    ``Vary: Cookie`` beside LocaleMiddleware's ``Vary: Accept-Language``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.codes = {code for code, _name in settings.LANGUAGES}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        language = self.saved_language(request)
        if language in self.codes:
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)

    @staticmethod
    def saved_language(request: HttpRequest) -> str:
        if settings.PARLEY_SINGLE_USER:
            # SingleUserMiddleware (next) replaces request.user; one indexed lookup here.
            from accounts.models import User

            found = User.objects.filter(username=settings.PARLEY_SINGLE_USER_NAME)
            return found.values_list("language", flat=True).first() or ""
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return ""
        return user.language


class SingleUserMiddleware:
    """With PARLEY_SINGLE_USER on, every request is the one local ADMIN: no log-in."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.PARLEY_SINGLE_USER:
            from accounts.services import get_single_user

            request.user = SimpleLazyObject(get_single_user)
        return self.get_response(request)


class ApprovalRequiredMiddleware:
    """An account waiting for approval reaches only the waiting page and log-out."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not user.approved:
            allowed = {
                reverse("accounts:pending"),
                reverse("accounts:logout"),
                reverse("accounts:set_language"),
                reverse("healthz"),
            }
            if request.path not in allowed and not request.path.startswith(settings.STATIC_URL):
                return redirect("accounts:pending")
        return self.get_response(request)
