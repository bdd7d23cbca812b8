"""The admin site: the ADMIN role only, with the same throttled log-in as the site."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.translation import gettext_lazy as _

from accounts.forms import AdminLoginForm


class ParleyAdminSite(admin.AdminSite):
    site_header = _("Parley administration")
    site_title = _("Parley admin")
    index_title = _("Administration")
    login_form = AdminLoginForm

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and user.is_authenticated and getattr(user, "is_admin", False))

    def password_change(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        """Django's own page; audited like the site's, when the stored hash really changed."""
        from accounts import services

        before = services.stored_password_hash(request.user.pk)
        response = super().password_change(request, extra_context)
        if request.method == "POST" and services.stored_password_hash(request.user.pk) != before:
            services.password_changed(user=request.user, request=request)
        return response

    def get_urls(self) -> list[URLPattern]:
        return [
            path("status/", self.admin_view(self.status_view), name="status"),
            *super().get_urls(),
        ]

    def status_view(self, request: HttpRequest) -> HttpResponse:
        """System status: database, disk, backups, slow queries, messages per day, token usage."""
        from config.status import status_context

        context = {**self.each_context(request), "title": _("System status"), **status_context()}
        return TemplateResponse(request, "admin/parley_status.html", context)
