"""Read-side queries for model pages, scoped to the requesting user at the source."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet

from models_registry.models import ModelConfig

if TYPE_CHECKING:
    from accounts.models import User


def personal_models(user: User) -> QuerySet[ModelConfig]:
    """The user's own models: the only rows the personal-model pages may touch."""
    return ModelConfig.objects.filter(owner=user)


def system_models_for_users() -> QuerySet[ModelConfig]:
    return ModelConfig.objects.system().active()
