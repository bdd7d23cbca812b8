"""SystemSetting as one edit page: no list, no add, no delete."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from config.models import SINGLETON_PK, SystemSetting
from config.services import get_system_setting, system_setting_update


@admin.register(SystemSetting)
class SystemSettingAdmin(admin.ModelAdmin):
    fieldsets = (
        (None, {"fields": ("site_name", "signup_mode", "default_model")}),
        (
            _("Models"),
            {
                "fields": (
                    "allow_personal_models",
                    "allow_private_endpoints",
                    "hide_system_model_urls",
                )
            },
        ),
        (
            _("Limits"),
            {"fields": ("max_message_chars", "messages_per_minute", "daily_token_quota")},
        ),
        (
            _("Storage and retention"),
            {
                "fields": (
                    "compression_threshold_bytes",
                    "chat_retention_days",
                    "audit_retention_days",
                )
            },
        ),
    )

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        get_system_setting()  # make sure the row exists
        return HttpResponseRedirect(
            reverse("admin:config_systemsetting_change", args=[SINGLETON_PK])
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: SystemSetting, form: ModelForm, change: bool
    ) -> None:
        system_setting_update(
            setting=obj, changed_fields=form.changed_data, actor=request.user, request=request
        )
