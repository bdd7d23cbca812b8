"""Health check and the branded CSRF failure page."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.cache import never_cache

logger = logging.getLogger(__name__)


@method_decorator(never_cache, name="dispatch")
class HealthView(View):
    """`GET /healthz`: 200 when the database answers, 503 when it does not."""

    http_method_names = ["get", "head"]

    def get(self, request: HttpRequest) -> JsonResponse:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except DatabaseError as error:
            logger.error("health check: database unreachable: %s", error)
            return JsonResponse(
                {"status": "error", "database": "unreachable", "version": settings.PARLEY_VERSION},
                status=503,
            )
        return JsonResponse({"status": "ok", "database": "ok", "version": settings.PARLEY_VERSION})


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A 403 that tells the person what to do, instead of Django's technical page."""
    return render(
        request,
        "403.html",
        {
            "message": _(
                "This form expired or came from another site. Reload the page and try again."
            )
        },
        status=403,
    )
