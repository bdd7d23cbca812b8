"""Read-side queries for the chat pages, scoped to the requesting user at the source."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import F

from models_registry.models import ModelConfig

if TYPE_CHECKING:
    from accounts.models import User


def models_for_user(user: User) -> list[ModelConfig]:
    """Active system models and the user's own active personal models, system ones first."""
    return list(
        ModelConfig.objects.visible_to(user)
        .active()
        .order_by(F("owner_id").asc(nulls_first=True), "name", "id")
        .only("id", "name", "model", "owner_id")
    )
