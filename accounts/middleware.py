"""Request-wide account rules: single-user mode and the approval gate."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.functional import SimpleLazyObject


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
            allowed = {reverse("accounts:pending"), reverse("accounts:logout"), reverse("healthz")}
            if request.path not in allowed and not request.path.startswith(settings.STATIC_URL):
                return redirect("accounts:pending")
        return self.get_response(request)
