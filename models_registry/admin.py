"""System models in the admin (personal models belong to their owners' /models/ page)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from models_registry import services
from models_registry.forms import ModelConfigForm
from models_registry.models import KeyStatus, ModelConfig


@admin.register(ModelConfig)
class SystemModelAdmin(admin.ModelAdmin):
    form = ModelConfigForm
    list_display = (
        "name",
        "api_id",
        "model",
        "api_url",
        "key_mask",
        "context_window",
        "is_active",
        "updated_at",
    )
    list_filter = ("is_active",)
    search_fields = ("name", "api_id", "model", "api_url")
    actions = ["test_connection", "delete_selected_models"]

    @admin.display(description=_("API key"))
    def key_mask(self, obj: ModelConfig) -> str:
        if obj.key_status == KeyStatus.UNREADABLE:
            return str(KeyStatus.UNREADABLE.label)
        return obj.api_key_mask or "—"

    @admin.action(description=_("Test connection"))
    def test_connection(self, request: HttpRequest, queryset: QuerySet[ModelConfig]) -> None:
        for model_config in queryset:
            result = services.check_connection(model_config)
            self.message_user(
                request,
                f"{model_config.name}: {result.message}",
                messages.SUCCESS if result.ok else messages.ERROR,
            )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ModelConfig]:
        return super().get_queryset(request).system()

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def save_model(
        self, request: HttpRequest, obj: ModelConfig, form: ModelConfigForm, change: bool
    ) -> None:
        obj.owner = None
        services.model_config_save(
            model_config=obj,
            new_api_key=form.new_api_key,
            changed_fields=form.changed_data,
            actor=request.user,
            request=request,
        )

    def delete_model(self, request: HttpRequest, obj: ModelConfig) -> None:
        services.model_config_delete(model_config=obj, actor=request.user, request=request)

    @admin.action(description=_("Delete selected models (chats are kept)"), permissions=["delete"])
    def delete_selected_models(self, request: HttpRequest, queryset: QuerySet[ModelConfig]) -> None:
        count = 0
        for model_config in queryset:
            services.model_config_delete(
                model_config=model_config, actor=request.user, request=request
            )
            count += 1
        self.message_user(
            request,
            ngettext(
                "%(count)d model deleted; its chats are kept.",
                "%(count)d models deleted; their chats are kept.",
                count,
            )
            % {"count": count},
        )
