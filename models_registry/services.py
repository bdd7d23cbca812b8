"""Creating, changing and deleting model configurations, with their audit records."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.http import HttpRequest

from accounts.audit import audit_record
from accounts.models import AuditAction
from models_registry.models import ModelConfig

if TYPE_CHECKING:
    from accounts.models import User


def _scope(model_config: ModelConfig) -> str:
    return "system" if model_config.is_system else "personal"


def model_config_save(
    *,
    model_config: ModelConfig,
    new_api_key: str | None,
    changed_fields: list[str],
    actor: User | None,
    request: HttpRequest | None = None,
) -> ModelConfig:
    """Save a model; ``new_api_key`` None keeps the stored key, "" removes it."""
    creating = model_config.pk is None
    with transaction.atomic():
        if new_api_key is not None:
            model_config.api_key = new_api_key
        model_config.full_clean()
        model_config.save()
        target = f"model {model_config.pk}: {model_config.name}"
        detail = {"scope": _scope(model_config), "model_id": model_config.pk}
        fields = sorted(set(changed_fields) - {"api_key", "clear_api_key"})
        if creating:
            audit_record(
                AuditAction.MODEL_CREATE, actor=actor, target=target, request=request, detail=detail
            )
        elif fields:
            audit_record(
                AuditAction.MODEL_UPDATE,
                actor=actor,
                target=target,
                request=request,
                detail={**detail, "changed": fields},
            )
        if new_api_key is not None and (new_api_key or not creating):
            audit_record(
                AuditAction.API_KEY_SET,
                actor=actor,
                target=target,
                request=request,
                detail={**detail, "removed": new_api_key == ""},
            )
    return model_config


def model_config_delete(
    *, model_config: ModelConfig, actor: User | None, request: HttpRequest | None = None
) -> None:
    """Delete a model. Chats that used it keep their messages (their model becomes empty)."""
    with transaction.atomic():
        audit_record(
            AuditAction.MODEL_DELETE,
            actor=actor,
            target=f"model {model_config.pk}: {model_config.name}",
            request=request,
            detail={"scope": _scope(model_config), "model_id": model_config.pk},
        )
        model_config.delete()
