"""Health check and the branded CSRF failure page."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import translation
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.cache import never_cache

from config.health import check_health


@method_decorator(never_cache, name="dispatch")
class HealthView(View):
    """`GET /healthz`: 200 when the database answers and disk is not short; 503 otherwise."""

    http_method_names = ["get", "head"]

    def get(self, request: HttpRequest) -> JsonResponse:
        report = check_health()
        with translation.override(settings.LANGUAGE_CODE):
            problems = [str(problem) for problem in report.problems.values()]
        return JsonResponse(
            {
                "status": "ok" if report.healthy else "error",
                "database": "ok" if report.database_ok else "unreachable",
                "free_disk_bytes": report.free_disk_bytes,
                "free_disk_ok": report.disk_ok,
                "last_backup_age_seconds": report.last_backup_age_seconds,
                # For probes and monitoring: in the operator's language, not the caller's.
                "problems": problems,
                "version": settings.PARLEY_VERSION,
            },
            status=200 if report.healthy else 503,
        )


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
